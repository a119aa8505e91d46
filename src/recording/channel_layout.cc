#include "recording/channel_layout.h"

#include <algorithm>
#include <array>
#include <set>

#include "common/strings.h"

namespace sgw::recording {

namespace {

using common::make_error;
using metadata::Participant;
using metadata::RecordingMetadata;

// libstdc++'s regex matcher recurses per character; do not feed it long peer-supplied text.
constexpr std::size_t kMaxRegexInput = 1024;

// "caller"/"customer"/"external" -> caller, "agent"/"internal" -> agent, else empty.
std::string normalise_role(std::string_view r) {
  const std::string s = common::to_lower(common::trim(r));
  if (s == "caller" || s == "customer" || s == "external") return std::string(kRoleCaller);
  if (s == "agent" || s == "internal") return std::string(kRoleAgent);
  return {};
}

// The role a free-text value names (Genesys purpose, a "role" field...): it must name one side
// only. Substring match, so "agentLeg" and "Customer" count; "user" (Genesys: an internal user)
// must be the whole value.
std::string role_from_text(std::string_view value) {
  const std::string v = common::to_lower(common::trim(value));
  static constexpr std::array<std::string_view, 6> kCaller{"customer", "caller",   "calling",
                                                           "external", "consumer", "client"};
  static constexpr std::array<std::string_view, 3> kAgent{"agent", "internal", "employee"};
  bool caller = false;
  bool agent = v == "user";
  for (auto k : kCaller) caller = caller || v.find(k) != std::string::npos;
  for (auto k : kAgent) agent = agent || v.find(k) != std::string::npos;
  if (caller == agent) return {};
  return std::string(caller ? kRoleCaller : kRoleAgent);
}

bool regex_search_bounded(const std::regex& re, const std::string& s) {
  if (s.size() > kMaxRegexInput) return false;
  return std::regex_search(s, re);
}

// "\"Pat\" <sip:+331@h>;tag=x" -> "sip:+331@h"; "sip:a@b;tag=x" -> "sip:a@b".
std::string_view uri_of_name_addr(std::string_view v) {
  v = common::trim(v);
  if (auto lt = v.find('<'); lt != std::string_view::npos) {
    auto gt = v.find('>', lt);
    return v.substr(lt + 1, gt == std::string_view::npos ? std::string_view::npos : gt - lt - 1);
  }
  return v.substr(0, v.find(';'));
}

// Comparable form of a SIP/tel URI: scheme and parameters dropped, lower case.
std::string uri_key(std::string_view uri) {
  uri = common::trim(uri);
  for (std::string_view scheme : {"sips:", "sip:", "tel:"})
    if (common::istarts_with(uri, scheme)) {
      uri.remove_prefix(scheme.size());
      break;
    }
  uri = uri.substr(0, uri.find(';'));
  uri = uri.substr(0, uri.find('?'));
  return common::to_lower(uri);
}

std::string_view user_part(std::string_view key) { return key.substr(0, key.find('@')); }

// Which participant (index) a callData From/To value names: exact URI first, then user part.
std::optional<std::size_t> participant_for_uri(const std::vector<Participant>& ps, std::string_view header) {
  const std::string want = uri_key(uri_of_name_addr(header));
  if (want.empty()) return std::nullopt;
  for (std::size_t i = 0; i < ps.size(); ++i)
    for (const auto& aor : ps[i].aors)
      if (uri_key(aor) == want) return i;
  const std::string_view want_user = user_part(want);
  if (want_user.empty()) return std::nullopt;
  for (std::size_t i = 0; i < ps.size(); ++i)
    for (const auto& aor : ps[i].aors)
      if (user_part(uri_key(aor)) == want_user) return i;
  return std::nullopt;
}

std::string sanitise_label(std::string_view label) {
  std::string out;
  for (char c : label.substr(0, 32)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  return out;
}

struct Assigned {
  std::string role;
  std::string rule;
};

// Per-participant list of positions (into `streams`) of the recorded streams it sends.
std::vector<std::vector<std::size_t>> sent_streams(const RecordingMetadata& md,
                                                   const std::vector<RecordedStream>& streams) {
  auto recorded_by_label = [&](std::string_view label) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < streams.size(); ++i)
      if (streams[i].label == label) return i;
    return std::nullopt;
  };
  std::vector<std::vector<std::size_t>> out(md.participants.size());
  for (std::size_t p = 0; p < md.participants.size(); ++p) {
    for (const auto& sid : md.participants[p].send) {
      // RFC 7865 §6.7: <send> names a stream id; the stream's <label> is the SDP a=label.
      const metadata::Stream* ms = nullptr;
      for (const auto& s : md.streams)
        if (!s.id.empty() && s.id == sid) {
          ms = &s;
          break;
        }
      if (!ms)  // stream_id="" SRCs: the label identifies the stream
        for (const auto& s : md.streams)
          if (s.id.empty() && s.label == sid) {
            ms = &s;
            break;
          }
      // No such metadata stream: some SRCs use the label itself as the stream reference.
      auto pos = recorded_by_label(ms ? std::string_view(ms->label) : std::string_view(sid));
      if (pos && std::find(out[p].begin(), out[p].end(), *pos) == out[p].end()) out[p].push_back(*pos);
    }
  }
  return out;
}

bool role_taken(const std::vector<Assigned>& a, std::string_view role) {
  return std::any_of(a.begin(), a.end(), [&](const Assigned& x) { return x.role == role; });
}

// Assigns caller then agent, if not taken yet, to the unresolved candidates in order.
void assign_in_order(std::vector<Assigned>& a, const std::vector<std::size_t>& order, const std::string& rule) {
  for (std::string_view role : {kRoleCaller, kRoleAgent}) {
    if (role_taken(a, role)) continue;
    for (std::size_t i : order)
      if (a[i].role.empty()) {
        a[i] = {std::string(role), rule};
        break;
      }
  }
}

std::vector<Assigned> participant_roles(const RecordingMetadata& md, const std::vector<RoleRule>& rules,
                                        const std::vector<std::vector<std::size_t>>& sends) {
  const auto& ps = md.participants;
  std::vector<Assigned> a(ps.size());
  for (const auto& rule : rules) {
    switch (rule.kind) {
      case RoleRule::Kind::kExtension:
      case RoleRule::Kind::kRoleField:
        for (std::size_t i = 0; i < ps.size(); ++i) {
          if (!a[i].role.empty()) continue;
          for (const auto& ext : ps[i].extensions) {
            for (const auto& f : ext.fields) {
              if (!common::iequals(f.name, rule.name)) continue;
              std::string role;
              if (rule.kind == RoleRule::Kind::kRoleField) role = role_from_text(f.value);
              else if (common::iequals(common::trim(f.value), rule.value)) role = rule.role;
              if (!role.empty()) {
                a[i] = {role, rule.text};
                break;
              }
            }
            if (!a[i].role.empty()) break;
          }
        }
        break;
      case RoleRule::Kind::kAorRegex:
      case RoleRule::Kind::kNameRegex:
        for (std::size_t i = 0; i < ps.size(); ++i) {
          if (!a[i].role.empty()) continue;
          bool hit = false;
          if (rule.kind == RoleRule::Kind::kAorRegex) {
            for (const auto& aor : ps[i].aors) hit = hit || regex_search_bounded(*rule.regex, aor);
          } else {
            hit = regex_search_bounded(*rule.regex, ps[i].display_name);
            for (const auto& n : ps[i].names) hit = hit || regex_search_bounded(*rule.regex, n.name);
          }
          if (hit) a[i] = {rule.role, rule.text};
        }
        break;
      case RoleRule::Kind::kCallDataFrom:
        if (md.call_data) {
          auto from = participant_for_uri(ps, md.call_data->from);
          auto to = participant_for_uri(ps, md.call_data->to);
          if (from && to && *from == *to) break;  // ambiguous: decide nothing
          if (from && a[*from].role.empty()) a[*from] = {std::string(kRoleCaller), rule.text};
          if (to && a[*to].role.empty()) a[*to] = {std::string(kRoleAgent), rule.text};
        }
        break;
      case RoleRule::Kind::kMetadataOrder: {
        std::vector<std::size_t> order;
        for (std::size_t i = 0; i < ps.size(); ++i)
          if (!sends[i].empty()) order.push_back(i);
        if (order.empty())  // no stream association at all: plain document order
          for (std::size_t i = 0; i < ps.size(); ++i) order.push_back(i);
        assign_in_order(a, order, rule.text);
        break;
      }
      case RoleRule::Kind::kMlineOrder: {
        // Participants ordered by the first recorded m-line they send.
        std::vector<std::size_t> order;
        for (std::size_t i = 0; i < ps.size(); ++i)
          if (!sends[i].empty()) order.push_back(i);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
          return *std::min_element(sends[x].begin(), sends[x].end()) <
                 *std::min_element(sends[y].begin(), sends[y].end());
        });
        assign_in_order(a, order, rule.text);
        break;
      }
    }
  }
  return a;
}

