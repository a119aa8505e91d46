#include "metadata/conversation_id.h"

#include <utility>

#include "common/strings.h"
#include "metadata/text_util.h"

namespace sgw::metadata {

namespace {

using common::make_error;

// Longest input handed to std::regex: libstdc++'s matcher recurses per character, so a
// hostile Call-ID must not reach it at full length.
constexpr std::size_t kMaxRegexInput = 1024;

common::Error rule_error(const std::string& rule, const std::string& why) {
  return make_error("metadata.rule", "conversation-id rule '" + rule + "': " + why);
}

// The value a rule yields, trimmed, or nullopt when it is unusable as an identifier.
std::optional<std::string> sane(std::string_view v) {
  v = common::trim(v);
  if (v.empty() || v.size() > kMaxConversationIdLength) return std::nullopt;
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return std::nullopt;
  }
  return detail::sanitize_utf8(v);
}

std::optional<ExtensionScope> scope_from(std::string_view s) {
  if (s == "session") return ExtensionScope::kSession;
  if (s == "group") return ExtensionScope::kGroup;
  if (s == "participant") return ExtensionScope::kParticipant;
  if (s == "any") return ExtensionScope::kAny;
  return std::nullopt;
}

// `folded` is detail::fold_name of the rule's NAME: element and attribute names match on their
// local name (fields carry no prefix), case-insensitively and ignoring '-' and '_', as every
// other name in this layer (Genesys writes gc:conversationId, AudioCodes ConversationID).
std::optional<std::string> from_extensions(const std::vector<Extension>& exts, const std::string& folded) {
  for (const auto& e : exts) {
    for (const auto& f : e.fields) {
      if (detail::fold_name(f.name) != folded) continue;
      if (auto v = sane(f.value)) return v;
    }
  }
  return std::nullopt;
}

std::optional<std::string> from_scope(const RecordingMetadata& md, ExtensionScope scope, const std::string& name) {
  const bool any = scope == ExtensionScope::kAny;
  if (scope == ExtensionScope::kSession || any) {
    for (const auto& s : md.sessions)
      if (auto v = from_extensions(s.extensions, name)) return v;
  }
  if (scope == ExtensionScope::kGroup || any) {
    for (const auto& g : md.groups)
      if (auto v = from_extensions(g.extensions, name)) return v;
  }
  if (scope == ExtensionScope::kParticipant || any) {
    for (const auto& p : md.participants)
      if (auto v = from_extensions(p.extensions, name)) return v;
  }
  if (any) {
    if (auto v = from_extensions(md.extensions, name)) return v;
    for (const auto& s : md.streams)
      if (auto v = from_extensions(s.extensions, name)) return v;
  }
  return std::nullopt;
}

std::string first_session_id(const RecordingMetadata* md) {
  if (md == nullptr) return {};
  for (const auto& s : md->sessions)
    if (!s.id.empty()) return s.id;
  return {};
}

std::optional<std::string> from_regex(const std::regex& re, std::string_view input) {
  if (input.empty() || input.size() > kMaxRegexInput) return std::nullopt;
  const std::string subject(input);
  std::smatch m;
  // std::regex may throw (error_complexity / error_stack) on pathological input; a rule that
  // cannot be evaluated simply does not match.
  try {
    if (!std::regex_search(subject, m, re)) return std::nullopt;
  } catch (const std::regex_error&) {
    return std::nullopt;
  }
  if (m.size() > 1 && m[1].matched) return sane(m[1].str());
  return sane(m[0].str());
}

}  // namespace

common::Result<std::vector<ConversationIdRule>> parse_rules(const std::vector<std::string>& rules) {
  std::vector<ConversationIdRule> out;
  out.reserve(rules.size());
  for (const auto& text : rules) {
    ConversationIdRule r;
    r.text = text;
    const std::string_view t = text;
    if (t == "call-id") {
      r.kind = ConversationIdRule::Kind::kCallId;
    } else if (t == "metadata:session_id") {
      r.kind = ConversationIdRule::Kind::kSessionId;
    } else if (t.substr(0, 7) == "header:") {
      r.kind = ConversationIdRule::Kind::kHeader;
      r.name = std::string(common::trim(t.substr(7)));
      if (r.name.empty()) return rule_error(text, "header name is empty");
    } else if (t.substr(0, 10) == "extension:") {
      r.kind = ConversationIdRule::Kind::kExtension;
      const std::string_view rest = t.substr(10);
      const auto colon = rest.find(':');
      if (colon == std::string_view::npos) return rule_error(text, "expected extension:SCOPE:NAME");
      const auto scope = scope_from(rest.substr(0, colon));
      if (!scope) return rule_error(text, "scope must be session, group, participant or any");
      r.scope = *scope;
      r.name = std::string(rest.substr(colon + 1));
      if (r.name.empty() || r.name.find(':') != std::string::npos) {
        return rule_error(text, "NAME must be a non-empty local name without prefix");
      }
      r.name = detail::fold_name(r.name);
    } else if (t.substr(0, 6) == "regex:") {
      const std::string_view rest = t.substr(6);
      std::string_view pattern;
      if (rest.substr(0, 8) == "call-id:") {
        r.kind = ConversationIdRule::Kind::kRegexCallId;
        pattern = rest.substr(8);
      } else if (rest.substr(0, 11) == "session-id:") {
        r.kind = ConversationIdRule::Kind::kRegexSessionId;
        pattern = rest.substr(11);
      } else {
        return rule_error(text, "expected regex:call-id:PATTERN or regex:session-id:PATTERN");
      }
      if (pattern.empty()) return rule_error(text, "empty pattern");
      // Start-up configuration: std::regex reports a bad pattern only by throwing.
      try {
        r.regex = std::make_shared<const std::regex>(std::string(pattern), std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return rule_error(text, std::string("bad regular expression: ") + e.what());
      }
    } else {
      return rule_error(text, "unknown rule kind (header:, extension:, regex:, metadata:session_id, call-id)");
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<ConversationIdMatch> find_conversation_id(const std::vector<ConversationIdRule>& rules,
                                                        const RecordingMetadata* md, const HeaderLookup& lookup,
                                                        std::string_view call_id) {
  for (const auto& r : rules) {
    std::optional<std::string> v;
    switch (r.kind) {
      case ConversationIdRule::Kind::kHeader:
        if (lookup) {
          for (const auto& h : lookup(r.name)) {
            v = sane(h);
            if (v) break;
          }
        }
        break;
      case ConversationIdRule::Kind::kExtension:
        if (md != nullptr) v = from_scope(*md, r.scope, r.name);
        break;
      case ConversationIdRule::Kind::kRegexCallId:
        if (r.regex) v = from_regex(*r.regex, call_id);
        break;
      case ConversationIdRule::Kind::kRegexSessionId:
        if (r.regex) v = from_regex(*r.regex, first_session_id(md));
        break;
      case ConversationIdRule::Kind::kSessionId:
        v = sane(first_session_id(md));
        break;
      case ConversationIdRule::Kind::kCallId:
        v = sane(call_id);
        break;
    }
    if (v) return ConversationIdMatch{std::move(*v), r.text};
  }
  return std::nullopt;
}

}  // namespace sgw::metadata
