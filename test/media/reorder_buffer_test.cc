#include "media/reorder_buffer.h"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace sgw::media {
namespace {

struct Emitted {
  std::uint16_t seq;
  std::uint64_t ext_seq;
  std::uint32_t ssrc;
  std::uint32_t lost_before;
  bool new_segment;
  std::uint32_t segment;
  std::vector<std::uint8_t> payload;
};

class Collect : public PacketSink {
 public:
  void on_packet(const ReorderedPacket& p) override {
    out.push_back({p.seq, p.ext_seq, p.ssrc, p.lost_before, p.new_segment, p.segment,
                   std::vector<std::uint8_t>(p.payload.begin(), p.payload.end())});
  }
  std::vector<std::uint16_t> seqs() const {
    std::vector<std::uint16_t> s;
    for (const auto& e : out) s.push_back(e.seq);
    return s;
  }
  std::vector<Emitted> out;
};

class ReorderBufferTest : public ::testing::Test {
 protected:
  // Packet `seq` of `ssrc` arriving at `ms`; its payload is the low byte of seq.
  void push(std::uint16_t seq, std::int64_t ms, std::uint32_t ssrc = 0xaaaa) {
    std::uint8_t b = static_cast<std::uint8_t>(seq & 0xff);
    ReorderInput in;
    in.seq = seq;
    in.timestamp = std::uint32_t{seq} * 160;
    in.ssrc = ssrc;
    in.arrival_us = ms * 1000;
    in.payload_type = 0;
    in.payload = std::span<const std::uint8_t>(&b, 1);
    rb.push(in, sink);
  }
  ReorderBuffer rb;  // window 60 ms
  Collect sink;
};

TEST_F(ReorderBufferTest, InOrderStreamFlowsAfterTheFirstWindow) {
  push(100, 0);
  EXPECT_TRUE(sink.out.empty()) << "first packet waits for stragglers";
  push(101, 20);
  push(102, 40);
  EXPECT_TRUE(sink.out.empty());
  push(103, 60);  // 100 has waited 60 ms
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{100, 101, 102, 103}));
  EXPECT_TRUE(sink.out[0].new_segment);
  EXPECT_FALSE(sink.out[1].new_segment);
  push(104, 80);
  EXPECT_EQ(sink.out.size(), 5u) << "in order: no waiting once started";
  EXPECT_EQ(sink.out[4].payload, std::vector<std::uint8_t>{104});
  EXPECT_EQ(rb.stats().received, 5u);
  EXPECT_EQ(rb.stats().emitted, 5u);
  EXPECT_EQ(rb.stats().lost, 0u);
}

TEST_F(ReorderBufferTest, WrapFrom65534To1) {
  push(65533, 0);
  rb.flush(100'000, sink);
  push(65534, 120);
  push(0, 160);  // 65535 reordered after 0
  push(65535, 165);
  push(1, 180);
  rb.finish(sink);
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{65533, 65534, 65535, 0, 1}));
  for (std::size_t i = 1; i < sink.out.size(); ++i)
    EXPECT_EQ(sink.out[i].ext_seq, sink.out[i - 1].ext_seq + 1) << "extended seq counts the wrap";
  EXPECT_EQ(rb.stats().lost, 0u);
  EXPECT_EQ(rb.stats().reordered, 1u);
  EXPECT_EQ(rb.stats().segments, 1u);
}

TEST_F(ReorderBufferTest, FirstPacketReorderedIsNotLate) {
  push(0, 0);
  push(65535, 10);  // belongs before 0, across the wrap
  push(1, 20);
  rb.finish(sink);
  EXPECT_EQ(sink.seqs(), (std::vector<std::uint16_t>{65535, 0, 1}));
  EXPECT_EQ(rb.stats().late, 0u);
  EXPECT_EQ(rb.stats().reordered, 1u);
}

