#include "storage/key_template.h"

#include <cstdio>

namespace sgw::storage {

namespace {

bool safe_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::string describe_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7F) return std::string("'") + c + "'";
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", u);
  return buf;
}

std::string two_digits(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02u", v);
  return buf;
}

}  // namespace

std::string KeyTemplate::sanitize(std::string_view value) {
  std::string out;
  out.reserve(std::min(value.size(), kMaxValueSize));
  for (char c : value) {
    if (out.size() == kMaxValueSize) break;
    out.push_back(safe_char(c) ? c : '_');
  }
  if (!out.empty() && out.front() == '.') out.front() = '_';  // no ".", "..", hidden names
  if (out.empty()) out = "unknown";
  return out;
}

common::Result<KeyTemplate> KeyTemplate::parse(std::string_view text) {
  auto err = [&](const std::string& code, const std::string& what) {
    return common::make_error("key_template." + code,
                              "key template '" + std::string(text.substr(0, 200)) + "': " + what);
  };
  if (text.empty()) return err("empty", "empty");
  if (text.size() > kMaxTemplateSize) {
    return err("too_long", "longer than " + std::to_string(kMaxTemplateSize) + " characters");
  }
  if (text.front() == '/') return err("absolute", "must be relative (starts with '/')");

  KeyTemplate t;
  t.text_ = std::string(text);
  bool component_empty = true;  // nothing yet in the current '/'-separated component
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '{') {
      std::size_t close = text.find('}', i + 1);
      if (close == std::string_view::npos) return err("unclosed", "'{' at position " + std::to_string(i) + " is not closed");
      std::string_view name = text.substr(i + 1, close - i - 1);
      Field f;
      if (name == "yyyy") f = Field::kYear;
      else if (name == "mm") f = Field::kMonth;
      else if (name == "dd") f = Field::kDay;
      else if (name == "hh") f = Field::kHour;
      else if (name == "conversation_id") f = Field::kConversationId;
      else if (name == "recording_id") f = Field::kRecordingId;
      else if (name == "region") f = Field::kRegion;
      else if (name == "node") f = Field::kNode;
      else if (name == "call_id") f = Field::kCallId;
      else return err("unknown_placeholder", "unknown placeholder {" + std::string(name.substr(0, 64)) + "}");
      t.segments_.push_back(Segment{f, {}});
      component_empty = false;
      i = close + 1;
      continue;
    }
    if (c == '/') {
      if (component_empty) return err("empty_component", "empty path component at position " + std::to_string(i));
      component_empty = true;
    } else if (safe_char(c)) {
      if (c == '.' && component_empty) {
        return err("dot_component", "a path component starts with '.' at position " + std::to_string(i));
      }
      if (c == '.' && i + 1 < text.size() && text[i + 1] == '.') {
        return err("dotdot", "'..' at position " + std::to_string(i));
      }
      component_empty = false;
    } else {
      return err("bad_char", "character " + describe_char(c) + " at position " + std::to_string(i) +
                                 " (literal text allows [A-Za-z0-9._-] and '/')");
    }
    if (t.segments_.empty() || t.segments_.back().field != Field::kLiteral) t.segments_.push_back(Segment{});
    t.segments_.back().literal.push_back(c);
    ++i;
  }
  if (component_empty) return err("empty_component", "ends with '/'");
  return t;
}

std::string KeyTemplate::render(const KeyFields& fields) const {
  using namespace std::chrono;
  const auto day = floor<days>(fields.start_time);
  const year_month_day ymd{day};
  const auto hour = duration_cast<hours>(fields.start_time - day).count();

  std::string raw;
  for (const Segment& s : segments_) {
    switch (s.field) {
      case Field::kLiteral: raw += s.literal; break;
      case Field::kYear: {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%04d", static_cast<int>(ymd.year()));
        raw += sanitize(buf);
        break;
      }
      case Field::kMonth: raw += two_digits(static_cast<unsigned>(ymd.month())); break;
      case Field::kDay: raw += two_digits(static_cast<unsigned>(ymd.day())); break;
      case Field::kHour: raw += two_digits(static_cast<unsigned>(hour)); break;
      case Field::kConversationId: raw += sanitize(fields.conversation_id); break;
      case Field::kRecordingId: raw += sanitize(fields.recording_id); break;
      case Field::kRegion: raw += sanitize(fields.region); break;
      case Field::kNode: raw += sanitize(fields.node); break;
      case Field::kCallId: raw += sanitize(fields.call_id); break;
    }
  }

  // Cap each component and re-check it: defence in depth, a parsed template cannot produce these.
  std::string out;
  out.reserve(raw.size());
  std::size_t start = 0;
  while (start <= raw.size()) {
    std::size_t slash = raw.find('/', start);
    if (slash == std::string::npos) slash = raw.size();
    std::string comp = raw.substr(start, std::min(slash - start, kMaxComponentSize));
    if (comp.empty() || comp == "." || comp == "..") comp = "unknown";
    if (comp.front() == '.') comp.front() = '_';
    if (!out.empty()) out.push_back('/');
    out += comp;
    start = slash + 1;
  }
  return out;
}

}  // namespace sgw::storage
