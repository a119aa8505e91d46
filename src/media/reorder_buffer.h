// ReorderBuffer: puts the RTP packets of one recorded stream back into
// sequence order (RFC 3550 §5.1, appendix A.1), the way rtpengine's
// recording daemon does it for its packet sequencer.
//
// Fed in ARRIVAL order; emits in sequence order once the next expected
// sequence number is present, or once some buffered packet has waited
// `window_ms` of arrival time (then the missing ones are skipped and reported
// as lost). Time only moves with the arrival times of pushed packets and with
// flush(now); finish() empties the buffer. It handles 16-bit wrap (extended
// sequence numbers), duplicates, late packets, SSRC changes and sequence
// resets (RFC 3550 A.1 probation: a jump of more than `max_dropout` is
// believed only after two consecutive packets at the new place).
//
// Memory: payloads are copied into a slot pool allocated once by the
// constructor; push() never allocates, except to append a new SSRC to
// stats().ssrcs. Payloads longer than `max_payload` are dropped and counted.
//
// Thread: one instance per stream, used from one thread. Nothing here throws
// or asserts on packet contents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sgw::media {

// One received packet; the payload is borrowed for the duration of push().
struct ReorderInput {
  std::uint16_t seq = 0;
  std::uint32_t timestamp = 0;
  std::uint32_t ssrc = 0;
  std::int64_t arrival_us = 0;  // monotonic arrival time, any origin
  std::uint8_t payload_type = 0;
  bool marker = false;
  std::span<const std::uint8_t> payload;
};

// One packet handed to the consumer, in sequence order within its segment.
struct ReorderedPacket {
  std::uint64_t ext_seq = 0;  // extended sequence number (counts wraps) within the segment
  std::uint16_t seq = 0;
  std::uint32_t timestamp = 0;
  std::uint32_t ssrc = 0;
  std::int64_t arrival_us = 0;
  std::uint8_t payload_type = 0;
  bool marker = false;
  std::span<const std::uint8_t> payload;  // valid only during PacketSink::on_packet()
  std::uint32_t lost_before = 0;  // sequence numbers skipped just before this one (same segment)
  bool new_segment = false;       // first packet of a segment: stream start, SSRC change, seq reset
  std::uint32_t segment = 0;      // 0-based segment index
};

// Receives emitted packets synchronously from push()/flush()/finish().
class PacketSink {
 public:
  virtual ~PacketSink() = default;
  virtual void on_packet(const ReorderedPacket& packet) = 0;
};

struct ReorderConfig {
  std::uint32_t window_ms = 60;      // longest a packet waits for a missing predecessor
  std::size_t capacity = 64;         // slots; a packet this far ahead forces the head out
  std::size_t max_payload = 1500;    // bytes per slot
  std::uint32_t max_dropout = 3000;  // RFC 3550 A.1 MAX_DROPOUT: larger jumps need probation
};

struct ReorderStats {
  std::uint64_t received = 0;           // every push()
  std::uint64_t emitted = 0;            // handed to the sink
  std::uint64_t duplicates = 0;         // same seq seen twice (buffered or emitted): dropped
  std::uint64_t late = 0;               // older than what was already emitted: dropped
  std::uint64_t reordered = 0;          // arrived after a higher seq, still emitted in order
  std::uint64_t lost = 0;               // sum of lost_before
  std::uint64_t oversize = 0;           // payload larger than max_payload: dropped
  std::uint64_t probation_dropped = 0;  // a far jump never confirmed by a second packet
  std::uint32_t segments = 0;           // segments started
  std::vector<std::uint32_t> ssrcs;     // in order of first appearance
};

class ReorderBuffer {
 public:
  explicit ReorderBuffer(ReorderConfig config = {});

  // Adds one packet (arrival order); may emit packets to `sink`.
  void push(const ReorderInput& packet, PacketSink& sink);
  // Advances time to `now_us` (if later) and emits what has waited long enough.
  void flush(std::int64_t now_us, PacketSink& sink);
  // Emits everything still buffered (end of stream). An unconfirmed
  // sequence-reset candidate is dropped. The buffer stays usable.
  void finish(PacketSink& sink);

  const ReorderStats& stats() const { return stats_; }
  const ReorderConfig& config() const { return config_; }

 private:
  struct Slot {
    bool used = false;
    std::uint64_t ext_seq = 0;
    std::uint16_t seq = 0;
    std::uint32_t timestamp = 0;
    std::uint32_t ssrc = 0;
    std::int64_t arrival_us = 0;
    std::uint8_t payload_type = 0;
    bool marker = false;
    std::size_t length = 0;
  };

  void start_segment(const ReorderInput& first);
  void store(std::size_t index, std::uint64_t ext_seq, const ReorderInput& packet);
  void store_from_candidate(std::uint64_t ext_seq);
  void release(PacketSink& sink, bool drain);
  void emit(std::size_t index, std::uint32_t lost, PacketSink& sink);
  std::size_t slot_index(std::uint64_t ext_seq) const {
    return static_cast<std::size_t>(ext_seq % slots_.size());
  }
  std::span<std::uint8_t> slot_payload(std::size_t index) {
    return std::span<std::uint8_t>(pool_).subspan(index * config_.max_payload, config_.max_payload);
  }
  bool seen_ssrc(std::uint32_t ssrc) const;

  ReorderConfig config_;
  std::vector<Slot> slots_;
  std::vector<std::uint8_t> pool_;  // slots_.size() * max_payload bytes

  // Sequence-reset candidate (RFC 3550 A.1 "bad_seq"), kept with its payload.
  Slot candidate_;
  std::vector<std::uint8_t> candidate_payload_;

  ReorderStats stats_;
  bool have_stream_ = false;
  std::uint32_t ssrc_ = 0;
  std::int64_t ssrc_since_us_ = 0;  // arrival of the first packet of the current SSRC
  bool started_ = false;            // something was emitted in this segment
  bool segment_flag_ = false;       // next emitted packet opens a segment
  std::uint64_t next_ext_ = 0;      // next sequence number to emit
  std::uint64_t max_ext_ = 0;       // highest extended seq received in the segment
  std::uint64_t emitted_mask_ = 0;  // bit i: next_ext_-1-i was emitted (duplicate vs late)
  std::size_t count_ = 0;           // used slots
  std::uint64_t skipped_ = 0;       // holes passed over without an emission yet
  std::int64_t now_us_ = 0;
  bool have_now_ = false;
};

}  // namespace sgw::media
