// Spool events that describe damage and other counts (docs/spool.md "Damage
// records"): typed records written into a spool as kEvent JSON by one layer
// (spool writer, finaliser, media) and read back by the finaliser. Encode and
// decode live side by side here; the finaliser never parses these by hand.
//
// Every counter is cumulative: the last record that reached the disk is the
// truth, and a reader merges by taking the largest value (merge()).
// Pure functions, any thread. decode_* never throw on disk input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sgw::recording {

// "spool_fault": written by SpoolWriter::flush().
struct SpoolFault {
  std::uint64_t records_dropped = 0;
  std::uint64_t write_errors = 0;
  std::uint64_t sync_failures = 0;
  std::string error;  // last error text; may be empty

  bool any() const { return records_dropped || write_errors || sync_failures; }
  // Largest of each counter; the error of whichever has more faults (b on a tie).
  void merge(const SpoolFault& b);
  std::string encode() const;
  bool operator==(const SpoolFault&) const = default;
};

// "finalize_failed": appended by the Finalizer when building or publishing failed.
struct FinalizeFailure {
  std::uint64_t attempt = 0;
  std::string error;
  std::string encode() const;
  bool operator==(const FinalizeFailure&) const = default;
};

// "stream_counters": per-stream counts the media layer measured. nullopt: not measured.
struct StreamCounter {
  std::optional<std::uint64_t> wrong_source;
  std::optional<std::uint64_t> kernel_drops;
  std::optional<std::uint64_t> srtp_auth_failures = std::nullopt;  // SRTP streams only
  std::optional<std::uint64_t> srtp_replays = std::nullopt;
  bool operator==(const StreamCounter&) const = default;
};
struct StreamCounters {
  std::map<std::size_t, StreamCounter> streams;  // by stream index
  void merge(const StreamCounters& b);
  std::string encode() const;
  bool operator==(const StreamCounters&) const = default;
};

// "node_lost": appended by orphan adoption (storage/partials.h) to a spool
// rebuilt from another node's shipped partials. The record's time is the end
// of the window in which audio may have reached the lost node and was not
// shipped (its last shipment + one segment interval); the finaliser states the
// time from the end of the shipped audio to there as a gap of cause node_lost.
struct NodeLost {
  std::string node;          // the node that recorded the call and stopped shipping
  std::string region;
  std::string adopted_by;    // the node that rebuilt the recording
  std::int64_t last_shipped_unix_ms = 0;  // the newest partial's time
  std::uint64_t partials = 0;             // partials stitched
  std::uint64_t partials_skipped = 0;     // corrupt, truncated or missing: never stitched
  std::string problems;                   // what was skipped and why ("; "-separated)
  std::string encode() const;
  bool operator==(const NodeLost&) const = default;
};

// "live_stream": written by the live-audio tap (stream/stream_tap.h) when the call ends: how the
// WebSocket stream of this recording fared up to then (docs/integrations.md "Live audio"). The
// recording itself never depends on it; the finaliser copies it into the JSON's "stream".
struct LiveStreamReport {
  std::string url;       // scheme://host[:port]/path (no query: it may carry a token)
  std::string protocol;  // "audiohook" | "plain"
  std::string state;     // "streaming" | "connecting" | "failed" | "closed" at the end of the call
  std::uint64_t connects = 0;         // WebSocket handshakes that succeeded
  std::uint64_t connect_failures = 0;
  std::uint64_t reconnects = 0;        // handshakes after an earlier connection of the call was up
  std::uint64_t connections_lost = 0;  // connections that ended before the call did (not by us)
  std::uint64_t frames_sent = 0;      // 20 ms frames written to the socket
  std::uint64_t frames_dropped = 0;   // frames the server was too slow (or absent) to take
  std::uint64_t outage_frames = 0;    // of frames_dropped: lost while no session was open
                                      // (connecting, lost with a connection, reconnecting)
  std::uint64_t packets_dropped = 0;  // RTP packets the tap's queue had no room for
  std::int64_t latency_p50_ms = -1;   // packet arrival -> frame written; -1: no frame
  std::int64_t latency_p99_ms = -1;
  std::int64_t latency_max_ms = -1;
  std::string error;  // last connection error; may be empty
  std::string encode() const;
  bool operator==(const LiveStreamReport&) const = default;
};

// The "event" name of a kEvent JSON document ("" when it is not an object with one).
std::string spool_event_name(std::string_view json);
// nullopt unless json is an object with the matching "event" name. Wrong-typed
// fields read as absent (0 / empty).
std::optional<SpoolFault> decode_spool_fault(std::string_view json);
std::optional<FinalizeFailure> decode_finalize_failure(std::string_view json);
std::optional<StreamCounters> decode_stream_counters(std::string_view json);
std::optional<NodeLost> decode_node_lost(std::string_view json);
std::optional<LiveStreamReport> decode_live_stream(std::string_view json);

inline constexpr std::string_view kSpoolFaultEvent = "spool_fault";
inline constexpr std::string_view kFinalizeFailedEvent = "finalize_failed";
inline constexpr std::string_view kStreamCountersEvent = "stream_counters";
inline constexpr std::string_view kNodeLostEvent = "node_lost";
inline constexpr std::string_view kLiveStreamEvent = "live_stream";

}  // namespace sgw::recording
