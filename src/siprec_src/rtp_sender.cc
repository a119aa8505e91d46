#include "siprec_src/rtp_sender.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <future>

namespace sgw::siprec_src {
namespace {

constexpr std::size_t kWheel = 256;  // > 20 ms period + 200 ms max jitter
constexpr std::size_t kBatch = 256;
constexpr std::int64_t kPeriodUs = kPtimeMs * 1000;

std::int64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

std::uint64_t next_rand(std::uint64_t& s) {  // xorshift64*
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ULL;
}
double unit(std::uint64_t& s) { return static_cast<double>(next_rand(s) >> 11) * 0x1.0p-53; }

}  // namespace

common::Result<Destination> make_destination(const std::string& host, std::uint16_t port) {
  Destination d;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&d.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&d.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    d.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    d.len = sizeof(sockaddr_in6);
  } else {
    return common::make_error("rtp.address", "not an IP address: '" + host + "'");
  }
  return d;
}

struct RtpSender::Stream {
  bool active = false;
  bool paused = false;
  bool marker = true;
  std::uint64_t tag = 0;
  const EncodedAudio* audio = nullptr;
  std::size_t frame = 0;
  std::uint16_t seq = 0;
  std::uint32_t ts = 0;
  std::uint32_t ssrc = 0;
  std::int64_t start_us = 0;
  std::uint64_t n = 0;        // frames elapsed since start
  std::int64_t due_ms = -1;   // the wheel bucket this stream is scheduled in
  Destination dest;
  std::size_t sock = 0;
  std::uint64_t rng = 1;
  bool held = false;  // a packet held back for reordering
  std::uint16_t h_seq = 0;
  std::uint32_t h_ts = 0, h_ssrc = 0;
  std::size_t h_frame = 0;
  bool h_marker = false;
  StreamStats stats;
  std::unique_ptr<media::SrtpSession> srtp;  // --srtp: encrypts every packet; null: plain RTP
  bool tamper = false;                        // the next packet also goes out forged, first
  std::vector<std::uint8_t> last;             // SRTP: the last protected packet (for --dup)
};

struct RtpSender::Command {
  enum class Kind { kAdd, kDest, kPause, kResume, kSsrc, kRemove, kKeys, kTamper, kStall };
  Kind kind = Kind::kAdd;
  StreamId id = 0;
  std::uint64_t tag = 0;
  const EncodedAudio* audio = nullptr;
  Destination dest;
  std::size_t leg = 0;
  std::uint64_t seed = 0;
  bool paused = false;
  std::shared_ptr<const media::SrtpKeys> keys;  // kAdd, kKeys
  std::uint32_t stall_ms = 0;                   // kStall
  std::shared_ptr<std::promise<void>> asleep;   // kStall: set when the sender starts sleeping
};

constexpr std::size_t kEncBytes = 12 + 1500 + media::kSrtpMaxTrailer;  // one SRTP packet

struct RtpSender::Batch {
  std::array<mmsghdr, kBatch> msgs{};
  std::array<std::array<iovec, 2>, kBatch> iov{};
  std::array<std::array<std::uint8_t, 12>, kBatch> hdr{};
  std::vector<std::uint8_t> enc;  // SRTP packets, kEncBytes each (allocated on first use)
  std::size_t count = 0;
};

struct RtpSender::Lane {
  std::vector<std::vector<std::uint32_t>> wheel;
  std::vector<Batch> batches;  // one per socket
  std::mutex mu;
  std::vector<Command> pending;  // guarded by mu
  std::vector<Command> work;     // this lane's thread only
  std::thread thread;
  std::int64_t last_ms = -1;  // this lane's thread: last wheel bucket processed
  std::atomic<std::uint64_t> late_ticks{0};
  std::atomic<std::uint64_t> late_packets{0};
  std::atomic<std::uint64_t> max_late_ms{0};
};

