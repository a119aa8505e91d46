// RtpSender against a local UDP socket: pacing, header fields, pause, SSRC change and the
// injected faults. Timing is asserted only as what holds on any machine, however busy: a packet
// is never sent before it is due (start + n × 20 ms), so counts and timestamps are bounded by
// times measured around the calls; the tests wait for packets instead of sleeping.
#include "siprec_src/rtp_sender.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace sgw::siprec_src {
namespace {

using Clock = std::chrono::steady_clock;

// A stream's clock starts on the sender's 1 ms timing wheel: up to a slot before add().
constexpr double kWheelSlackMs = 2;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Rx {
  int fd = -1;
  std::uint16_t port = 0;
  Rx() {
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  }
  ~Rx() { close(fd); }
  struct Pkt {
    std::uint8_t pt;
    bool marker;
    std::uint16_t seq;
    std::uint32_t ts, ssrc;
    std::size_t len;
    Clock::time_point read_at;  // when this test read it: after it was sent
  };
  // Reads what has arrived, waiting up to wait_ms for the first packet (then not at all).
  std::vector<Pkt> drain(int wait_ms) {
    std::vector<Pkt> out;
    while (read_one(wait_ms, out)) wait_ms = 0;
    return out;
  }
  // Reads until `count` packets have arrived in all (bounded: 10 s).
  std::vector<Pkt> wait_for(std::size_t count) {
    std::vector<Pkt> out;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (out.size() < count && Clock::now() < deadline) read_one(100, out);
    return out;
  }
  // Reads until nothing has arrived for quiet_ms (bounded: 10 s).
  std::vector<Pkt> wait_quiet(int quiet_ms) {
    std::vector<Pkt> out;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (read_one(quiet_ms, out) && Clock::now() < deadline) {
    }
    return out;
  }
  bool read_one(int wait_ms, std::vector<Pkt>& out) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return false;
    std::uint8_t b[2048];
    ssize_t n = recv(fd, b, sizeof b, 0);
    if (n < 12) return true;
    out.push_back({static_cast<std::uint8_t>(b[1] & 0x7f), (b[1] & 0x80) != 0,
                   static_cast<std::uint16_t>(b[2] << 8 | b[3]),
                   static_cast<std::uint32_t>(b[4]) << 24 | static_cast<std::uint32_t>(b[5]) << 16 |
                       static_cast<std::uint32_t>(b[6]) << 8 | b[7],
                   static_cast<std::uint32_t>(b[8]) << 24 | static_cast<std::uint32_t>(b[9]) << 16 |
                       static_cast<std::uint32_t>(b[10]) << 8 | b[11],
                   static_cast<std::size_t>(n), Clock::now()});
    return true;
  }
};

struct Removed {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::uint64_t, StreamStats> stats;
  StreamStats wait(std::uint64_t tag) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return stats.count(tag) > 0; });
    return stats[tag];
  }
};