TEST_F(ReorderBufferTest, DuplicatesAreDroppedAndCounted) {
  push(10, 0);
  push(11, 20);
  push(11, 21);  // duplicate while buffered
  rb.flush(100'000, sink);
  push(12, 120);
  push(12, 121);  // duplicate of an emitted packet
  push(10, 130);  // old duplicate
  rb.finish(sink);
  EXPECT_EQ(sink.seqs(), (std::vector<std::uint16_t>{10, 11, 12}));
  EXPECT_EQ(rb.stats().duplicates, 3u);
  EXPECT_EQ(rb.stats().late, 0u);
  EXPECT_EQ(rb.stats().received, 6u);
}

TEST_F(ReorderBufferTest, LatePacketAfterItsHoleWasSkipped) {
  push(10, 0);
  rb.flush(60'000, sink);
  push(12, 80);          // 11 missing
  push(13, 100);
  rb.flush(140'000, sink);  // 12 waited 60 ms: 11 given up
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{10, 12, 13}));
  EXPECT_EQ(sink.out[1].lost_before, 1u);
  push(11, 150);  // too late
  rb.finish(sink);
  EXPECT_EQ(sink.out.size(), 3u);
  EXPECT_EQ(rb.stats().late, 1u);
  EXPECT_EQ(rb.stats().lost, 1u);
  EXPECT_EQ(rb.stats().duplicates, 0u);
}

TEST_F(ReorderBufferTest, ReorderWithinWindowIsRepaired) {
  push(1, 0);
  rb.flush(60'000, sink);
  push(3, 80);
  push(2, 100);  // 20 ms later: within the 60 ms window
  push(5, 120);
  push(4, 130);
  push(6, 140);
  EXPECT_EQ(sink.seqs(), (std::vector<std::uint16_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(rb.stats().reordered, 2u);
  EXPECT_EQ(rb.stats().lost, 0u);
  EXPECT_EQ(rb.stats().late, 0u);
}

TEST_F(ReorderBufferTest, HeadWaitsExactlyTheWindowThenLossIsReported) {
  push(1, 0);
  rb.flush(60'000, sink);
  push(4, 100);  // 2, 3 missing
  rb.flush(159'000, sink);
  EXPECT_EQ(sink.out.size(), 1u) << "59 ms: still waiting";
  rb.flush(160'000, sink);
  ASSERT_EQ(sink.out.size(), 2u);
  EXPECT_EQ(sink.out[1].seq, 4);
  EXPECT_EQ(sink.out[1].lost_before, 2u);
  push(5, 170);
  push(8, 180);
  push(9, 181);
  rb.finish(sink);  // end of stream: holes skipped
  EXPECT_EQ(sink.seqs(), (std::vector<std::uint16_t>{1, 4, 5, 8, 9}));
  EXPECT_EQ(sink.out[3].lost_before, 2u);
  EXPECT_EQ(rb.stats().lost, 4u);
}

TEST_F(ReorderBufferTest, LossCountsUnderRandomPattern) {
  // 1000 packets, every 7th lost, pairs swapped every 5th: all others come out
  // in order and exactly the dropped ones are counted lost.
  std::vector<std::uint16_t> order;
  for (std::uint16_t s = 0; s < 1000; ++s) order.push_back(static_cast<std::uint16_t>(60000 + s));
  for (std::size_t i = 0; i + 1 < order.size(); i += 5) std::swap(order[i], order[i + 1]);
  std::int64_t t = 0;
  std::uint64_t dropped = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    t += 20;
    if (i % 7 == 3 && i + 1 < order.size()) {
      ++dropped;
      continue;
    }
    push(order[i], t);
  }
  rb.finish(sink);
  EXPECT_EQ(sink.out.size(), 1000u - dropped);
  for (std::size_t i = 1; i < sink.out.size(); ++i) ASSERT_LT(sink.out[i - 1].ext_seq, sink.out[i].ext_seq);
  EXPECT_EQ(rb.stats().lost, dropped);
  EXPECT_EQ(rb.stats().late, 0u);
}

TEST_F(ReorderBufferTest, SsrcChangeFlushesOldAndStartsSegment) {
  push(10, 0, 0xa);
  rb.flush(60'000, sink);
  push(11, 80, 0xa);
  push(13, 90, 0xa);  // 12 missing, still waiting
  push(500, 100, 0xb);  // new SSRC
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{10, 11, 13}));
  EXPECT_EQ(sink.out[2].lost_before, 1u);
  push(12, 110, 0xa);  // straggler of the old SSRC
  push(501, 120, 0xb);
  rb.finish(sink);
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{10, 11, 13, 500, 501}));
  EXPECT_TRUE(sink.out[3].new_segment);
  EXPECT_EQ(sink.out[3].segment, 1u);
  EXPECT_EQ(sink.out[3].ssrc, 0xbu);
  EXPECT_EQ(sink.out[3].lost_before, 0u);
  EXPECT_EQ(rb.stats().late, 1u);
  EXPECT_EQ(rb.stats().segments, 2u);
  EXPECT_EQ(rb.stats().ssrcs, (std::vector<std::uint32_t>{0xa, 0xb}));
}

TEST_F(ReorderBufferTest, SeqResetNeedsTwoConsecutivePackets) {
  push(1000, 0);
  rb.flush(60'000, sink);
  push(1001, 80);
  push(9000, 100);  // candidate
  push(1002, 110);  // the old place continues: 9000 was garbage
  push(9500, 120);  // another candidate: 9000 dropped
  push(1003, 130);
  push(20000, 140);  // candidate
  push(20001, 160);  // confirmed: reset
  push(20002, 180);
  rb.finish(sink);
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{1000, 1001, 1002, 1003, 20000, 20001, 20002}));
  EXPECT_TRUE(sink.out[4].new_segment);
  EXPECT_EQ(sink.out[4].segment, 1u);
  EXPECT_EQ(sink.out[4].lost_before, 0u);
  EXPECT_EQ(rb.stats().probation_dropped, 2u);
  EXPECT_EQ(rb.stats().lost, 0u);
  EXPECT_EQ(rb.stats().segments, 2u);
  EXPECT_EQ(rb.stats().ssrcs.size(), 1u);
}

TEST_F(ReorderBufferTest, BackwardSeqResetAlsoWorks) {
  push(40000, 0);
  rb.flush(60'000, sink);
  push(40001, 80);
  push(5, 100);
  push(6, 120);
  rb.finish(sink);
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{40000, 40001, 5, 6}));
  EXPECT_TRUE(sink.out[2].new_segment);
}

TEST_F(ReorderBufferTest, FarAheadWithinDropoutForcesHeadOut) {
  push(0, 0);
  rb.flush(60'000, sink);
  push(1, 80);
  push(200, 100);  // 198 lost; beyond the 64-slot ring, within max_dropout
  push(201, 120);
  rb.finish(sink);
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{0, 1, 200, 201}));
  EXPECT_EQ(sink.out[2].lost_before, 198u);
  EXPECT_EQ(rb.stats().lost, 198u);
}

TEST_F(ReorderBufferTest, OversizePayloadIsDroppedWithoutTouchingOthers) {
  ReorderBuffer small(ReorderConfig{.window_ms = 60, .capacity = 8, .max_payload = 4, .max_dropout = 3000});
  std::vector<std::uint8_t> big(5, 1), ok{7, 7, 7, 7};
  ReorderInput in;
  in.ssrc = 1;
  in.seq = 1;
  in.payload = ok;
  small.push(in, sink);
  in.seq = 2;
  in.arrival_us = 20'000;
  in.payload = big;
  small.push(in, sink);
  in.seq = 3;
  in.arrival_us = 40'000;
  in.payload = ok;
  small.push(in, sink);
  small.finish(sink);
  ASSERT_EQ(sink.seqs(), (std::vector<std::uint16_t>{1, 3}));
  EXPECT_EQ(sink.out[1].payload, ok);
  EXPECT_EQ(small.stats().oversize, 1u);
  EXPECT_EQ(small.stats().lost, 1u);
}

}  // namespace
}  // namespace sgw::media