common::Result<std::unique_ptr<RtpSender>> RtpSender::create(const SenderOptions& options,
                                                              RemovedFn on_removed) {
  std::unique_ptr<RtpSender> s(new RtpSender());
  s->opt_ = options;
  if (s->opt_.jitter_ms > 200) s->opt_.jitter_ms = 200;
  if (s->opt_.sockets == 0) s->opt_.sockets = 1;
  s->on_removed_ = std::move(on_removed);
  auto local = make_destination(options.bind_address, 0);
  if (!local) return local.error();
  for (std::size_t i = 0; i < s->opt_.sockets; ++i) {
    int fd = socket(local->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return common::make_error("rtp.socket", std::string("socket: ") + std::strerror(errno));
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&local->addr), local->len) != 0) {
      int e = errno;
      close(fd);
      return common::make_error("rtp.bind", "bind " + options.bind_address + ": " + std::strerror(e));
    }
    sockaddr_storage got{};
    socklen_t len = sizeof got;
    getsockname(fd, reinterpret_cast<sockaddr*>(&got), &len);
    std::uint16_t port = got.ss_family == AF_INET
                             ? ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port)
                             : ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
    s->fds_.push_back(fd);
    s->ports_.push_back(port);
  }
  s->streams_.resize(options.max_streams);
  const std::size_t lanes = std::clamp<std::size_t>(options.threads, 1, 64);
  for (std::size_t i = 0; i < lanes; ++i) {
    auto l = std::make_unique<Lane>();
    l->wheel.resize(kWheel);
    for (auto& b : l->wheel) b.reserve(options.max_streams / (16 * lanes) + 16);
    l->batches.resize(s->fds_.size());
    l->pending.reserve(1024);
    l->work.reserve(1024);
    s->lanes_.push_back(std::move(l));
  }
  return s;
}

RtpSender::~RtpSender() {
  stop();
  for (int fd : fds_) close(fd);
}

void RtpSender::start() {
  if (running_.exchange(true)) return;
  epoch_us_ = now_us();
  for (auto& l : lanes_) l->thread = std::thread([this, lane = l.get()] { run(*lane); });
}

void RtpSender::stop() {
  if (!running_.exchange(false)) return;
  for (auto& l : lanes_)
    if (l->thread.joinable()) l->thread.join();
  for (std::size_t id = 0; id < streams_.size(); ++id) {
    Stream& s = streams_[id];
    if (!s.active) continue;
    Lane& l = lane_of(static_cast<StreamId>(id));
    release_held(l, s);
    for (std::size_t i = 0; i < l.batches.size(); ++i) flush(l, i);
    s.active = false;
    if (on_removed_) on_removed_(s.tag, s.stats);
  }
}

std::uint64_t RtpSender::late_ticks() const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n += l->late_ticks.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t RtpSender::late_packets() const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n += l->late_packets.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t RtpSender::max_late_ms() const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n = std::max(n, l->max_late_ms.load(std::memory_order_relaxed));
  return n;
}

void RtpSender::push(StreamId id, Command c) {
  Lane& l = lane_of(id);
  std::lock_guard lock(l.mu);
  l.pending.push_back(std::move(c));
}

std::uint16_t RtpSender::port_for(std::size_t leg) const { return ports_[leg % ports_.size()]; }

bool RtpSender::add(StreamId* id, std::uint64_t tag, const EncodedAudio* audio,
                    const Destination& dest, std::size_t leg, std::uint64_t seed, bool paused,
                    std::shared_ptr<const media::SrtpKeys> keys) {
  // The caller (engine) owns slot allocation: *id is a free slot it chose.
  if (*id >= streams_.size() || audio == nullptr || audio->frames() == 0) return false;
  Command c;
  c.kind = Command::Kind::kAdd;
  c.id = *id;
  c.tag = tag;
  c.audio = audio;
  c.dest = dest;
  c.leg = leg;
  c.seed = seed;
  c.paused = paused;
  c.keys = std::move(keys);
  push(c.id, std::move(c));
  return true;
}

void RtpSender::set_destination(StreamId id, const Destination& dest) {
  Command c;
  c.kind = Command::Kind::kDest;
  c.id = id;
  c.dest = dest;
  push(c.id, std::move(c));
}

void RtpSender::set_paused(StreamId id, bool paused) {
  Command c;
  c.kind = paused ? Command::Kind::kPause : Command::Kind::kResume;
  c.id = id;
  push(c.id, std::move(c));
}

void RtpSender::change_ssrc(StreamId id) {
  Command c;
  c.kind = Command::Kind::kSsrc;
  c.id = id;
  push(c.id, std::move(c));
}

void RtpSender::set_keys(StreamId id, std::shared_ptr<const media::SrtpKeys> keys) {
  Command c;
  c.kind = Command::Kind::kKeys;
  c.id = id;
  c.keys = std::move(keys);
  push(c.id, std::move(c));
}

void RtpSender::tamper(StreamId id) {
  Command c;
  c.kind = Command::Kind::kTamper;
  c.id = id;
  push(c.id, std::move(c));
}