std::unique_ptr<RtpSender> make_sender(Removed& r, SenderOptions o = {}) {
  auto s = RtpSender::create(o, [&r](std::uint64_t tag, const StreamStats& st) {
    std::lock_guard lock(r.mu);
    r.stats[tag] = st;
    r.cv.notify_all();
  });
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

std::shared_ptr<const EncodedAudio> pcma() { return *encode_tone(media::CodecId::kPcma, 440); }

TEST(RtpSender, PacesTwentyMsPacketsWithConsecutiveHeaders) {
  Rx rx;
  Removed removed;
  auto s = make_sender(removed);
  auto audio = pcma();
  s->start();
  StreamId id = 3;
  auto t_add = Clock::now();
  ASSERT_TRUE(s->add(&id, 77, audio.get(), *make_destination("127.0.0.1", rx.port), 0, 1, false));
  auto pkts = rx.wait_for(26);
  ASSERT_EQ(pkts.size(), 26u);
  // Never early: packet n is due at start + n × 20 ms, start after add().
  EXPECT_GE(ms_between(t_add, pkts.back().read_at), 25 * 20 - kWheelSlackMs);
  s->remove(id);
  auto st = removed.wait(77);
  auto t_removed = Clock::now();
  auto more = rx.drain(200);
  pkts.insert(pkts.end(), more.begin(), more.end());
  s->stop();
  // And no more than were due by the time the removal was acknowledged.
  EXPECT_LE(static_cast<double>(pkts.size()), (ms_between(t_add, t_removed) + kWheelSlackMs) / 20 + 1);
  EXPECT_EQ(st.packets, pkts.size());
  EXPECT_EQ(s->packets_sent(), pkts.size());
  ASSERT_FALSE(pkts.empty());
  EXPECT_TRUE(pkts[0].marker);
  for (std::size_t i = 1; i < pkts.size(); ++i) {
    EXPECT_EQ(pkts[i].pt, 8);
    EXPECT_FALSE(pkts[i].marker);
    EXPECT_EQ(pkts[i].seq, static_cast<std::uint16_t>(pkts[0].seq + i));
    EXPECT_EQ(pkts[i].ts, pkts[0].ts + 160 * i);
    EXPECT_EQ(pkts[i].ssrc, pkts[0].ssrc);
    EXPECT_EQ(pkts[i].len, 12u + 160u);
  }
  ASSERT_EQ(st.ssrcs.size(), 1u);
  EXPECT_EQ(st.ssrcs[0], pkts[0].ssrc);
}

// A wake-up later than the timing wheel is long (256 ms; a starved thread on a busy machine):
// a stream added meanwhile is due in the first tick after it, and the catch-up passes its
// bucket one turn of the wheel earlier. It must still be sent (it used to be dropped from the
// wheel: no packet ever, a call recorded silent), and a stream already running keeps its
// sequence without a gap.
TEST(RtpSender, StreamAddedDuringAWakeUpLaterThanTheWheelIsSent) {
  Rx rx_old, rx_new;
  Removed removed;
  auto s = make_sender(removed);
  auto audio = pcma();
  s->start();
  StreamId running = 1, added = 2;
  ASSERT_TRUE(s->add(&running, 10, audio.get(), *make_destination("127.0.0.1", rx_old.port), 0, 1, false));
  ASSERT_EQ(rx_old.wait_for(3).size(), 3u);
  ASSERT_TRUE(s->stall(600));  // the sender is asleep now: the stream below is added after it
  ASSERT_TRUE(s->add(&added, 20, audio.get(), *make_destination("127.0.0.1", rx_new.port), 1, 2, false));
  auto pkts = rx_new.wait_for(10);
  EXPECT_EQ(pkts.size(), 10u) << "the stream added during the stall was never sent";
  for (std::size_t i = 1; i < pkts.size(); ++i)
    EXPECT_EQ(pkts[i].seq, static_cast<std::uint16_t>(pkts[0].seq + i));
  auto old = rx_old.drain(100);
  s->remove(running);
  s->remove(added);
  removed.wait(10);
  removed.wait(20);
  s->stop();
  ASSERT_GT(old.size(), 30u);  // 600 ms of stall caught up, then 10 x 20 ms and more
  for (std::size_t i = 1; i < old.size(); ++i)
    EXPECT_EQ(old[i].seq, static_cast<std::uint16_t>(old[0].seq + i));
}

TEST(RtpSender, PauseKeepsTheClockAndSsrcChangeRestarts) {
  Rx rx;
  Removed removed;
  auto s = make_sender(removed);
  auto audio = pcma();
  s->start();
  StreamId id = 0;
  auto t_add = Clock::now();
  ASSERT_TRUE(s->add(&id, 1, audio.get(), *make_destination("127.0.0.1", rx.port), 0, 2, false));
  auto before = rx.wait_for(10);
  ASSERT_EQ(before.size(), 10u);
  s->set_paused(id, true);
  auto tail = rx.wait_quiet(150);  // the pause has taken effect
  before.insert(before.end(), tail.begin(), tail.end());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the pause lasts at least this
  auto t_resume = Clock::now();
  s->set_paused(id, false);
  auto after = rx.wait_for(10);
  ASSERT_EQ(after.size(), 10u);
  s->change_ssrc(id);
  auto t_change = Clock::now();
  // Wait for packets sent after the change (the ones already on their way came before it).
  for (int i = 0; i < 100 && (after.empty() || after.back().read_at < t_change + std::chrono::milliseconds(100));
       ++i) {
    auto more = rx.wait_for(1);
    after.insert(after.end(), more.begin(), more.end());
  }
  s->remove(id);
  auto st = removed.wait(1);
  auto rest = rx.drain(200);
  after.insert(after.end(), rest.begin(), rest.end());
  s->stop();
  // After the pause: the next sequence number, a marker, and the RTP clock kept running. The
  // first packet after the resume is due no earlier than the resume and was sent (read) after
  // it was due, so its timestamp offset from the first packet lies between (resume − first
  // packet read) and (its own read − add). A clock stopped during the pause would fall short
  // of the lower bound by the pause's length (≥ 200 ms = 1600 ticks).
  const auto& last = before.back();
  const auto& first = after.front();
  EXPECT_EQ(first.seq, static_cast<std::uint16_t>(last.seq + 1));
  EXPECT_TRUE(first.marker);
  double offset_ms = static_cast<double>(first.ts - before.front().ts) / 8.0;
  EXPECT_GE(offset_ms, ms_between(before.front().read_at, t_resume) - 20);
  EXPECT_LE(offset_ms, ms_between(t_add, first.read_at) + kWheelSlackMs);
  EXPECT_EQ((first.ts - last.ts) % 160, 0u);
  // Every packet time the pause skipped is counted: the recorder's silence, packet for packet.
  EXPECT_EQ(st.paused, (first.ts - last.ts) / 160 - 1);
  EXPECT_GE(st.paused, 10u);  // the pause lasted at least 200 ms
  std::size_t changes = 0;
  for (std::size_t i = 1; i < after.size(); ++i)
    if (after[i].ssrc != after[i - 1].ssrc) {
      ++changes;
      EXPECT_TRUE(after[i].marker);
    }
  EXPECT_EQ(changes, 1u);
  EXPECT_EQ(st.ssrcs.size(), 2u);
}

TEST(RtpSender, LossDupAndReorderAreInjected) {
  Rx rx;
  Removed removed;
  SenderOptions o;
  o.loss = 0.1;
  o.dup = 0.1;
  o.reorder = 0.1;
  o.seed = 9;
  auto s = make_sender(removed, o);
  auto audio = pcma();
  s->start();
  StreamId id = 0;
  ASSERT_TRUE(s->add(&id, 5, audio.get(), *make_destination("127.0.0.1", rx.port), 0, 3, false));
  auto pkts = rx.wait_for(70);  // about 75 frames' worth (10 % lost, 10 % sent twice)
  s->remove(id);
  auto st = removed.wait(5);
  auto more = rx.drain(200);
  pkts.insert(pkts.end(), more.begin(), more.end());
  s->stop();
  std::size_t dups = 0, reordered = 0;
  for (std::size_t i = 1; i < pkts.size(); ++i) {
    if (pkts[i].seq == pkts[i - 1].seq) ++dups;
    if (static_cast<std::int16_t>(pkts[i].seq - pkts[i - 1].seq) < 0) ++reordered;
  }
  EXPECT_GT(st.lost, 0u);
  EXPECT_GT(dups, 0u);
  EXPECT_GT(reordered, 0u);
  EXPECT_EQ(st.packets, pkts.size());
}

TEST(RtpSender, ManyStreamsShareTheThread) {
  Rx rx;
  Removed removed;
  SenderOptions o;
  o.max_streams = 512;
  auto s = make_sender(removed, o);
  auto audio = pcma();
  s->start();
  auto t_add = Clock::now();
  for (StreamId i = 0; i < 400; ++i) {
    StreamId id = i;
    ASSERT_TRUE(s->add(&id, i, audio.get(), *make_destination("127.0.0.1", rx.port), i, i, false));
  }
  auto got = rx.wait_for(400 * 12);  // 12 frames of every stream, about 240 ms
  ASSERT_EQ(got.size(), 400u * 12);
  for (StreamId i = 0; i < 400; ++i) s->remove(i);
  std::uint64_t total = 0;
  for (StreamId i = 0; i < 400; ++i) total += removed.wait(i).packets;
  auto t_removed = Clock::now();
  s->stop();
  EXPECT_EQ(total, s->packets_sent());
  EXPECT_GE(total, 400u * 12);
  // Never early: no stream sent more than was due by the time all were removed.
  EXPECT_LE(static_cast<double>(total), 400 * ((ms_between(t_add, t_removed) + kWheelSlackMs) / 20 + 1));
}

TEST(RtpSender, SeveralThreadsSplitTheStreamsAndKeepEachInOrder) {
  Rx rx;
  Removed removed;
  SenderOptions o;
  o.max_streams = 256;
  o.threads = 3;
  auto s = make_sender(removed, o);
  EXPECT_EQ(s->threads(), 3u);
  auto audio = pcma();
  s->start();
  auto t_add = Clock::now();
  constexpr StreamId kStreams = 200;
  for (StreamId i = 0; i < kStreams; ++i) {
    StreamId id = i;
    ASSERT_TRUE(s->add(&id, i, audio.get(), *make_destination("127.0.0.1", rx.port), i, i, false));
  }
  auto got = rx.wait_for(kStreams * 12);
  ASSERT_EQ(got.size(), kStreams * 12u);
  for (StreamId i = 0; i < kStreams; ++i) s->remove(i);
  std::uint64_t total = 0;
  for (StreamId i = 0; i < kStreams; ++i) total += removed.wait(i).packets;
  auto t_removed = Clock::now();
  auto more = rx.drain(200);
  got.insert(got.end(), more.begin(), more.end());
  s->stop();
  EXPECT_EQ(total, s->packets_sent());
  EXPECT_EQ(total, got.size());
  EXPECT_LE(static_cast<double>(total), kStreams * ((ms_between(t_add, t_removed) + kWheelSlackMs) / 20 + 1));
  // Every stream (one SSRC each) came from one thread: consecutive sequence numbers and timestamps.
  std::map<std::uint32_t, std::vector<Rx::Pkt>> by_ssrc;
  for (const auto& p : got) by_ssrc[p.ssrc].push_back(p);
  EXPECT_EQ(by_ssrc.size(), kStreams);
  for (const auto& [ssrc, pkts] : by_ssrc) {
    ASSERT_GE(pkts.size(), 12u);
    for (std::size_t i = 1; i < pkts.size(); ++i) {
      EXPECT_EQ(pkts[i].seq, static_cast<std::uint16_t>(pkts[0].seq + i)) << "ssrc " << ssrc;
      EXPECT_EQ(pkts[i].ts, pkts[0].ts + 160 * i) << "ssrc " << ssrc;
    }
  }
  // Lateness is counted, never negative; with nothing late the worst is 0.
  EXPECT_TRUE(s->late_packets() > 0 || s->max_late_ms() == 0);
}

TEST(RtpSender, BadAddressIsAnError) {
  EXPECT_EQ(make_destination("example.com", 1).error().code, "rtp.address");
  EXPECT_TRUE(make_destination("::1", 1).ok());
}

}  // namespace
}  // namespace sgw::siprec_src
