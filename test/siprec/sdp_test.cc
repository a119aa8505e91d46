// Tests for parse_sdp (src/siprec/sdp.h).
#include "siprec/sdp.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace sgw::siprec {
namespace {

using test::crlf;
using test::load;

SessionDescription parse_ok(const std::string& text) {
  auto r = parse_sdp(text);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().message);
  return r.ok() ? std::move(r).value() : SessionDescription{};
}

std::string error_code(const std::string& text) {
  auto r = parse_sdp(text);
  return r.ok() ? "ok" : r.error().code;
}

TEST(SdpParse, GenesysEdgeTwoLabelledSendonlyStreams) {
  auto sd = parse_ok(load("genesys_edge.sdp"));
  ASSERT_TRUE(sd.origin);
  EXPECT_EQ(sd.origin->username, "-");
  EXPECT_EQ(sd.origin->session_id, "1702401234");
  EXPECT_EQ(sd.origin->session_version, "1");
  EXPECT_EQ(sd.origin->net_type, "IN");
  EXPECT_EQ(sd.origin->addr_type, "IP4");
  EXPECT_EQ(sd.origin->address, "10.20.30.40");
  EXPECT_EQ(sd.session_name, "Genesys Cloud Edge");
  ASSERT_TRUE(sd.connection);
  EXPECT_EQ(sd.connection->address, "10.20.30.40");
  EXPECT_FALSE(sd.direction);
  ASSERT_EQ(sd.media.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& m = sd.media[i];
    EXPECT_EQ(m.media, "audio");
    EXPECT_EQ(m.port, i == 0 ? 16384 : 16386);
    EXPECT_EQ(m.port_count, 1);
    EXPECT_EQ(m.proto, "RTP/AVP");
    EXPECT_EQ(m.formats, (std::vector<std::string>{"0", "8", "101"}));
    ASSERT_EQ(m.payloads.size(), 3u);
    EXPECT_EQ(m.payloads[0].encoding, "PCMU");
    EXPECT_EQ(m.payloads[1].encoding, "PCMA");
    EXPECT_EQ(m.payloads[2].encoding, "telephone-event");
    EXPECT_EQ(m.payloads[2].clock_rate, 8000u);
    EXPECT_EQ(m.payloads[2].fmtp, "0-15");
    EXPECT_FALSE(m.payloads[0].from_static_table);  // explicit a=rtpmap
    EXPECT_EQ(m.direction, Direction::kSendOnly);
    EXPECT_TRUE(m.has_media_direction);
    EXPECT_EQ(m.label, i == 0 ? "1" : "2");
    EXPECT_EQ(m.ptime, 20u);
    ASSERT_TRUE(m.connection);
    EXPECT_EQ(m.connection->address, "10.20.30.40");
    EXPECT_FALSE(m.has_media_connection);
    EXPECT_TRUE(m.attributes.empty());
  }
}

TEST(SdpParse, OracleSbcKeepsUnknownAttributesAndG729Fmtp) {
  auto sd = parse_ok(load("oracle_sbc.sdp"));
  ASSERT_EQ(sd.media.size(), 2u);
  const auto& m = sd.media[1];
  EXPECT_EQ(m.label, "10002");
  ASSERT_NE(m.find_payload(18), nullptr);
  EXPECT_EQ(m.find_payload(18)->encoding, "G729");
  EXPECT_EQ(m.find_payload(18)->fmtp, "annexb=no");
  ASSERT_EQ(m.attributes.size(), 1u);
  EXPECT_EQ(m.attributes[0].name, "maxptime");
  EXPECT_EQ(m.attributes[0].value, "40");
  EXPECT_TRUE(m.attributes[0].has_value);
  EXPECT_EQ(m.find_payload(96), nullptr);
}

