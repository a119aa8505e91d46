#include "media/rtp_packet_view.h"

#include <vector>

#include <gtest/gtest.h>

namespace sgw::media {
namespace {

std::vector<std::uint8_t> header(std::uint8_t b0, std::uint8_t b1) {
  return {b0, b1, 0x12, 0x34, 0x00, 0x00, 0x01, 0x40, 0xca, 0xfe, 0xba, 0xbe};
}

TEST(RtpPacketViewTest, ParsesPlainPacket) {
  auto p = header(0x80, 0x80 | 8);
  p.insert(p.end(), {1, 2, 3});
  auto v = RtpPacketView::parse(p);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->marker);
  EXPECT_EQ(v->payload_type, 8);
  EXPECT_EQ(v->sequence, 0x1234);
  EXPECT_EQ(v->timestamp, 0x140u);
  EXPECT_EQ(v->ssrc, 0xcafebabeu);
  ASSERT_EQ(v->payload.size(), 3u);
  EXPECT_EQ(v->payload[2], 3);
}

TEST(RtpPacketViewTest, SkipsCsrcAndExtensionAndPadding) {
  auto p = header(0x80 | 0x20 | 0x10 | 2, 0);  // padding, extension, 2 CSRCs
  p.insert(p.end(), 8, 0xaa);                  // CSRCs
  p.insert(p.end(), {0xbe, 0xde, 0x00, 0x01, 1, 2, 3, 4});  // extension, 1 word
  p.insert(p.end(), {9, 9});                   // payload
  p.insert(p.end(), {0, 0, 3});                // 3 octets of padding
  auto v = RtpPacketView::parse(p);
  ASSERT_TRUE(v);
  ASSERT_EQ(v->payload.size(), 2u);
  EXPECT_EQ(v->payload[0], 9);
}

TEST(RtpPacketViewTest, RejectsMalformed) {
  EXPECT_FALSE(RtpPacketView::parse({}));
  auto shortp = header(0x80, 0);
  shortp.pop_back();
  EXPECT_FALSE(RtpPacketView::parse(shortp));                      // 11 bytes
  EXPECT_FALSE(RtpPacketView::parse(header(0x40, 0)));             // version 1
  EXPECT_FALSE(RtpPacketView::parse(header(0x80 | 15, 0)));        // CSRCs past the end
  auto ext = header(0x90, 0);
  ext.insert(ext.end(), {0xbe, 0xde, 0x00, 0x05});                 // extension claims 5 words
  EXPECT_FALSE(RtpPacketView::parse(ext));
  auto pad = header(0xa0, 0);
  pad.push_back(200);                                              // padding longer than packet
  EXPECT_FALSE(RtpPacketView::parse(pad));
  auto zero_pad = header(0xa0, 0);
  zero_pad.push_back(0);                                           // padding count 0 is invalid
  EXPECT_FALSE(RtpPacketView::parse(zero_pad));
  EXPECT_FALSE(RtpPacketView::parse(header(0x80, 200)));           // RTCP SR on a muxed port
}

}  // namespace
}  // namespace sgw::media