void RtpSender::remove(StreamId id) {
  Command c;
  c.kind = Command::Kind::kRemove;
  c.id = id;
  push(c.id, std::move(c));
}

bool RtpSender::stall(std::uint32_t ms) {
  Command c;
  c.kind = Command::Kind::kStall;
  c.stall_ms = ms;
  c.asleep = std::make_shared<std::promise<void>>();
  auto asleep = c.asleep->get_future();
  push(0, std::move(c));  // lane 0's thread (the only one with --sender-threads 1)
  return asleep.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
}

void RtpSender::schedule(Lane& l, std::uint32_t slot, std::int64_t due_us, std::int64_t min_ms) {
  std::int64_t ms = (due_us - epoch_us_) / 1000;
  if (ms < min_ms) ms = min_ms;
  streams_[slot].due_ms = ms;
  l.wheel[static_cast<std::size_t>(ms) % kWheel].push_back(slot);
}

void RtpSender::apply(Lane& l, const Command& c, std::int64_t now) {
  if (c.kind == Command::Kind::kStall) {
    c.asleep->set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(c.stall_ms));
    return;
  }
  if (c.id >= streams_.size()) return;
  Stream& s = streams_[c.id];
  switch (c.kind) {
    case Command::Kind::kAdd: {
      s = Stream{};
      s.active = true;
      s.tag = c.tag;
      s.audio = c.audio;
      s.dest = c.dest;
      s.sock = c.leg % fds_.size();
      s.paused = c.paused;
      s.rng = (c.seed * 0x9E3779B97F4A7C15ULL) | 1;
      s.ssrc = static_cast<std::uint32_t>(next_rand(s.rng));
      s.seq = static_cast<std::uint16_t>(next_rand(s.rng));
      s.ts = static_cast<std::uint32_t>(next_rand(s.rng));
      s.stats.ssrcs.push_back(s.ssrc);
      s.start_us = now;
      s.due_ms = -1;
      set_srtp(s, c.keys);
      schedule(l, c.id, now, l.last_ms + 1);
      break;
    }
    case Command::Kind::kKeys:
      if (s.active) {
        release_held(l, s);  // a held packet leaves with the keys it was due under
        set_srtp(s, c.keys);
      }
      break;
    case Command::Kind::kTamper:
      if (s.active) s.tamper = true;
      break;
    case Command::Kind::kDest:
      if (s.active) s.dest = c.dest;
      break;
    case Command::Kind::kPause:
      if (s.active) {
        release_held(l, s);
        s.paused = true;
      }
      break;
    case Command::Kind::kResume:
      if (s.active && s.paused) {
        s.paused = false;
        s.marker = true;  // RFC 3551 §4.1: first packet after silence
      }
      break;
    case Command::Kind::kSsrc:
      if (s.active) {
        release_held(l, s);
        s.ssrc = static_cast<std::uint32_t>(next_rand(s.rng));
        s.seq = static_cast<std::uint16_t>(next_rand(s.rng));
        s.ts = static_cast<std::uint32_t>(next_rand(s.rng));
        s.marker = true;
        s.stats.ssrcs.push_back(s.ssrc);
      }
      break;
    case Command::Kind::kStall:  // handled above
      break;
    case Command::Kind::kRemove:
      if (s.active) {
        release_held(l, s);
        flush(l, s.sock);
        s.active = false;
        s.due_ms = -1;
        if (on_removed_) on_removed_(s.tag, s.stats);
      }
      break;
  }
}

void RtpSender::set_srtp(Stream& s, const std::shared_ptr<const media::SrtpKeys>& keys) {
  s.srtp.reset();
  if (!keys) return;
  auto made = media::SrtpSession::create(*keys, media::SrtpSession::Direction::kSend);
  if (made) s.srtp = std::move(made).value();  // keys made by random_srtp_keys: never refused
}

// Adds one datagram (bytes copied) to the socket's batch; SRTP packets only.
void RtpSender::queue_bytes(Lane& l, Stream& s, std::span<const std::uint8_t> bytes) {
  Batch& b = l.batches[s.sock];
  if (b.count == kBatch) flush(l, s.sock);
  if (b.enc.empty()) b.enc.resize(kBatch * kEncBytes);
  std::size_t i = b.count++;
  std::uint8_t* buf = b.enc.data() + i * kEncBytes;
  std::memcpy(buf, bytes.data(), bytes.size());
  b.iov[i][0] = {buf, bytes.size()};
  msghdr& m = b.msgs[i].msg_hdr;
  m = msghdr{};
  m.msg_name = &s.dest.addr;
  m.msg_namelen = s.dest.len;
  m.msg_iov = b.iov[i].data();
  m.msg_iovlen = 1;
  ++s.stats.packets;
}

