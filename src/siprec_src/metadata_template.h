// Recording metadata as the SRCs siprec-src imitates send it (RFC 7865 and the older dialects
// the gateway accepts; docs/metadata.md, docs/siprec-src.md), plus the SIP headers that go with
// each dialect. Every document names a caller and an agent, one stream each (labels "1" and "2",
// caller sends stream 1), and carries the call's conversation id the way that SRC does.
// Pure functions, any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/strings.h"
#include "sip/sip_message.h"

namespace sgw::siprec_src {

enum class Dialect {
  kRfc7865,     // Genesys Cloud Edge: RFC 7865 + GenesysConversationID/GenesysParticipant purpose
  kAcme,        // Oracle/Acme Packet SBC: pre-RFC draft namespace, apkt:callingParty
  kAudioCodes,  // AudioCodes SBC: draft namespace, group + sipSessionID, From then To participant
  kBroadWorks,  // BroadWorks / Webex Calling: flat <recording_metadata>, <send><id>...</id></send>
  kLegacy,      // early <recording_metadata>: participants/streams nested in <session>, <send>ID</send>
  kRibbon,      // Ribbon/Sonus SBC: RFC 7865 (prefixed) + callData from/to in the group
  kAvaya,       // Avaya: RFC 7865 in camelCase, stream_id="" (streams identified by label)
  kCisco,       // Cisco CUBE/CUCM: no metadata body, X-Cisco-Recording-Participant headers
};

// "rfc7865" (also "genesys"), "acme" (also "draft", "oracle"), "audiocodes", "broadworks"
// (also "webex"), "legacy", "ribbon" (also "sonus"), "avaya", "cisco".
common::Result<Dialect> parse_dialect(std::string_view name);
std::string_view dialect_name(Dialect d);
std::vector<Dialect> all_dialects();

struct Party {
  std::string id;    // metadata participant id
  std::string aor;   // as this dialect writes it (AudioCodes: no "sip:")
  std::string name;  // display name
};

// Everything that identifies one recorded call; stays the same across re-INVITEs and when the
// recording is re-established on another gateway (RFC 7866 §6.2: same communication session).
struct CallIdentity {
  std::string conversation_id;   // a UUID; X-GenesysConversationID and extension data
  std::string recorded_call_id;  // SIP Call-ID of the recorded call (callData, AudioCodes CallID)
  std::string sip_session_id;    // RFC 7989 Session-ID of the recorded call
  std::string group_id;
  std::string session_id;
  std::string stream_ids[2];  // metadata stream ids; labels are "1" (caller) and "2" (agent)
  Party caller;
  Party agent;
  Party agent2;      // the agent a transfer hands the call to
  Party supervisor;  // joins with metadata-update / update
  std::string start_time;  // RFC 3339, the recorded call's start
};

// A fresh identity for call number `index` (0-based): random UUID conversation id and random
// ids; AoRs are derived from the index so recordings are easy to tell apart
// (caller sip:+1555NNNNNNN@carrier.example.net, agent sip:agent-N@cc.example.com).
CallIdentity make_identity(Dialect d, std::uint64_t index, std::string_view start_time);

// What has happened to the participants so far (for a complete document after re-establishing).
struct ParticipantState {
  std::optional<std::string> supervisor_joined;  // associate time
  std::optional<std::string> transferred;        // agent left / agent2 joined at this time
};

// The complete metadata document (RFC 7865 §6.1 datamode complete). Empty for kCisco.
std::string render_complete(Dialect d, const CallIdentity& id, const ParticipantState& st = {});

// Partial documents (datamode partial): the supervisor joins (receives both streams), or the
// agent leaves and agent2 joins sending stream 2 (a transfer). Empty for kCisco.
std::string render_join(Dialect d, const CallIdentity& id, std::string_view time);
std::string render_transfer(Dialect d, const CallIdentity& id, std::string_view time);

// Headers of the initial INVITE besides Require/Supported: X-GenesysConversationID for every
// dialect (the gateway's first conversation-id rule), and the Cisco participant headers.
sip::HeaderList dialect_headers(Dialect d, const CallIdentity& id);

// Headers of the transfer re-INVITE: for Cisco, X-Cisco-Recording-Participant naming the
// caller (media-index 1) and agent2 (media-index 2), as CUBE sends after a transfer; none for
// the XML dialects (their transfer is in the body).
sip::HeaderList transfer_headers(Dialect d, const CallIdentity& id);

using common::xml_escape;  // the templates escape every value they insert

}  // namespace sgw::siprec_src