ParticipantInfo info_of(const Participant& p, const Assigned& a) {
  ParticipantInfo out;
  out.id = p.id;
  out.aor = p.aors.empty() ? std::string() : p.aors.front();
  out.name = p.display_name;
  out.role = a.role.empty() ? std::string(kRoleUnknown) : a.role;
  out.role_rule = a.rule;
  return out;
}

}  // namespace

const std::vector<std::string>& default_role_rules() {
  static const std::vector<std::string> kDefaults{
      "extension:callingParty=true:caller",   // Oracle/Acme Packet SBC
      "extension:callingParty=false:agent",   // Oracle/Acme Packet SBC
      "role-field:purpose",                   // Genesys participant purpose
      "role-field:role",
      "role-field:participantRole",
      "calldata-from",                        // Ribbon/Sonus callData From/To
      "metadata-order",                       // AudioCodes (From first), generic RFC 7865
      "mline-order",
  };
  return kDefaults;
}

common::Result<std::vector<RoleRule>> parse_role_rules(const std::vector<std::string>& rules) {
  std::vector<RoleRule> out;
  for (const auto& raw : rules) {
    const std::string_view text = common::trim(raw);
    auto bad = [&](const std::string& why) {
      return make_error("layout.rule", "role rule '" + std::string(raw) + "': " + why);
    };
    RoleRule r;
    r.text = std::string(text);
    auto rest_after = [&](std::string_view prefix) { return text.substr(prefix.size()); };
    if (text == "calldata-from") {
      r.kind = RoleRule::Kind::kCallDataFrom;
    } else if (text == "metadata-order") {
      r.kind = RoleRule::Kind::kMetadataOrder;
    } else if (text == "mline-order") {
      r.kind = RoleRule::Kind::kMlineOrder;
    } else if (text.starts_with("role-field:")) {
      r.kind = RoleRule::Kind::kRoleField;
      r.name = std::string(common::trim(rest_after("role-field:")));
      if (r.name.empty()) return bad("empty field name");
    } else if (text.starts_with("extension:")) {
      r.kind = RoleRule::Kind::kExtension;
      const std::string_view rest = rest_after("extension:");
      const auto colon = rest.rfind(':');
      const auto eq = rest.find('=');
      if (colon == std::string_view::npos || eq == std::string_view::npos || eq > colon)
        return bad("expected extension:NAME=VALUE:ROLE");
      r.name = std::string(common::trim(rest.substr(0, eq)));
      r.value = std::string(common::trim(rest.substr(eq + 1, colon - eq - 1)));
      r.role = normalise_role(rest.substr(colon + 1));
      if (r.name.empty() || r.value.empty()) return bad("empty NAME or VALUE");
      if (r.name.find(':') != std::string::npos) return bad("NAME is a local name, without a prefix");
      if (r.role.empty()) return bad("ROLE must be caller or agent");
    } else if (text.starts_with("aor-regex:") || text.starts_with("name-regex:")) {
      const bool aor = text.starts_with("aor-regex:");
      r.kind = aor ? RoleRule::Kind::kAorRegex : RoleRule::Kind::kNameRegex;
      const std::string_view rest = rest_after(aor ? "aor-regex:" : "name-regex:");
      const auto eq = rest.rfind('=');
      if (eq == std::string_view::npos || eq == 0) return bad("expected PATTERN=ROLE");
      r.role = normalise_role(rest.substr(eq + 1));
      if (r.role.empty()) return bad("ROLE must be caller or agent");
      try {  // start-up only: turn the library's exception into a config error
        r.regex = std::make_shared<const std::regex>(std::string(rest.substr(0, eq)),
                                                     std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& e) {
        return bad(std::string("bad regular expression: ") + e.what());
      }
    } else {
      return bad("unknown rule (expected extension:, role-field:, aor-regex:, name-regex:, "
                 "calldata-from, metadata-order or mline-order)");
    }
    out.push_back(std::move(r));
  }
  return out;
}

common::Result<CallerChannel> parse_caller_channel(std::string_view s) {
  if (common::iequals(common::trim(s), "left")) return CallerChannel::kLeft;
  if (common::iequals(common::trim(s), "right")) return CallerChannel::kRight;
  return make_error("layout.config", "caller_channel: expected left or right, got '" + std::string(s) + "'");
}

common::Result<MultiStreamMode> parse_multi_stream_mode(std::string_view s) {
  if (common::iequals(common::trim(s), "multichannel")) return MultiStreamMode::kMultichannel;
  if (common::iequals(common::trim(s), "mono-files")) return MultiStreamMode::kMonoFiles;
  return make_error("layout.config",
                    "multi_stream_mode: expected multichannel or mono-files, got '" + std::string(s) + "'");
}

std::string_view caller_channel_name(CallerChannel c) { return c == CallerChannel::kLeft ? "left" : "right"; }

std::string_view multi_stream_mode_name(MultiStreamMode m) {
  return m == MultiStreamMode::kMultichannel ? "multichannel" : "mono-files";
}

LayoutConfig default_layout_config() {
  LayoutConfig cfg;
  auto rules = parse_role_rules(default_role_rules());
  if (rules.ok()) cfg.rules = std::move(*rules);
  return cfg;
}

ChannelLayout build_channel_layout(const metadata::RecordingMetadata* md,
                                   const std::vector<RecordedStream>& streams, const LayoutConfig& cfg) {
  ChannelLayout layout;

  // 1. Participants: their recorded streams and their roles.
  std::vector<std::vector<std::size_t>> sends;
  std::vector<Assigned> proles;
  if (md) {
    sends = sent_streams(*md, streams);
    proles = participant_roles(*md, cfg.rules, sends);
    for (std::size_t i = 0; i < md->participants.size(); ++i)
      layout.participants.push_back(info_of(md->participants[i], proles[i]));
  }

  // 2. Channels: one per recorded stream, with its sender and the role it carries.
  std::vector<Channel> chans(streams.size());
  for (std::size_t s = 0; s < streams.size(); ++s) {
    chans[s].stream_index = streams[s].index;
    chans[s].label = streams[s].label;
    std::vector<std::size_t> senders;
    for (std::size_t p = 0; p < sends.size(); ++p)
      if (std::find(sends[p].begin(), sends[p].end(), s) != sends[p].end()) senders.push_back(p);
    std::set<std::string> roles;
    for (std::size_t p : senders)
      if (!proles[p].role.empty()) roles.insert(proles[p].role);
    const std::string role = roles.size() == 1 ? *roles.begin() : std::string();
    if (!senders.empty()) {
      std::size_t pick = senders.front();
      for (std::size_t p : senders)
        if (!role.empty() && proles[p].role == role) {
          pick = p;
          break;
        }
      chans[s].participant = layout.participants[pick];
      if (!role.empty()) {
        chans[s].role = role;
        chans[s].role_rule = proles[pick].rule;
      }
    }
  }
  // Streams whose role is still unknown: m-line order, if that rule is configured.
  for (const auto& rule : cfg.rules) {
    if (rule.kind != RoleRule::Kind::kMlineOrder) continue;
    for (std::string_view role : {kRoleCaller, kRoleAgent}) {
      if (std::any_of(chans.begin(), chans.end(), [&](const Channel& c) { return c.role == role; })) continue;
      for (auto& c : chans)
        if (c.role.empty()) {
          c.role = std::string(role);
          c.role_rule = rule.text;
          break;
        }
    }
  }
  for (auto& c : chans)
    if (c.role.empty()) c.role = std::string(kRoleUnknown);

  // 3. Files.
  if (chans.empty()) return layout;
  if (chans.size() == 2) {
    // The caller's stream: the one that is caller while the other is not, else the one that is
    // not agent while the other is; a tie (both or neither) keeps m-line order.
    auto is = [&](std::size_t i, std::string_view r) { return chans[i].role == r; };
    std::size_t caller = 0;
    if (is(1, kRoleCaller) && !is(0, kRoleCaller)) caller = 1;
    else if (is(0, kRoleCaller) && !is(1, kRoleCaller)) caller = 0;
    else if (is(0, kRoleAgent) && !is(1, kRoleAgent)) caller = 1;
    OutputFile f;
    const std::size_t other = 1 - caller;
    if (cfg.caller_channel == CallerChannel::kLeft) f.channels = {chans[caller], chans[other]};
    else f.channels = {chans[other], chans[caller]};
    layout.files.push_back(std::move(f));
  } else if (cfg.multi_stream_mode == MultiStreamMode::kMultichannel || chans.size() == 1) {
    OutputFile f;
    f.channels = std::move(chans);
    layout.files.push_back(std::move(f));
  } else {
    for (auto& c : chans) {
      OutputFile f;
      f.name_suffix = "-" + std::to_string(c.stream_index);
      if (!c.label.empty()) f.name_suffix += "-" + sanitise_label(c.label);
      f.channels.push_back(std::move(c));
      layout.files.push_back(std::move(f));
    }
  }
  return layout;
}

}  // namespace sgw::recording