TEST(SdpParse, AudioCodesMediaConnectionAndRtcpPort) {
  auto sd = parse_ok(load("audiocodes.sdp"));
  ASSERT_EQ(sd.media.size(), 2u);
  EXPECT_EQ(sd.connection->address, "10.1.1.5");
  EXPECT_EQ(sd.media[0].connection->address, "10.1.1.6");  // media c= wins
  EXPECT_TRUE(sd.media[0].has_media_connection);
  EXPECT_EQ(sd.media[0].rtcp_port, 6011);
  EXPECT_EQ(sd.media[1].rtcp_port, 6021);
  EXPECT_EQ(sd.media[1].find_payload(96)->encoding, "telephone-event");
}

TEST(SdpParse, AvayaSessionLevelDirectionIsInherited) {
  auto sd = parse_ok(load("avaya_sbce.sdp"));
  EXPECT_EQ(sd.direction, Direction::kSendOnly);
  ASSERT_EQ(sd.media.size(), 2u);
  EXPECT_EQ(sd.media[0].direction, Direction::kSendOnly);
  EXPECT_FALSE(sd.media[0].has_media_direction);
  ASSERT_EQ(sd.other_lines.size(), 2u);  // b= and t=, in order
  EXPECT_EQ(sd.other_lines[0].type, 'b');
  EXPECT_EQ(sd.other_lines[0].value, "AS:64");
  EXPECT_EQ(sd.other_lines[1].type, 't');
}

TEST(SdpParse, MediaDirectionOverridesSession) {
  auto sd = parse_ok(crlf("v=0\ns=-\na=sendonly\nm=audio 1000 RTP/AVP 0\na=inactive\n"
                          "m=audio 1002 RTP/AVP 0\n"));
  EXPECT_EQ(sd.media[0].direction, Direction::kInactive);
  EXPECT_EQ(sd.media[1].direction, Direction::kSendOnly);
}

TEST(SdpParse, DefaultDirectionIsSendrecv) {
  auto sd = parse_ok("v=0\r\nm=audio 1000 RTP/AVP 0\r\n");
  EXPECT_EQ(sd.media[0].direction, Direction::kSendRecv);
}

