#include "siprec_src/sdp_offer.h"

#include <gtest/gtest.h>

namespace sgw::siprec_src {
namespace {

TEST(SdpOffer, OneSendonlyLabelledMlinePerStream) {
  OfferParams p;
  p.address = "127.0.0.1";
  p.session_id = 77;
  p.version = 3;
  p.codec = media::CodecId::kG722;
  p.streams = {{4000, "1", "sendonly"}, {4002, "2", "inactive"}};
  std::string s = build_offer(p);
  EXPECT_NE(s.find("o=siprec-src 77 3 IN IP4 127.0.0.1\r\n"), std::string::npos);
  EXPECT_NE(s.find("m=audio 4000 RTP/AVP 9 101\r\n"), std::string::npos);
  EXPECT_NE(s.find("m=audio 4002 RTP/AVP 9 101\r\n"), std::string::npos);
  EXPECT_NE(s.find("a=rtpmap:9 G722/8000\r\n"), std::string::npos);
  EXPECT_NE(s.find("a=label:1\r\na=sendonly\r\n"), std::string::npos);
  EXPECT_NE(s.find("a=label:2\r\na=inactive\r\n"), std::string::npos);
}

TEST(SdpOffer, PayloadTypes) {
  EXPECT_EQ(payload_type(media::CodecId::kPcmu), 0);
  EXPECT_EQ(payload_type(media::CodecId::kPcma), 8);
  EXPECT_EQ(payload_type(media::CodecId::kG722), 9);
  EXPECT_EQ(payload_type(media::CodecId::kG729), 18);
  EXPECT_EQ(payload_type(media::CodecId::kOpus), 111);
  OfferParams p;
  p.codec = media::CodecId::kOpus;
  p.streams = {{4000, "1", "sendonly"}};
  EXPECT_NE(build_offer(p).find("a=rtpmap:111 opus/48000/2"), std::string::npos);
  p.address = "::1";
  EXPECT_NE(build_offer(p).find("c=IN IP6 ::1"), std::string::npos);
}

TEST(SdpOffer, HoldByZeroAddressHasNoDirectionAttribute) {
  // RFC 2543 hold as BroadWorks sends it: c=0.0.0.0, o= keeps the address, no a=sendonly/inactive.
  OfferParams p;
  p.address = "127.0.0.1";
  p.hold_by_zero_address = true;
  p.streams = {{4000, "1", ""}, {4002, "2", ""}};
  std::string s = build_offer(p);
  EXPECT_NE(s.find("o=siprec-src 1 1 IN IP4 127.0.0.1\r\n"), std::string::npos) << s;
  EXPECT_NE(s.find("c=IN IP4 0.0.0.0\r\n"), std::string::npos) << s;
  for (const char* dir : {"a=sendonly", "a=inactive", "a=recvonly", "a=sendrecv"})
    EXPECT_EQ(s.find(dir), std::string::npos) << s;
}

TEST(SdpAnswer, PortsAddressesDirectionsAndLabels) {
  auto a = parse_answer(
      "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
      "m=audio 30000 RTP/AVP 8\r\na=label:1\r\na=recvonly\r\n"
      "m=audio 30002 RTP/AVP 8\r\nc=IN IP4 10.0.0.2\r\na=label:2\r\na=inactive\r\n"
      "m=video 0 RTP/AVP 96\r\n");
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 3u);
  EXPECT_EQ((*a)[0].address, "10.0.0.1");
  EXPECT_EQ((*a)[0].port, 30000);
  EXPECT_EQ((*a)[0].direction, "recvonly");
  EXPECT_EQ((*a)[0].label, "1");
  EXPECT_EQ((*a)[1].address, "10.0.0.2");
  EXPECT_EQ((*a)[1].direction, "inactive");
  EXPECT_EQ((*a)[2].port, 0);
}

TEST(SdpAnswer, GarbageIsAnError) {
  EXPECT_FALSE(parse_answer("").ok());
  EXPECT_FALSE(parse_answer("hello\r\nworld").ok());
  EXPECT_FALSE(parse_answer("v=0\r\n").ok());
  auto a = parse_answer("v=0\nc=IN IP4 1.2.3.4\nm=audio 99999999 RTP/AVP 0\n");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)[0].port, 0);  // out of range: treated as rejected
}

TEST(Multipart, SdpAndMetadataWithDisposition) {
  auto [ct, body] = multipart({{"application/sdp", "v=0\r\n"}, {"application/rs-metadata+xml", "<r/>"}}, "BB");
  EXPECT_EQ(ct, "multipart/mixed;boundary=BB");
  EXPECT_EQ(body,
            "--BB\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n"
            "--BB\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n"
            "<r/>\r\n--BB--\r\n");
  EXPECT_EQ(find_sdp(ct, body), "v=0\r\n");
  EXPECT_EQ(find_sdp("multipart/mixed; boundary=\"BB\"", body), "v=0\r\n");
  EXPECT_EQ(find_sdp("application/sdp", "v=0"), "v=0");
  EXPECT_EQ(find_sdp("text/plain", "v=0"), "");
  EXPECT_EQ(find_sdp("multipart/mixed", body), "");
}

}  // namespace
}  // namespace sgw::siprec_src
