// Cisco network-based recording (CUBE / CUCM built-in bridge) sends no rs-metadata body: the
// recorded parties are named in INVITE headers such as
//   X-Cisco-Recording-Participant: sip:708090@10.42.30.5;media-index="0"
//   X-Cisco-Recording-Participant: "Agent 10000" <sip:10000@10.42.30.32>;media-index="1"
// from_cisco_headers builds a metadata model from those header values: one participant per
// name-addr / addr-spec (several per header when comma-separated), one session whose id and
// sipSessionID are the recording's Call-ID, and, for each media-index parameter, a stream with
// that id and label which the participant sends. Dialect is kCiscoHeaders.
//
// Never throws; unparsable entries are skipped with a warning. Pure function, any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadata/recording_metadata.h"

namespace sgw::metadata {

inline constexpr std::string_view kCiscoParticipantHeader = "X-Cisco-Recording-Participant";

RecordingMetadata from_cisco_headers(const std::vector<std::string>& header_values,
                                     std::string_view call_id);

// The same headers on a re-INVITE / UPDATE (a transfer or a conference on CUBE): a metadata
// update, applied like an XML partial update (docs/metadata.md "Cisco network-based recording").
// Entries are matched to `base`'s participants by URI. A new URI is a new participant
// (`cisco-N`) that joins at `time` and sends its media-index stream; a current participant
// sending a media-index that the headers now give to another URI leaves at `time`. Participants
// on a media-index the headers do not mention are untouched.
// Returns the merged model, or nullopt when the headers change nothing, or when `base` came
// from an XML body (the XML is then the metadata; the headers are ignored). A null `base` (no
// metadata yet) gives from_cisco_headers(values, call_id). Pure function, any thread.
std::optional<RecordingMetadata> merge_cisco_headers(const RecordingMetadata* base,
                                                     const std::vector<std::string>& header_values,
                                                     std::string_view call_id, std::string_view time);

// The spool event that carries a re-INVITE's Cisco headers from siprec/ (writer) to the
// finaliser (reader), which replays it with merge_cisco_headers. `event` is the text listed in
// the recording's events.
struct CiscoHeadersEvent {
  std::string time;                 // RFC 3339, when the request arrived
  std::vector<std::string> values;  // the X-Cisco-Recording-Participant values, in order
};
nlohmann::json encode_cisco_event(const CiscoHeadersEvent& e);
// nullopt when `j` is not such an event (another event type, or malformed).
std::optional<CiscoHeadersEvent> decode_cisco_event(const nlohmann::json& j);

}  // namespace sgw::metadata
