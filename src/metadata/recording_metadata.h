// RecordingMetadata: the immutable model of a recording session's SIPREC metadata (RFC 7865),
// whichever dialect the SRC sent it in. Plain value types: copy freely, share as const.
//
// Identifiers, labels and times are kept as the text the SRC sent (times are RFC 3339 strings,
// labels may be "1", "96", "audio-agent" or "18446744073709551617"). Every string in a model
// produced by this layer is valid UTF-8 (invalid bytes are replaced by U+FFFD).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sgw::metadata {

// Which document shape the parser recognised (see docs/metadata.md).
enum class Dialect {
  kRfc7865,       // <recording xmlns="urn:ietf:params:xml:ns:recording:1">, *_id attributes
  kDraft,         // pre-RFC draft, xmlns="urn:ietf:params:xml:ns:recording", id=/session= attributes
  kLegacySiprec,  // <recording_metadata xmlns="urn:ietf:params:xml:ns:siprec"> (BroadWorks era)
  kCiscoHeaders,  // no XML: participants from X-Cisco-Recording-Participant headers
};

// Stable lower-case name used in JSON and logs: "rfc7865", "draft", "siprec-legacy", "cisco-headers".
std::string_view dialect_name(Dialect d);

// RFC 7865 §6.1: "complete" carries the whole state, "partial" only what changed.
enum class DataMode { kComplete, kPartial };
std::string_view data_mode_name(DataMode m);

// One flattened value inside an extension: an element's own text or an attribute's value,
// named by its local name (namespace prefix stripped). Used for lookups such as
// the conversation-id rule `extension:session:GenesysConversationID`.
struct ExtensionField {
  std::string name;
  std::string value;
};

// An <extensiondata> element or any element the parser does not model (RFC 7865 §6.9 lets
// every element carry foreign-namespace children). `xml` is the element serialised as received
// (formatting kept; prefixes declared on ancestors are re-declared so the text stands alone).
struct Extension {
  std::string xml;
  std::vector<ExtensionField> fields;
};

// RFC 7865 §6.2 communication session group.
struct Group {
  std::string id;
  std::optional<std::string> associate_time;
  std::optional<std::string> disassociate_time;
  std::vector<Extension> extensions;
};

// RFC 7865 §6.3 communication session. start/stop times come from <start-time>/<stop-time>;
// associate/disassociate times from <sessionrecordingassoc> (or the draft's <associate-time>
// inside <session>).
struct Session {
  std::string id;
  std::optional<std::string> group_id;
  std::vector<std::string> sip_session_ids;  // <sipSessionID> (RFC 7989 Session-ID values)
  std::optional<std::string> start_time;
  std::optional<std::string> stop_time;
  std::optional<std::string> associate_time;
  std::optional<std::string> disassociate_time;
  std::vector<Extension> extensions;
};

struct LocalizedName {
  std::string lang;  // xml:lang, empty when absent
  std::string name;
};

// RFC 7865 §6.6 participantsessionassoc: when a participant joined / left a session.
struct SessionAssociation {
  std::string session_id;
  std::optional<std::string> associate_time;
  std::optional<std::string> disassociate_time;  // set = the participant left
};

// RFC 7865 §6.5 participant.
struct Participant {
  std::string id;
  std::vector<std::string> aors;    // <nameID aor="..."> (draft: <aor>), in document order
  std::string display_name;         // first <name>, empty when none
  std::vector<LocalizedName> names; // every <name>, with its xml:lang
  std::vector<SessionAssociation> sessions;
  std::vector<std::string> send;    // stream ids this participant sends (RFC 7865 §6.7)
  std::vector<std::string> recv;    // stream ids this participant receives
  std::vector<Extension> extensions;
};

// RFC 7865 §6.4 media stream. `label` matches the SDP a=label of the recording session.
struct Stream {
  std::string id;  // may be empty (some SRCs send stream_id=""): then label identifies it
  std::string label;
  std::optional<std::string> session_id;
  std::optional<std::string> mode;  // draft: <mode>separate|mixed</mode>
  std::vector<Extension> extensions;
};

// Original-call data some SBCs (Sonus/Ribbon "callData") put into extension data.
struct CallData {
  std::string from;
  std::string to;
  std::string call_id;
  std::string gcid;                          // Ribbon global call id, empty when absent
  std::vector<ExtensionField> other_fields;  // any other child, e.g. headers mapped by profile
};

struct RecordingMetadata {
  Dialect dialect = Dialect::kRfc7865;
  DataMode data_mode = DataMode::kComplete;
  std::vector<Group> groups;
  std::vector<Session> sessions;
  std::vector<Participant> participants;
  std::vector<Stream> streams;
  std::vector<Extension> extensions;  // unknown children of the root element
  std::optional<CallData> call_data;
  std::vector<std::string> warnings;  // tolerated oddities, one line each (bounded)
};

}  // namespace sgw::metadata