void RtpSender::send_duplicate(Lane& l, Stream& s) {
  if (!s.srtp) return;  // plain RTP: the caller sends the packet again
  if (!s.last.empty()) queue_bytes(l, s, s.last);
}

void RtpSender::send_packet(Lane& l, Stream& s, std::uint16_t seq, std::uint32_t ts, std::uint32_t ssrc,
                            std::size_t frame, bool marker) {
  Batch& b = l.batches[s.sock];
  if (b.count == kBatch) flush(l, s.sock);
  std::size_t i = b.count++;
  auto& h = b.hdr[i];
  // RFC 3550 §5.1, written byte by byte (network order).
  h[0] = 0x80;
  h[1] = static_cast<std::uint8_t>((marker ? 0x80 : 0) | (s.audio->payload_type & 0x7f));
  h[2] = static_cast<std::uint8_t>(seq >> 8);
  h[3] = static_cast<std::uint8_t>(seq);
  h[4] = static_cast<std::uint8_t>(ts >> 24);
  h[5] = static_cast<std::uint8_t>(ts >> 16);
  h[6] = static_cast<std::uint8_t>(ts >> 8);
  h[7] = static_cast<std::uint8_t>(ts);
  h[8] = static_cast<std::uint8_t>(ssrc >> 24);
  h[9] = static_cast<std::uint8_t>(ssrc >> 16);
  h[10] = static_cast<std::uint8_t>(ssrc >> 8);
  h[11] = static_cast<std::uint8_t>(ssrc);
  auto payload = s.audio->frame(frame);
  if (s.srtp) {
    // RFC 3711 §3.3: encrypted payload + auth tag, built in one buffer.
    --b.count;
    if (payload.size() > kEncBytes - 12 - media::kSrtpMaxTrailer) return;
    std::array<std::uint8_t, kEncBytes> pkt;
    std::memcpy(pkt.data(), h.data(), 12);
    std::memcpy(pkt.data() + 12, payload.data(), payload.size());
    std::size_t len = 12 + payload.size();
    if (s.srtp->protect_rtp(pkt.data(), &len, pkt.size()) != media::SrtpStatus::kOk) return;
    s.last.assign(pkt.data(), pkt.data() + len);
    if (s.tamper) {
      // A forged copy first: one flipped bit in the encrypted payload fails authentication;
      // if a receiver took it anyway, the real packet would be its duplicate and be lost.
      s.tamper = false;
      std::vector<std::uint8_t> forged = s.last;
      forged[12] ^= 0x01;
      queue_bytes(l, s, forged);
      ++s.stats.tampered;
    }
    queue_bytes(l, s, s.last);
    return;
  }
  b.iov[i][0] = {h.data(), h.size()};
  b.iov[i][1] = {const_cast<std::uint8_t*>(payload.data()), payload.size()};
  msghdr& m = b.msgs[i].msg_hdr;
  m = msghdr{};
  m.msg_name = &s.dest.addr;
  m.msg_namelen = s.dest.len;
  m.msg_iov = b.iov[i].data();
  m.msg_iovlen = 2;
  ++s.stats.packets;
}

void RtpSender::release_held(Lane& l, Stream& s) {
  if (!s.held) return;
  s.held = false;
  send_packet(l, s, s.h_seq, s.h_ts, s.h_ssrc, s.h_frame, s.h_marker);
}

void RtpSender::emit(Lane& l, Stream& s) {
  const std::size_t frame = s.frame;
  s.frame = (s.frame + 1) % s.audio->frames();
  const std::uint32_t ts = s.ts;
  s.ts += s.audio->ticks_per_frame;
  if (s.paused) {  // nothing sent; the RTP clock keeps running (RFC 3550 §5.1)
    ++s.stats.paused;
    return;
  }
  const std::uint16_t seq = s.seq++;
  const bool marker = s.marker;
  s.marker = false;
  if (opt_.loss > 0 && unit(s.rng) < opt_.loss) {
    ++s.stats.lost;
    return;
  }
  if (s.held) {
    // The held packet leaves right after its successor: one swap.
    send_packet(l, s, seq, ts, s.ssrc, frame, marker);
    release_held(l, s);
    return;
  }
  if (opt_.reorder > 0 && unit(s.rng) < opt_.reorder) {
    s.held = true;
    s.h_seq = seq;
    s.h_ts = ts;
    s.h_ssrc = s.ssrc;
    s.h_frame = frame;
    s.h_marker = marker;
    return;
  }
  send_packet(l, s, seq, ts, s.ssrc, frame, marker);
  if (opt_.dup > 0 && unit(s.rng) < opt_.dup) {
    // SRTP: the same bytes again (a replay to the receiver); a sender never protects twice.
    if (s.srtp) {
      send_duplicate(l, s);
    } else {
      send_packet(l, s, seq, ts, s.ssrc, frame, marker);
    }
  }
}

