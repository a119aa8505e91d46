// RtpSender against a local UDP socket: pacing, header fields, pause, SSRC change and the
// injected faults. Only coarse timing is asserted (timing belongs in benchmarks).
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
  };
  std::vector<Pkt> drain(int wait_ms) {
    std::vector<Pkt> out;
    pollfd p{fd, POLLIN, 0};
    while (poll(&p, 1, wait_ms) > 0) {
      std::uint8_t b[2048];
      ssize_t n = recv(fd, b, sizeof b, 0);
      if (n < 12) continue;
      out.push_back({static_cast<std::uint8_t>(b[1] & 0x7f), (b[1] & 0x80) != 0,
                     static_cast<std::uint16_t>(b[2] << 8 | b[3]),
                     static_cast<std::uint32_t>(b[4]) << 24 | static_cast<std::uint32_t>(b[5]) << 16 |
                         static_cast<std::uint32_t>(b[6]) << 8 | b[7],
                     static_cast<std::uint32_t>(b[8]) << 24 | static_cast<std::uint32_t>(b[9]) << 16 |
                         static_cast<std::uint32_t>(b[10]) << 8 | b[11],
                     static_cast<std::size_t>(n)});
      wait_ms = 0;
    }
    return out;
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
  ASSERT_TRUE(s->add(&id, 77, audio.get(), *make_destination("127.0.0.1", rx.port), 0, 1, false));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  s->remove(id);
  auto st = removed.wait(77);
  auto pkts = rx.drain(200);
  s->stop();
  // 500 ms / 20 ms = 25 (+1 for the one at t=0); scheduler slack allows a few either way.
  EXPECT_GE(pkts.size(), 22u);
  EXPECT_LE(pkts.size(), 28u);
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

TEST(RtpSender, PauseKeepsTheClockAndSsrcChangeRestarts) {
  Rx rx;
  Removed removed;
  auto s = make_sender(removed);
  auto audio = pcma();
  s->start();
  StreamId id = 0;
  ASSERT_TRUE(s->add(&id, 1, audio.get(), *make_destination("127.0.0.1", rx.port), 0, 2, false));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  s->set_paused(id, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto before = rx.drain(50);
  s->set_paused(id, false);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  s->change_ssrc(id);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  s->remove(id);
  auto st = removed.wait(1);
  auto after = rx.drain(200);
  s->stop();
  ASSERT_FALSE(before.empty());
  ASSERT_GT(after.size(), 4u);
  // After the pause: the next sequence number, a marker, and the timestamp moved on by the
  // pause's length (about 200 ms = 1600 ticks, give or take a frame or two).
  const auto& last = before.back();
  const auto& first = after.front();
  EXPECT_EQ(first.seq, static_cast<std::uint16_t>(last.seq + 1));
  EXPECT_TRUE(first.marker);
  std::uint32_t gap = first.ts - last.ts;
  EXPECT_GE(gap, 160u * 8);
  EXPECT_LE(gap, 160u * 16);
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
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  s->remove(id);
  auto st = removed.wait(5);
  auto pkts = rx.drain(200);
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
  for (StreamId i = 0; i < 400; ++i) {
    StreamId id = i;
    ASSERT_TRUE(s->add(&id, i, audio.get(), *make_destination("127.0.0.1", rx.port), i, i, false));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (StreamId i = 0; i < 400; ++i) s->remove(i);
  std::uint64_t total = 0;
  for (StreamId i = 0; i < 400; ++i) total += removed.wait(i).packets;
  s->stop();
  EXPECT_EQ(total, s->packets_sent());
  EXPECT_GE(total, 400u * 12);
  EXPECT_LE(total, 400u * 18);
}

TEST(RtpSender, BadAddressIsAnError) {
  EXPECT_EQ(make_destination("example.com", 1).error().code, "rtp.address");
  EXPECT_TRUE(make_destination("::1", 1).ok());
}

}  // namespace
}  // namespace sgw::siprec_src
