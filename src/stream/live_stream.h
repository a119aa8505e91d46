// LiveStream: what a recording's media worker and the streaming thread share for one live-audio
// stream (docs/integrations.md "Live audio").
//
// The worker (StreamTap) is the only producer, the streaming thread (Streamer) the only consumer:
//   - RTP packets go through a single-producer single-consumer ring of fixed slots, allocated
//     once; a full ring or a payload larger than a slot drops the packet and counts it. The
//     worker never waits and never allocates per packet.
//   - signalling events (pause/resume, codec changes) are rare; they go through a small list
//     under a mutex that each side holds only to append or to swap the list out.
//   - counters are relaxed atomics, read by the worker when the call ends (its report).
// Lifetime: shared_ptr held by the tap and by the streamer; whichever lets go last frees it.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "recording/call_decision.h"
#include "recording/spool_events.h"

namespace sgw::stream {

enum class Protocol { kAudioHook, kPlain };
std::string_view protocol_name(Protocol p);

// Where and how one recording is streamed.
struct StreamTarget {
  std::string url;  // ws://host[:port]/path or wss://...
  Protocol protocol = Protocol::kAudioHook;
  std::string api_key;          // sent as X-API-KEY when set
  std::string organization_id;  // AudioHook organizationId / Audiohook-Organization-Id
};

// The target of one call (docs/integrations.md "Live audio"): the
// call-control hook's `stream` over the configuration's (`configured`, whose
// empty url means no stream.url). Without a hook stream: the configured one;
// a hook stream with an empty url: none; otherwise the hook's url, and its
// protocol / api_key / organization_id where given, else the configured ones.
// nullopt: the call is not streamed.
std::optional<StreamTarget> stream_target_for(const StreamTarget& configured,
                                              const std::optional<recording::StreamOverride>& hook);

// One RTP packet copied off the worker. 640 bytes hold 40 ms of G.711, 80 ms of G.722 and any
// usual Opus packet; longer payloads are dropped (counted as packets_dropped).
struct PacketSlot {
  static constexpr std::size_t kMaxPayload = 640;
  std::uint64_t counter = 0;     // tap's packet count when it was pushed (orders it with events)
  std::int64_t arrival_us = 0;   // session clock
  std::uint32_t timestamp = 0;
  std::uint32_t ssrc = 0;
  std::uint16_t seq = 0;
  std::uint8_t stream = 0;       // m-line index
  std::uint8_t payload_type = 0;
  std::uint16_t length = 0;
  std::array<std::uint8_t, kMaxPayload> payload{};
};

// Lock-free SPSC ring (capacity rounded up to a power of two).
class PacketRing {
 public:
  explicit PacketRing(std::size_t capacity);
  // Producer. False when full (nothing written).
  template <typename Fill>
  bool push(Fill&& fill) {
    const auto tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) >= slots_.size()) return false;
    fill(slots_[tail & mask_]);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  // Consumer: calls f(const PacketSlot&) for every queued slot, oldest first.
  template <typename F>
  std::size_t drain(F&& f) {
    auto head = head_.load(std::memory_order_relaxed);
    const auto tail = tail_.load(std::memory_order_acquire);
    std::size_t n = 0;
    for (; head != tail; ++head, ++n) {
      f(static_cast<const PacketSlot&>(slots_[head & mask_]));
      head_.store(head + 1, std::memory_order_release);
    }
    return n;
  }

 private:
  std::vector<PacketSlot> slots_;
  std::size_t mask_;
  alignas(64) std::atomic<std::size_t> head_{0};
  alignas(64) std::atomic<std::size_t> tail_{0};
};

// A signalling event of the session, in order with the packets (`counter` as in PacketSlot).
struct SessionEvent {
  std::uint64_t counter = 0;
  std::int64_t at_us = 0;
  std::string json;
};

// Packet arrival -> frame written, 1 ms buckets up to 2 s (the last bucket holds the rest).
class LatencyHistogram {
 public:
  static constexpr std::size_t kBuckets = 2001;
  void add(std::int64_t ms);
  // -1 when empty.
  std::int64_t percentile(double p) const;
  std::int64_t max() const;

 private:
  std::array<std::atomic<std::uint32_t>, kBuckets> buckets_{};
};

struct LiveStreamStats {
  std::atomic<std::uint64_t> packets_dropped{0};
  std::atomic<std::uint64_t> frames_sent{0};
  std::atomic<std::uint64_t> frames_dropped{0};
  std::atomic<std::uint64_t> connects{0};
  std::atomic<std::uint64_t> connect_failures{0};
  std::atomic<std::uint64_t> reconnects{0};        // handshakes after a connection was up before
  std::atomic<std::uint64_t> connections_lost{0};  // up connections that ended before the call did
  std::atomic<std::uint64_t> outage_frames{0};     // of frames_dropped: no session was open
  std::atomic<int> state{0};  // State
  LatencyHistogram latency;
};

enum class State : int { kConnecting = 0, kStreaming = 1, kFailed = 2, kClosed = 3 };

// What the stream knows when the call starts (all copied from the SIP thread's SinkRequest).
struct StreamSetup {
  std::string recording_id;
  std::string start_json;                  // session-start record (ids, call id, headers)
  std::vector<std::string> metadata_docs;  // RFC 7865 documents of the INVITE
  std::string streams_event_json;          // first "streams" event
};

class LiveStream {
 public:
  LiveStream(StreamTarget target, StreamSetup setup, std::size_t ring_capacity)
      : target_(std::move(target)), setup_(std::move(setup)), ring_(ring_capacity) {}

  const StreamTarget& target() const { return target_; }
  const StreamSetup& setup() const { return setup_; }
  PacketRing& ring() { return ring_; }
  LiveStreamStats& stats() { return stats_; }

  // Worker: the session clock's origin in CLOCK_MONOTONIC µs (set by start()).
  void set_origin(std::int64_t mono_us) { origin_mono_us_.store(mono_us, std::memory_order_release); }
  std::int64_t origin() const { return origin_mono_us_.load(std::memory_order_acquire); }  // -1: not yet
  // Worker: an event (pause/resume/codecs/metadata as JSON) after `counter` packets.
  void post_event(SessionEvent e);
  // Streaming thread: takes the events posted so far.
  std::vector<SessionEvent> take_events();
  // Worker: the session ended at `at_us` (session clock) after `counter` packets.
  void end(std::int64_t at_us, std::uint64_t counter) {
    end_counter_.store(counter, std::memory_order_relaxed);
    end_us_.store(at_us, std::memory_order_relaxed);
    ended_.store(true, std::memory_order_release);
  }
  bool ended() const { return ended_.load(std::memory_order_acquire); }
  std::int64_t end_us() const { return end_us_.load(std::memory_order_relaxed); }
  std::uint64_t end_counter() const { return end_counter_.load(std::memory_order_relaxed); }

  // Streaming thread: the last connection error (read by the worker for the report).
  void set_error(std::string e);
  std::string error() const;
  // Any thread: the report as of now.
  recording::LiveStreamReport report() const;

 private:
  StreamTarget target_;
  StreamSetup setup_;
  PacketRing ring_;
  LiveStreamStats stats_;
  std::atomic<std::int64_t> origin_mono_us_{-1};
  mutable std::mutex mutex_;  // events_ and error_ only
  std::vector<SessionEvent> events_;
  std::string error_;
  std::atomic<bool> ended_{false};
  std::atomic<std::int64_t> end_us_{0};
  std::atomic<std::uint64_t> end_counter_{0};
};

// The URL without its query and fragment (a token may live there).
std::string redact_url(const std::string& url);

}  // namespace sgw::stream
