// RtpSender: sender threads (SenderOptions::threads, one by default) that send every RTP stream
// of every call, paced at 20 ms on absolute
// time (stream start + n × 20 ms, so no drift however late a wake-up is), batched with
// sendmmsg over a small pool of UDP sockets. Payloads come pre-encoded (EncodedAudio); a packet
// is a 12-byte header written in place plus an iovec pointing at the shared payload, so the
// packet path allocates nothing. Streams live in a fixed table sized at create(): memory per
// call is bounded.
//
// Scheduling: a timing wheel of 1 ms buckets (kWheel of them); each stream sits in the bucket
// of its next due millisecond. Injected faults (per stream, seeded): loss (packet skipped, its
// sequence number consumed), duplication (sent twice), reordering (held back and sent after its
// successor), jitter (due time + uniform 0..jitter ms, which also reorders when > 20 ms).
//
// Threading: a stream belongs to the sender thread `id % threads` (its lane: own wheel, batches
// and command queue; the sockets are shared, sendmmsg is thread-safe). Control calls
// (add/remove/set_*) come from one other thread (the SIP thread) and are queued under the lane's
// mutex, taken once per tick by its thread; on_removed runs on the stream's sender thread, so
// with several threads it must be thread-safe. packets_sent() and the lateness figures may be
// read from anywhere.
//
// Lateness (docs/siprec-src.md): a packet is late when the tick that sends it runs more than
// 2 ms after its due millisecond; late_packets() and max_late_ms() say whether the sender kept up
// (a benchmark whose sender was late measured the sender, not the receiver).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "media/srtp_session.h"
#include "siprec_src/audio_source.h"

namespace sgw::siprec_src {

struct Destination {
  sockaddr_storage addr{};
  socklen_t len = 0;
};
// "127.0.0.1", 30000 -> Destination; error "rtp.address" for a non-literal.
common::Result<Destination> make_destination(const std::string& host, std::uint16_t port);

struct SenderOptions {
  std::string bind_address = "127.0.0.1";
  std::size_t max_streams = 4096;
  std::size_t sockets = 8;
  double loss = 0, reorder = 0, dup = 0;  // probabilities 0..1
  std::uint32_t jitter_ms = 0;            // at most 200
  std::uint64_t seed = 1;
  std::size_t threads = 1;  // sender threads (lanes), 1..64
};

struct StreamStats {
  std::uint64_t packets = 0;  // datagrams sent (duplicates included)
  std::uint64_t lost = 0;     // dropped by loss injection
  std::uint64_t tampered = 0; // forged SRTP packets sent (tamper)
  std::uint64_t paused = 0;   // packet times passed while paused: not sent, RTP clock kept running
  std::vector<std::uint32_t> ssrcs;
};

using StreamId = std::uint32_t;  // a slot in the table; reused only after on_removed

class RtpSender {
 public:
  using RemovedFn = std::function<void(std::uint64_t tag, const StreamStats&)>;

  static common::Result<std::unique_ptr<RtpSender>> create(const SenderOptions& options,
                                                           RemovedFn on_removed);
  ~RtpSender();
  RtpSender(const RtpSender&) = delete;
  RtpSender& operator=(const RtpSender&) = delete;

  void start();
  void stop();  // joins the thread; streams still present are reported through on_removed

  // The local port RTP for `leg` leaves from (for the SDP offer's m= line).
  std::uint16_t port_for(std::size_t leg) const;

  // Starts a stream now (first packet immediately). `audio` must outlive the stream. Returns
  // false when the table is full. `tag` comes back in on_removed.
  // `keys` (--srtp): every packet is SRTP-protected with them; null: plain RTP.
  bool add(StreamId* id, std::uint64_t tag, const EncodedAudio* audio, const Destination& dest,
           std::size_t leg, std::uint64_t seed, bool paused,
           std::shared_ptr<const media::SrtpKeys> keys = nullptr);
  // New SRTP keys from the next packet on (a rekey's 2xx arrived).
  void set_keys(StreamId id, std::shared_ptr<const media::SrtpKeys> keys);
  // SRTP: the next packet also leaves as a forged copy (one flipped bit), sent before it.
  void tamper(StreamId id);
  void set_destination(StreamId id, const Destination& dest);
  void set_paused(StreamId id, bool paused);  // RTP clock keeps running while paused
  void change_ssrc(StreamId id);
  void remove(StreamId id);  // on_removed(tag, stats) follows on the sender thread
  // Tests: the sender thread sleeps `ms` in its next tick, as a thread starved on a busy
  // machine would; the tick after it catches up on every millisecond missed. Returns once the
  // sender is asleep (false if it did not get there within 10 s), so what is queued next is
  // applied after the sleep.
  bool stall(std::uint32_t ms);

  std::uint64_t packets_sent() const { return total_sent_.load(std::memory_order_relaxed); }
  // Ticks (all threads) that woke more than 2 ms after the previous one.
  std::uint64_t late_ticks() const;
  // Packets sent more than 2 ms after they were due, and the worst lateness seen (ms).
  std::uint64_t late_packets() const;
  std::uint64_t max_late_ms() const;
  std::size_t threads() const { return lanes_.size(); }

 private:
  RtpSender() = default;
  struct Stream;
  struct Command;
  struct Batch;
  struct Lane;
  void run(Lane& l);
  void push(StreamId id, Command c);
  void apply(Lane& l, const Command& c, std::int64_t now_us);
  void process_bucket(Lane& l, std::int64_t ms, std::int64_t now_us);
  void emit(Lane& l, Stream& s);
  void send_packet(Lane& l, Stream& s, std::uint16_t seq, std::uint32_t ts, std::uint32_t ssrc,
                   std::size_t frame, bool marker);
  void release_held(Lane& l, Stream& s);
  void set_srtp(Stream& s, const std::shared_ptr<const media::SrtpKeys>& keys);
  void queue_bytes(Lane& l, Stream& s, std::span<const std::uint8_t> bytes);
  void send_duplicate(Lane& l, Stream& s);
  void flush(Lane& l, std::size_t sock);
  void schedule(Lane& l, std::uint32_t slot, std::int64_t due_us, std::int64_t now_ms);
  Lane& lane_of(StreamId id) { return *lanes_[id % lanes_.size()]; }

  SenderOptions opt_;
  RemovedFn on_removed_;
  std::vector<int> fds_;
  std::vector<std::uint16_t> ports_;
  std::vector<Stream> streams_;  // slot id belongs to lane id % lanes_.size(), touched only by it
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::atomic<bool> running_{false};
  std::int64_t epoch_us_ = 0;
  std::atomic<std::uint64_t> total_sent_{0};
};

}  // namespace sgw::siprec_src
