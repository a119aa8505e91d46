// The recording's metadata JSON document: published next to the audio file(s) and uploaded as
// the recording's metadata object. Shape and every field: docs/recording-json.md.
//
// build_recording_json is a pure function of its input (no clock, no I/O): the same input gives
// the same document, and render_recording_json the same bytes (objects have sorted keys).
// Any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadata/recording_metadata.h"
#include "recording/audio_writer.h"
#include "recording/channel_layout.h"

namespace sgw::recording {

inline constexpr int kRecordingJsonSchemaVersion = 1;

// One recorded communication session (RFC 7865 §6.3): what identifies the original call.
struct CommunicationSession {
  std::string session_id;                    // metadata session id
  std::vector<std::string> call_ids;         // SIP Call-IDs of the recorded call, when known
  std::vector<std::string> sip_session_ids;  // <sipSessionID> (RFC 7989 Session-ID values)
  std::optional<std::string> start_time;     // RFC 3339 text as the SRC sent it
  std::optional<std::string> stop_time;
};

struct ParticipantEntry {
  std::string id;
  std::string aor;
  std::string name;
  std::string role;       // caller | agent | unknown
  std::string role_rule;  // empty when unknown
  std::optional<unsigned> channel;   // channel of the first recorded stream it sends
  std::optional<std::string> file;   // the file holding that channel
  std::optional<std::string> join_time;   // earliest associate-time over its sessions
  std::optional<std::string> leave_time;  // latest disassociate-time, only if it left every session
};

struct StreamEntry {
  std::size_t index = 0;  // m-line index
  std::string label;
  std::string codec;  // e.g. "PCMA/8000"
  std::vector<std::uint32_t> ssrcs;  // every SSRC seen, in order of first appearance
  std::uint64_t packets_received = 0;
  std::uint64_t packets_lost = 0;
  std::uint64_t packets_late = 0;
  std::uint64_t packets_duplicated = 0;
  std::optional<std::string> first_packet_time;  // RFC 3339 (common::utc_now_iso8601 format)
  std::optional<std::string> last_packet_time;
  std::optional<std::string> file;  // where it was written (see place_streams)
  std::optional<unsigned> channel;
  std::optional<std::string> participant;  // sending participant id
  std::string srtp = "";  // SDES-SRTP suite, e.g. "AEAD_AES_128_GCM"; "" (null) for plain RTP. Never keys.
};

struct GapEntry {
  std::int64_t start_ms = 0;  // from the start of the recording's timeline
  std::int64_t length_ms = 0;
  std::string cause;  // e.g. "no-rtp", "packet-loss", "gateway-restart", "hold"
  std::optional<std::string> stream_label;  // null = every stream
};

struct DtmfEntry {
  std::string digit;  // "0"-"9", "*", "#", "A"-"D" (RFC 4733 events 0-15)
  std::int64_t start_ms = 0;
  std::int64_t duration_ms = 0;
  std::string stream_label;
  std::optional<std::string> participant;  // sending participant id
};

struct MetadataDocument {
  std::string received_at;  // RFC 3339
  std::string xml;          // the rs-metadata body as received
};

struct MetadataError {
  std::string received_at;
  std::string code;  // common::Error::code, e.g. "metadata.xml"
  std::string message;
};

struct RecordingEvent {
  std::string time;  // RFC 3339
  std::string what;  // e.g. "invite", "reinvite", "hold", "resume", "bye", "rtp-timeout"
};

// What the recording knows about audio that reached the gateway and is not in the files, and
// about suspicious silence (docs/recording-json.md "integrity"). Filled by the finaliser from
// the spool; every count comes from a record or a packet the spool holds.
struct SilenceEntry {
  std::int64_t start_ms = 0;
  std::int64_t length_ms = 0;
};

struct StreamIntegrity {
  std::size_t index = 0;
  std::string label;
  std::string role;  // participant role of the sender ("caller", "agent"); "" when unknown
  std::uint64_t packets_expected = 0;    // RFC 3550 A.3, from the sequence numbers
  std::uint64_t packets_received = 0;    // RTP records in the spool (duplicates included)
  std::uint64_t packets_lost = 0;        // sequence numbers never received
  std::uint64_t packets_duplicated = 0;
  std::uint64_t packets_late = 0;        // received, too late for the timeline: NOT in the audio
  // Not negotiated when it arrived: decoded anyway in an unambiguous static payload type (0 PCMU,
  // 8 PCMA, 9 G722, 18 G729), otherwise dropped and also counted in packets_undecodable.
  std::uint64_t packets_unexpected_payload_type = 0;
  std::uint64_t packets_undecodable = 0;
  std::optional<std::uint64_t> packets_wrong_source;    // nullopt: not measured
  std::optional<std::uint64_t> packets_kernel_dropped;  // SO_RXQ_OVFL; nullopt: not measured
  // SRTP streams: packets that failed authentication / were replays, dropped (never audio).
  // nullopt: not an SRTP stream.
  std::optional<std::uint64_t> srtp_auth_failures;
  std::optional<std::uint64_t> srtp_replays;
  std::vector<SilenceEntry> silences;  // active stretches without RTP over the threshold
};

struct SpoolIntegrity {
  std::uint64_t records_dropped = 0;
  std::uint64_t write_errors = 0;
  std::uint64_t sync_failures = 0;
  std::uint64_t bytes_unreadable = 0;    // skipped by the reader (corrupt or torn)
  std::uint64_t regions_unreadable = 0;
  std::string last_error;                // empty -> null
};

struct Integrity {
  std::int64_t silence_threshold_ms = 10000;
  SpoolIntegrity spool;
  std::vector<StreamIntegrity> streams;
  std::uint64_t finalize_failures = 0;   // failed attempts before this one was published
  std::string last_finalize_error;       // empty -> null
};

// Why audio that reached the gateway is missing from the files, one line each (empty: nothing
// known to be missing). Any entry makes the recording complete=false.
std::vector<std::string> integrity_causes(const Integrity& in);
// What a reviewer must see first: every cause above plus silence, wrong-source and unexpected
// payload types, e.g. "stream 1 (agent): no audio received for 42.0 s".
std::vector<std::string> integrity_warnings(const Integrity& in);

struct GatewayInfo {
  std::string node;
  std::string region;
};

struct RecordingJsonInput {
  std::string recording_id;
  std::string conversation_id;       // empty -> null
  std::string conversation_id_rule;  // rule that matched; empty -> null
  std::string siprec_session_id;     // metadata group id, else first session id; empty -> null
  std::string recording_call_id;     // Call-ID of the recording session (SRC <-> us); empty -> null
  // The id every fragment of one call shares (conversation id, else the SIPREC
  // communication session id); empty -> null. docs/failover.md.
  std::string fragment_of;
  // This node's recording of the same conversation just before this one
  // (a re-establish that came back here); empty -> null.
  std::string previous_fragment;
  std::vector<CommunicationSession> communication_sessions;
  std::vector<ParticipantEntry> participants;
  std::vector<StreamEntry> streams;
  std::string start_time;  // RFC 3339
  std::string end_time;
  std::int64_t duration_ms = 0;
  std::vector<GapEntry> gaps;
  std::vector<DtmfEntry> dtmf;
  bool complete = true;
  std::string incomplete_reason;  // empty -> null
  GatewayInfo gateway;
  std::vector<MetadataDocument> metadata_xml;  // arrival order
  std::optional<metadata::RecordingMetadata> metadata;  // merged model; nullopt -> null
  std::vector<MetadataError> metadata_errors;
  std::vector<RecordingEvent> events;
  std::vector<AudioFileInfo> audio;  // one per output file, in ChannelLayout::files order
  Integrity integrity;
  std::vector<std::string> warnings;  // usually integrity_warnings(integrity) plus the finaliser's own
  // The live-audio stream's report (spool_events.h LiveStreamReport without "event"); the key
  // "live_stream" is present only for a streamed recording (docs/recording-json.md).
  std::optional<nlohmann::json> live_stream;
};

nlohmann::json build_recording_json(const RecordingJsonInput& in);

// The document as published: 2-space indented, trailing newline, `warnings` first and the other
// keys sorted. Invalid UTF-8 in any string (a raw metadata body can carry anything) is replaced
// by U+FFFD instead of throwing.
std::string render_recording_json(const nlohmann::json& doc);

// Helpers for the finaliser -------------------------------------------------------------

// Metadata group id if there is a group, else the first session id, else "".
std::string siprec_session_id_of(const metadata::RecordingMetadata& md);

// One entry per metadata session; the Ribbon callData Call-ID is attributed to the session when
// the metadata has exactly one.
std::vector<CommunicationSession> communication_sessions_of(const metadata::RecordingMetadata& md);

// Participants of the layout with channel/file (audio[i] is the file of layout.files[i]; missing
// entries leave file null) and join/leave times from md (may be null).
std::vector<ParticipantEntry> participants_of(const ChannelLayout& layout,
                                              const std::vector<AudioFileInfo>& audio,
                                              const metadata::RecordingMetadata* md);

// Fills file / channel / participant of each stream entry from the layout (matched by index).
void place_streams(std::vector<StreamEntry>& streams, const ChannelLayout& layout,
                   const std::vector<AudioFileInfo>& audio);

}  // namespace sgw::recording