void RtpSender::process_bucket(Lane& l, std::int64_t ms, std::int64_t now) {
  auto& bucket = l.wheel[static_cast<std::size_t>(ms) % kWheel];
  // How late this bucket's packets leave: its millisecond to the tick that sends them.
  const std::int64_t late_ms = (now - epoch_us_) / 1000 - ms;
  std::uint64_t sent_late = 0;
  // Index loop: schedule() may append to this bucket only for entries due now (catch-up), and
  // those are handled by the next ms, never this one (min_ms = ms + 1).
  const std::size_t n = bucket.size();
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t slot = bucket[i];
    Stream& s = streams_[slot];
    if (!s.active || s.due_ms < ms || (s.due_ms - ms) % static_cast<std::int64_t>(kWheel) != 0)
      continue;  // removed or rescheduled: stale entry
    if (s.due_ms > ms) {
      // Due on a later turn of the wheel. Happens after a wake-up more than kWheel ms late: a
      // stream added (or rescheduled) in that tick is due at the current ms, and the catch-up
      // visits its bucket one turn earlier first. Dropping the entry here would silence the
      // stream for good (siprec-src sent no RTP on a starved machine).
      bucket[kept++] = slot;
      continue;
    }
    emit(l, s);
    if (late_ms > 2) ++sent_late;
    ++s.n;
    std::int64_t due = s.start_us + static_cast<std::int64_t>(s.n) * kPeriodUs;
    if (opt_.jitter_ms > 0)
      due += static_cast<std::int64_t>(unit(s.rng) * opt_.jitter_ms * 1000.0);
    schedule(l, slot, due, ms + 1);
  }
  bucket.erase(bucket.begin() + static_cast<long>(kept), bucket.begin() + static_cast<long>(n));
  if (sent_late > 0) {
    l.late_packets.fetch_add(sent_late, std::memory_order_relaxed);
    const auto late = static_cast<std::uint64_t>(late_ms);
    if (late > l.max_late_ms.load(std::memory_order_relaxed)) l.max_late_ms.store(late, std::memory_order_relaxed);
  }
}

void RtpSender::flush(Lane& l, std::size_t sock) {
  Batch& b = l.batches[sock];
  std::size_t done = 0;
  while (done < b.count) {
    int r = sendmmsg(fds_[sock], b.msgs.data() + done, static_cast<unsigned>(b.count - done), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      ++done;  // skip the message that failed (e.g. no route); count only what left
      continue;
    }
    done += static_cast<std::size_t>(r);
    total_sent_.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed);
  }
  b.count = 0;
}

void RtpSender::run(Lane& l) {
  std::int64_t& last_ms = l.last_ms;
  while (running_.load(std::memory_order_relaxed)) {
    {
      std::lock_guard lock(l.mu);
      l.work.swap(l.pending);
    }
    std::int64_t now = now_us();
    std::int64_t cur_ms = (now - epoch_us_) / 1000;
    for (const auto& c : l.work) apply(l, c, now);
    l.work.clear();
    if (cur_ms - last_ms > 2 && last_ms >= 0) l.late_ticks.fetch_add(1, std::memory_order_relaxed);
    // Never skip a bucket: a late wake-up processes every millisecond it missed.
    for (std::int64_t ms = last_ms + 1; ms <= cur_ms; ++ms) process_bucket(l, ms, now);
    last_ms = cur_ms;
    for (std::size_t i = 0; i < l.batches.size(); ++i) flush(l, i);
    std::int64_t next = epoch_us_ + (cur_ms + 1) * 1000;
    timespec ts{static_cast<time_t>(next / 1000000), static_cast<long>((next % 1000000) * 1000)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
  }
}

}  // namespace sgw::siprec_src
