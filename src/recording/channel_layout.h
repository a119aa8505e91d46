// Channel layout: which recorded stream goes to which file and channel, and which participant
// (with which role: caller or agent) each channel carries. See docs/channel-layout.md.
//
// RFC 7865 has no role field, so roles come from ordered, configurable rules that read what
// each SRC dialect does carry (Oracle/Acme `callingParty`, Genesys `purpose`, Ribbon `callData`,
// AudioCodes participant order, AOR patterns), with metadata order and then m-line order as the
// documented fallback. Never from the order RTP happened to arrive in.
//
// Thread-safety: rules are immutable after parse_role_rules and may be shared between threads;
// build_channel_layout is a pure function.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "metadata/recording_metadata.h"

namespace sgw::recording {

inline constexpr std::string_view kRoleCaller = "caller";    // the customer / external side
inline constexpr std::string_view kRoleAgent = "agent";      // the contact-centre side
inline constexpr std::string_view kRoleUnknown = "unknown";

// A recorded stream of the recording session, in SDP m-line order.
struct RecordedStream {
  std::size_t index = 0;  // m-line index in the recording session's SDP
  std::string label;      // its a=label (RFC 4574), empty when none
};

struct ParticipantInfo {
  std::string id;         // metadata participant id
  std::string aor;        // first AOR, empty when none
  std::string name;       // display name, empty when none
  std::string role;       // kRoleCaller | kRoleAgent | kRoleUnknown
  std::string role_rule;  // text of the rule that decided the role; empty when unknown
};

struct Channel {
  std::size_t stream_index = 0;  // RecordedStream::index
  std::string label;
  // The participant sending this stream (per the metadata's send associations); when several
  // send it (a mixed stream), the first one whose role matches `role`, else the first in order.
  std::optional<ParticipantInfo> participant;
  std::string role;       // role of this channel (the participant's, or by m-line order)
  std::string role_rule;  // rule that decided `role`; empty when unknown
};

struct OutputFile {
  // Appended to the recording's base file name: "" when the layout has a single file;
  // "-<m-line index>[-<label, sanitised>]" for each file in mono-files mode.
  std::string name_suffix;
  std::vector<Channel> channels;  // channel 0 first
};

struct ChannelLayout {
  std::vector<OutputFile> files;  // empty when there is no recorded stream
  // Every metadata participant in document order, with its role (also those without a stream).
  std::vector<ParticipantInfo> participants;
};

// One configured role rule. Syntax (see docs/channel-layout.md):
//   extension:NAME=VALUE:ROLE   a participant extension field NAME (local name) equal to VALUE
//   role-field:NAME             a participant extension field NAME whose value names a role
//   aor-regex:PATTERN=ROLE      an AOR of the participant matches PATTERN (ECMAScript, search)
//   name-regex:PATTERN=ROLE     the participant's display name matches PATTERN
//   calldata-from               Ribbon/Sonus callData: the From URI's participant is the caller,
//                               the To URI's the agent
//   metadata-order              first unresolved participant sending a recorded stream = caller,
//                               next = agent (for roles not yet taken)
//   mline-order                 the sender of the first recorded m-line = caller, the next = agent
// ROLE is "caller" or "agent" (also accepted: customer/external -> caller, internal -> agent).
struct RoleRule {
  enum class Kind { kExtension, kRoleField, kAorRegex, kNameRegex, kCallDataFrom, kMetadataOrder, kMlineOrder };
  Kind kind = Kind::kMetadataOrder;
  std::string text;   // the rule as configured, reported as role_rule
  std::string name;   // extension field name
  std::string value;  // extension field value
  std::string role;   // role assigned (kExtension, regex kinds)
  std::shared_ptr<const std::regex> regex;
};

// The defaults (documented in docs/channel-layout.md):
//   extension:callingParty=true:caller, extension:callingParty=false:agent, role-field:purpose,
//   role-field:role, role-field:participantRole, calldata-from, metadata-order, mline-order
const std::vector<std::string>& default_role_rules();

// Called once at start-up. Errors: code "layout.rule", message quoting the rule.
common::Result<std::vector<RoleRule>> parse_role_rules(const std::vector<std::string>& rules);

enum class CallerChannel { kLeft, kRight };                // config: caller_channel: left|right
enum class MultiStreamMode { kMultichannel, kMonoFiles };  // config: multi_stream_mode

common::Result<CallerChannel> parse_caller_channel(std::string_view s);  // code "layout.config"
common::Result<MultiStreamMode> parse_multi_stream_mode(std::string_view s);
std::string_view caller_channel_name(CallerChannel c);
std::string_view multi_stream_mode_name(MultiStreamMode m);

struct LayoutConfig {
  std::vector<RoleRule> rules;  // empty = no rule: every role unknown, stereo in m-line order
  CallerChannel caller_channel = CallerChannel::kLeft;
  MultiStreamMode multi_stream_mode = MultiStreamMode::kMultichannel;
};

// LayoutConfig with default_role_rules() parsed (they always parse).
LayoutConfig default_layout_config();

// Exactly two recorded streams: one stereo file, the caller's stream on caller_channel and the
// other stream on the other side (ties and unknown roles: m-line order). Any other count: one
// file with one channel per stream in m-line order (multichannel), or one mono file per stream.
// `md` may be null (no metadata). Streams are used in the order given (callers pass m-line order).
ChannelLayout build_channel_layout(const metadata::RecordingMetadata* md,
                                   const std::vector<RecordedStream>& streams, const LayoutConfig& cfg);

}  // namespace sgw::recording
