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

#include <string>
#include <string_view>
#include <vector>

#include "metadata/recording_metadata.h"

namespace sgw::metadata {

inline constexpr std::string_view kCiscoParticipantHeader = "X-Cisco-Recording-Participant";

RecordingMetadata from_cisco_headers(const std::vector<std::string>& header_values,
                                     std::string_view call_id);

}  // namespace sgw::metadata