TEST(SdpParse, StaticPayloadTypesResolveWithoutRtpmap) {
  auto sd = parse_ok(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 0 8 9 18 13 3 4 96\n"));
  const auto& p = sd.media[0].payloads;
  ASSERT_EQ(p.size(), 8u);
  const char* names[] = {"PCMU", "PCMA", "G722", "G729", "CN", "GSM", "G723"};
  for (std::size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(p[i].encoding, names[i]);
    EXPECT_EQ(p[i].clock_rate, 8000u);
    EXPECT_TRUE(p[i].from_static_table);
  }
  EXPECT_FALSE(p[7].resolved());  // dynamic PT without a=rtpmap
  EXPECT_EQ(p[7].payload_type, 96);
}

TEST(SdpParse, ExplicitRtpmapOverridesStaticTable) {
  auto sd = parse_ok(crlf("v=0\nm=audio 1000 RTP/AVP 9\na=rtpmap:9 G722/8000/1\n"));
  EXPECT_FALSE(sd.media[0].payloads[0].from_static_table);
  EXPECT_EQ(sd.media[0].payloads[0].channels, 1u);
}

TEST(SdpParse, OpusChannelsAndFmtp) {
  auto sd = parse_ok(load("opus_g722.sdp"));
  const auto* opus = sd.media[0].find_payload(111);
  ASSERT_NE(opus, nullptr);
  EXPECT_EQ(opus->encoding, "opus");
  EXPECT_EQ(opus->clock_rate, 48000u);
  EXPECT_EQ(opus->channels, 2u);
  EXPECT_EQ(opus->fmtp, "minptime=10;useinbandfec=1");
  EXPECT_TRUE(sd.media[0].rtcp_mux);
  EXPECT_EQ(sd.media[0].proto, "RTP/AVPF");
}

TEST(SdpParse, LfOnlyAndIpv6) {
  auto sd = parse_ok(load("ipv6_lf.sdp"));
  EXPECT_EQ(sd.connection->addr_type, "IP6");
  EXPECT_EQ(sd.connection->address, "2001:db8::10");
  EXPECT_EQ(sd.origin->address, "2001:db8::10");
  ASSERT_EQ(sd.media.size(), 2u);
  EXPECT_EQ(sd.media[1].label, "b");
}

TEST(SdpParse, TrailingWhitespaceAndBlankLinesTolerated) {
  auto sd = parse_ok("v=0  \r\n\r\no=- 1 1 IN IP4 1.2.3.4 \t\r\nm=audio 1000 RTP/AVP 8   101\r\n"
                     "a=rtpmap:101 telephone-event/8000 \r\na=label:7\t\r\n\r\n");
  EXPECT_EQ(sd.origin->address, "1.2.3.4");
  EXPECT_EQ(sd.media[0].formats, (std::vector<std::string>{"8", "101"}));
  EXPECT_EQ(sd.media[0].payloads[1].encoding, "telephone-event");
  EXPECT_EQ(sd.media[0].label, "7");
}

TEST(SdpParse, MissingSessionNameAndTimingAccepted) {
  auto sd = parse_ok("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n");
  EXPECT_EQ(sd.session_name, "");
  EXPECT_FALSE(sd.origin);
  EXPECT_EQ(sd.media[0].connection->address, "192.0.2.1");
}

TEST(SdpParse, NoMediaIsAcceptedByParser) {
  auto sd = parse_ok("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n");
  EXPECT_TRUE(sd.media.empty());
}

TEST(SdpParse, UnknownLinesAndAttributesKeptInOrder) {
  auto sd = parse_ok(crlf("v=0\nx=vendor\na=group:BUNDLE 0\nm=audio 1000 RTP/AVP 0\ni=info\n"
                          "a=mid:0\na=ssrc:1234 cname:abc\nb=TIAS:64000\na=extmap-allow-mixed\n"));
  ASSERT_EQ(sd.attributes.size(), 1u);
  EXPECT_EQ(sd.attributes[0].name, "group");
  EXPECT_EQ(sd.other_lines[0].type, 'x');
  const auto& m = sd.media[0];
  ASSERT_EQ(m.attributes.size(), 3u);
  EXPECT_EQ(m.attributes[0].name, "mid");
  EXPECT_EQ(m.attributes[1].value, "1234 cname:abc");
  EXPECT_EQ(m.attributes[2].name, "extmap-allow-mixed");
  EXPECT_FALSE(m.attributes[2].has_value);
  ASSERT_EQ(m.other_lines.size(), 2u);
  EXPECT_EQ(m.other_lines[0].type, 'i');
  EXPECT_EQ(m.other_lines[1].value, "TIAS:64000");
}

TEST(SdpParse, CryptoLines) {
  auto sd = parse_ok(load("srtp_sdes.sdp"));
  const auto& m = sd.media[0];
  EXPECT_TRUE(m.is_srtp());
  ASSERT_EQ(m.crypto.size(), 1u);
  EXPECT_EQ(m.crypto[0].tag, 1u);
  EXPECT_EQ(m.crypto[0].suite, "AES_CM_128_HMAC_SHA1_80");
  EXPECT_EQ(m.crypto[0].key_params, "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32");
  EXPECT_EQ(m.crypto[0].session_params, "");
  EXPECT_TRUE(m.rtcp_mux);
}

TEST(SdpParse, MalformedKnownAttributesAreKeptNotFatal) {
  auto sd = parse_ok(crlf("v=0\nm=audio 1000 RTP/AVP 96\na=rtpmap:96 nonsense\na=rtpmap:300 X/1\n"
                          "a=ptime:abc\na=rtcp:99999\na=crypto:x\n"));
  const auto& m = sd.media[0];
  EXPECT_FALSE(m.payloads[0].resolved());
  EXPECT_FALSE(m.ptime);
  EXPECT_FALSE(m.rtcp_port);
  EXPECT_TRUE(m.crypto.empty());
  EXPECT_EQ(m.attributes.size(), 5u);
}

TEST(SdpParse, FractionalPtime) {
  auto sd = parse_ok("v=0\r\nm=audio 1000 RTP/AVP 0\r\na=ptime:30.0\r\n");
  EXPECT_EQ(sd.media[0].ptime, 30u);
}

TEST(SdpParse, PortCountAndMulticastConnection) {
  auto sd = parse_ok("v=0\r\nc=IN IP4 224.2.1.1/127/3\r\nm=audio 49170/2 RTP/AVP 0\r\n");
  EXPECT_EQ(sd.connection->address, "224.2.1.1");
  EXPECT_EQ(sd.media[0].port, 49170);
  EXPECT_EQ(sd.media[0].port_count, 2);
}

TEST(SdpParse, NonRtpMediaHasNoPayloads) {
  auto sd = parse_ok("v=0\r\nm=application 5000 TCP/MRCPv2 1\r\n");
  EXPECT_TRUE(sd.media[0].payloads.empty());
  EXPECT_EQ(sd.media[0].formats, (std::vector<std::string>{"1"}));
  EXPECT_FALSE(sd.media[0].is_rtp());
}

TEST(SdpParse, Errors) {
  EXPECT_EQ(error_code(""), "sdp.no_version");
  EXPECT_EQ(error_code("\r\n\r\n"), "sdp.no_version");
  EXPECT_EQ(error_code("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"), "sdp.no_version");
  EXPECT_EQ(error_code("<html><body>hi</body></html>"), "sdp.malformed");
  EXPECT_EQ(error_code("v=1\r\n"), "sdp.bad_version");
  EXPECT_EQ(error_code("v=0\r\nthis is not sdp\r\n"), "sdp.malformed");
  EXPECT_EQ(error_code("v=0\r\n=x\r\n"), "sdp.malformed");
  EXPECT_EQ(error_code("v=0\r\no=- 1 IN IP4\r\n"), "sdp.bad_origin");
  EXPECT_EQ(error_code("v=0\r\nc=IN IP4\r\n"), "sdp.bad_connection");
  EXPECT_EQ(error_code("v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN\r\n"), "sdp.bad_connection");
  EXPECT_EQ(error_code("v=0\r\nm=audio 70000 RTP/AVP 0\r\n"), "sdp.bad_media");
  EXPECT_EQ(error_code("v=0\r\nm=audio -1 RTP/AVP 0\r\n"), "sdp.bad_media");
  EXPECT_EQ(error_code("v=0\r\nm=audio abc RTP/AVP 0\r\n"), "sdp.bad_media");
  EXPECT_EQ(error_code("v=0\r\nm=audio 1000/0 RTP/AVP 0\r\n"), "sdp.bad_media");
  EXPECT_EQ(error_code("v=0\r\nm=audio 1000 RTP/AVP\r\n"), "sdp.bad_media");
  EXPECT_EQ(error_code("v=0\r\nm=\x01 1000 RTP/AVP 0\r\n"), "sdp.bad_media");
  EXPECT_EQ(error_code("v=0\r\nm=audio 1000 RTP/AVP 0\x0b" "8\r\n"), "sdp.bad_media");
  EXPECT_EQ(error_code(std::string(kMaxSdpBytes + 1, 'a')), "sdp.too_large");
}

TEST(SdpParse, TooManyMediaLines) {
  std::string s = "v=0\r\n";
  for (std::size_t i = 0; i <= kMaxSdpMedia; ++i) s += "m=audio 1000 RTP/AVP 0\r\n";
  EXPECT_EQ(error_code(s), "sdp.too_many_media");
}

TEST(SdpParse, ErrorMessagesAreOneLinePrintable) {
  auto r = parse_sdp("v=0\r\nm=audio 9\x01\"9 RTP/AVP 0\r\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "sdp.bad_media");
  for (char c : r.error().message) EXPECT_TRUE(c >= 0x20 && c < 0x7f && c != '"') << int(c);
}

TEST(SdpParse, DirectionToString) {
  EXPECT_EQ(to_string(Direction::kSendRecv), "sendrecv");
  EXPECT_EQ(to_string(Direction::kSendOnly), "sendonly");
  EXPECT_EQ(to_string(Direction::kRecvOnly), "recvonly");
  EXPECT_EQ(to_string(Direction::kInactive), "inactive");
}

}  // namespace
}  // namespace sgw::siprec
