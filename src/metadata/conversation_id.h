// Conversation id extraction: which identifier groups the recordings of one conversation.
//
// Rules are configured as strings, evaluated in order; the first rule that yields a non-empty,
// sane value (after trimming: at most 256 bytes, no control characters) wins:
//   header:NAME                  first non-empty value of SIP header NAME (via HeaderLookup)
//   extension:SCOPE:NAME         text of an element with local name NAME, or an attribute NAME,
//                                inside extension data of SCOPE = session|group|participant|any,
//                                at any depth, names compared case-insensitively ignoring '-'
//                                and '_' (any namespace prefix)
//   regex:call-id:PATTERN        std::regex (ECMAScript) searched in the Call-ID; capture
//   regex:session-id:PATTERN     group 1 if it matched, else the whole match; session-id is the
//                                first metadata session's id
//   metadata:session_id          the first metadata session's id
//   call-id                      the SIP Call-ID
// parse_rules is called once at start-up; it rejects unknown kinds, empty names and bad regexes
// with code "metadata.rule" and a message naming the rule.
//
// Thread-safety: rules are immutable after parse_rules and may be shared between threads;
// find_conversation_id is a pure function.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "metadata/recording_metadata.h"

namespace sgw::metadata {

// Returns every value of the named SIP header; the callee matches the name case-insensitively
// (RFC 3261 §7.3.5) and may return an empty vector. Must not throw.
using HeaderLookup = std::function<std::vector<std::string>(std::string_view name)>;

enum class ExtensionScope { kSession, kGroup, kParticipant, kAny };

struct ConversationIdRule {
  enum class Kind { kHeader, kExtension, kRegexCallId, kRegexSessionId, kSessionId, kCallId };
  Kind kind = Kind::kCallId;
  std::string text;  // the rule as configured, reported in ConversationIdMatch::rule
  std::string name;  // header name; for kExtension the folded local name (detail::fold_name)
  ExtensionScope scope = ExtensionScope::kAny;
  std::shared_ptr<const std::regex> regex;  // for the regex kinds
};

struct ConversationIdMatch {
  std::string value;
  std::string rule;  // ConversationIdRule::text of the rule that matched
};

inline constexpr std::size_t kMaxConversationIdLength = 256;

common::Result<std::vector<ConversationIdRule>> parse_rules(const std::vector<std::string>& rules);

// md may be null (no metadata body); lookup may be empty (no headers available).
std::optional<ConversationIdMatch> find_conversation_id(const std::vector<ConversationIdRule>& rules,
                                                        const RecordingMetadata* md,
                                                        const HeaderLookup& lookup,
                                                        std::string_view call_id);

}  // namespace sgw::metadata
