#include "siprec_src/timeline.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <utility>

namespace sgw::siprec_src {
namespace {

constexpr std::array<std::pair<std::string_view, ActionKind>, 14> kNames = {{
    {"pause", ActionKind::kPause},
    {"resume", ActionKind::kResume},
    {"metadata-update", ActionKind::kMetadataUpdate},
    {"join", ActionKind::kMetadataUpdate},
    {"update", ActionKind::kUpdate},
    {"transfer", ActionKind::kTransfer},
    {"ssrc-change", ActionKind::kSsrcChange},
    {"hold-zero", ActionKind::kHoldZero},
    {"hold", ActionKind::kHold},
    {"unhold", ActionKind::kUnhold},
    {"bye", ActionKind::kBye},
    {"ssrc", ActionKind::kSsrcChange},
    {"rekey", ActionKind::kRekey},
    {"tamper", ActionKind::kTamper},
}};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view action_name(ActionKind k) {
  for (const auto& [name, kind] : kNames)
    if (kind == k) return name;
  return "?";
}

common::Result<std::uint32_t> parse_time_ms(std::string_view text) {
  text = trim(text);
  double scale = 1000;
  if (text.ends_with("ms")) {
    scale = 1;
    text.remove_suffix(2);
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
  }
  if (text.empty()) return common::make_error("timeline.syntax", "empty time");
  for (char c : text)
    if (!((c >= '0' && c <= '9') || c == '.'))
      return common::make_error("timeline.syntax", "bad time '" + std::string(text) + "'");
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || !std::isfinite(v) || v * scale > 4e9)
    return common::make_error("timeline.syntax", "bad time '" + std::string(text) + "'");
  return static_cast<std::uint32_t>(std::llround(v * scale));
}

common::Result<std::vector<TimelineAction>> parse_timeline(std::string_view text,
                                                           std::uint32_t duration_ms) {
  std::vector<TimelineAction> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view entry = trim(text.substr(pos, comma - pos));
    pos = comma + 1;
    if (entry.empty()) continue;
    std::size_t at = entry.find('@');
    if (at == std::string_view::npos)
      return common::make_error("timeline.syntax",
                                "entry '" + std::string(entry) + "' is not ACTION@TIME");
    std::string_view name = trim(entry.substr(0, at));
    const ActionKind* kind = nullptr;
    for (const auto& [n, k] : kNames)
      if (n == name) kind = &k;
    if (kind == nullptr)
      return common::make_error("timeline.syntax", "unknown action '" + std::string(name) +
                                                       "' in '" + std::string(entry) + "'");
    auto ms = parse_time_ms(entry.substr(at + 1));
    if (!ms)
      return common::make_error("timeline.syntax",
                                ms.error().message + " in '" + std::string(entry) + "'");
    if (*ms >= duration_ms)
      return common::make_error("timeline.range", "entry '" + std::string(entry) +
                                                       "' is at or after the end of the call (" +
                                                       std::to_string(duration_ms) + " ms)");
    out.push_back({*kind, *ms});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TimelineAction& a, const TimelineAction& b) { return a.at_ms < b.at_ms; });
  return out;
}

}  // namespace sgw::siprec_src
