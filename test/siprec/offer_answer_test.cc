// Tests for plan_answer / build_answer / is_paused (src/siprec/offer_answer.h).
#include "siprec/offer_answer.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace sgw::siprec {
namespace {

using test::crlf;
using test::load;

SessionDescription offer_from(const std::string& text) {
  auto r = parse_sdp(text);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : SessionDescription{};
}

OfferPlan plan_ok(const SessionDescription& offer, const CodecPolicy& policy = {}) {
  auto r = plan_answer(offer, policy);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().message);
  return r.ok() ? std::move(r).value() : OfferPlan{};
}

AnswerParams params(std::vector<std::uint16_t> ports, std::string addr = "203.0.113.5") {
  AnswerParams p;
  p.media_address = std::move(addr);
  p.ports = std::move(ports);
  p.session_id = 42;
  p.session_version = 1;
  return p;
}

// The full answer for a sample file, for exact comparison.
std::string answer_for(const std::string& file, std::vector<std::uint16_t> ports,
                       const CodecPolicy& policy = {}) {
  auto offer = offer_from(load(file));
  auto plan = plan_ok(offer, policy);
  return build_answer(offer, plan, params(std::move(ports)));
}

TEST(OfferAnswer, GenesysEdgeTwoStreamsBothCodecsAnsweredPcmaFirst) {
  EXPECT_EQ(answer_for("genesys_edge.sdp", {40000, 40002}),
            crlf("v=0\n"
                 "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=audio 40000 RTP/AVP 8 0 101\n"
                 "a=rtpmap:8 PCMA/8000\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=ptime:20\n"
                 "a=label:1\n"
                 "a=recvonly\n"
                 "m=audio 40002 RTP/AVP 8 0 101\n"
                 "a=rtpmap:8 PCMA/8000\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=ptime:20\n"
                 "a=label:2\n"
                 "a=recvonly\n"));
}

TEST(OfferAnswer, GenesysPlanDetails) {
  auto offer = offer_from(load("genesys_edge.sdp"));
  auto plan = plan_ok(offer);
  ASSERT_EQ(plan.streams.size(), 2u);
  EXPECT_EQ(plan.accepted_count(), 2u);
  const StreamPlan& s = plan.streams[1];
  EXPECT_EQ(s.index, 1u);
  EXPECT_TRUE(s.accepted);
  ASSERT_EQ(s.codecs.size(), 2u);
  EXPECT_EQ(s.codecs[0].payload_type, 8);
  EXPECT_EQ(s.codecs[0].encoding, "PCMA");
  EXPECT_EQ(s.codecs[0].clock_rate, 8000u);
  EXPECT_EQ(s.codecs[0].channels, 1u);
  EXPECT_EQ(s.codecs[1].payload_type, 0);
  EXPECT_EQ(s.codecs[1].encoding, "PCMU");
  ASSERT_EQ(s.telephone_events.size(), 1u);
  EXPECT_EQ(s.telephone_events[0].payload_type, 101);
  EXPECT_EQ(s.telephone_events[0].clock_rate, 8000u);
  EXPECT_EQ(s.direction, Direction::kRecvOnly);
  EXPECT_FALSE(s.paused);
  EXPECT_EQ(s.label, "2");
  EXPECT_EQ(s.remote_address, "10.20.30.40");
  EXPECT_EQ(s.remote_port, 16386);
  EXPECT_EQ(s.remote_rtcp_port, 16387);
  EXPECT_TRUE(s.reason.empty());
}

TEST(OfferAnswer, OracleSbcG729AnnexbEchoedWhenPreferred) {
  CodecPolicy g729_first;
  g729_first.preference = {"g729", "PCMU"};
  EXPECT_EQ(answer_for("oracle_sbc.sdp", {40000, 40002}, g729_first),
            crlf("v=0\n"
                 "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=audio 40000 RTP/AVP 18 0 101\n"
                 "a=rtpmap:18 G729/8000\n"
                 "a=fmtp:18 annexb=no\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=ptime:20\n"
                 "a=label:10001\n"
                 "a=recvonly\n"
                 "m=audio 40002 RTP/AVP 18 0 101\n"
                 "a=rtpmap:18 G729/8000\n"
                 "a=fmtp:18 annexb=no\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=ptime:20\n"
                 "a=label:10002\n"
                 "a=recvonly\n"));
}

TEST(OfferAnswer, OracleSbcDefaultPolicyOrdersPcmuBeforeG729) {
  // Default preference is PCMA, PCMU, G722, opus, G729: both offered codecs are answered, PCMU
  // (offered second) first.
  auto offer = offer_from(load("oracle_sbc.sdp"));
  auto plan = plan_ok(offer);
  ASSERT_EQ(plan.streams[0].codecs.size(), 2u);
  EXPECT_EQ(plan.streams[0].codecs[0].encoding, "PCMU");
  EXPECT_EQ(plan.streams[0].codecs[0].fmtp, "");
  EXPECT_EQ(plan.streams[0].codecs[1].encoding, "G729");
  EXPECT_EQ(plan.streams[0].codecs[1].fmtp, "annexb=no");
  EXPECT_EQ(plan.streams[1].label, "10002");
}

TEST(OfferAnswer, AudioCodesRtcpPortAndMediaConnection) {
  auto offer = offer_from(load("audiocodes.sdp"));
  auto plan = plan_ok(offer);
  EXPECT_EQ(plan.streams[0].remote_address, "10.1.1.6");
  EXPECT_EQ(plan.streams[0].remote_rtcp_port, 6011);
  ASSERT_EQ(plan.streams[1].telephone_events.size(), 1u);
  EXPECT_EQ(plan.streams[1].telephone_events[0].payload_type, 96);
  auto answer = build_answer(offer, plan, params({30000, 30002}));
  EXPECT_NE(answer.find("m=audio 30002 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n"
                        "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:20\r\n"
                        "a=label:2\r\na=recvonly\r\n"),
            std::string::npos)
      << answer;
}

TEST(OfferAnswer, AvayaSessionLevelSendonlyAndG722Preference) {
  CodecPolicy wideband;
  wideband.preference = {"G722", "PCMA", "PCMU"};
  auto answer = answer_for("avaya_sbce.sdp", {41000, 41002}, wideband);
  EXPECT_EQ(answer, crlf("v=0\n"
                         "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                         "s=-\n"
                         "c=IN IP4 203.0.113.5\n"
                         "t=0 0\n"
                         "m=audio 41000 RTP/AVP 9 0 120\n"
                         "a=rtpmap:9 G722/8000\n"
                         "a=rtpmap:0 PCMU/8000\n"
                         "a=rtpmap:120 telephone-event/8000\n"
                         "a=fmtp:120 0-16\n"
                         "a=label:1\n"
                         "a=recvonly\n"
                         "m=audio 41002 RTP/AVP 9 0 120\n"
                         "a=rtpmap:9 G722/8000\n"
                         "a=rtpmap:0 PCMU/8000\n"
                         "a=rtpmap:120 telephone-event/8000\n"
                         "a=fmtp:120 0-16\n"
                         "a=label:2\n"
                         "a=recvonly\n"));
}

TEST(OfferAnswer, AvayaDefaultPolicyOrdersPcmuBeforeG722) {
  auto offer = offer_from(load("avaya_sbce.sdp"));
  const auto codecs = plan_ok(offer).streams[0].codecs;
  ASSERT_EQ(codecs.size(), 2u);
  EXPECT_EQ(codecs[0].encoding, "PCMU");
  EXPECT_EQ(codecs[1].encoding, "G722");
}

TEST(OfferAnswer, CiscoSdpOnlyNoLabels) {
  EXPECT_EQ(answer_for("cisco_cube.sdp", {40000, 40002}),
            crlf("v=0\n"
                 "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=audio 40000 RTP/AVP 0 101 19\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=rtpmap:19 CN/8000\n"
                 "a=ptime:20\n"
                 "a=recvonly\n"
                 "m=audio 40002 RTP/AVP 0 101 19\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=rtpmap:19 CN/8000\n"
                 "a=ptime:20\n"
                 "a=recvonly\n"));
}

TEST(OfferAnswer, VideoRejectedAudioAccepted) {
  auto offer = offer_from(load("video_audio.sdp"));
  auto plan = plan_ok(offer);
  ASSERT_EQ(plan.streams.size(), 2u);
  EXPECT_FALSE(plan.streams[0].accepted);
  EXPECT_EQ(plan.streams[0].reason, "video not recorded");
  EXPECT_TRUE(plan.streams[1].accepted);
  ASSERT_EQ(plan.streams[1].codecs.size(), 1u);
  EXPECT_EQ(plan.streams[1].codecs[0].encoding, "PCMU");  // static PT 0 without a=rtpmap
  EXPECT_TRUE(plan.streams[1].telephone_events.empty());
  EXPECT_EQ(build_answer(offer, plan, params({0, 40002})),
            crlf("v=0\n"
                 "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=video 0 RTP/AVP 96\n"
                 "a=label:video1\n"
                 "m=audio 40002 RTP/AVP 0\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=label:audio1\n"
                 "a=recvonly\n"));
}

TEST(OfferAnswer, OnlyUnknownCodecsIsAnErrorListingEverything) {
  auto offer = offer_from(load("unknown_codec.sdp"));
  auto r = plan_answer(offer, CodecPolicy{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "sdp.no_recordable_codec");
  EXPECT_EQ(r.error().message, "no recordable codec offered: m=video H264/90000; m=audio G726-32/8000");
}

TEST(OfferAnswer, RejectedAudioReasonNamesOfferedCodecs) {
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 97 98\n"
                               "a=rtpmap:97 G726-32/8000\nm=audio 1002 RTP/AVP 8\n"));
  auto plan = plan_ok(offer);
  EXPECT_EQ(plan.streams[0].reason, "no recordable codec (offered: G726-32/8000 98)");
  EXPECT_TRUE(plan.streams[1].accepted);
  auto answer = build_answer(offer, plan, params({5000, 5002}));
  EXPECT_NE(answer.find("m=audio 0 RTP/AVP 97\r\nm=audio 5002 RTP/AVP 8\r\n"), std::string::npos)
      << answer;
}

TEST(OfferAnswer, OpusFirstWhenPreferredWithFmtpEchoAndBothTelephoneEvents) {
  CodecPolicy opus_first;
  opus_first.preference = {"OPUS", "G722"};
  EXPECT_EQ(answer_for("opus_g722.sdp", {40000}, opus_first),
            crlf("v=0\n"
                 "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=audio 40000 RTP/AVPF 111 9 126 101\n"
                 "a=rtpmap:111 opus/48000/2\n"
                 "a=fmtp:111 minptime=10;useinbandfec=1\n"
                 "a=rtpmap:9 G722/8000\n"
                 "a=rtpmap:126 telephone-event/48000\n"
                 "a=fmtp:126 0-16\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=label:1\n"
                 "a=rtcp-mux\n"
                 "a=recvonly\n"));
}

TEST(OfferAnswer, G722AndOpusBothAnsweredWithTheirTelephoneEvents) {
  auto offer = offer_from(load("opus_g722.sdp"));
  auto plan = plan_ok(offer);
  const auto& s = plan.streams[0];
  // G722 first, opus after it; each codec's telephone-event (RFC 4733 §7.1.1: same clock).
  ASSERT_EQ(s.codecs.size(), 2u);
  EXPECT_EQ(s.codecs[0].encoding, "G722");
  EXPECT_EQ(s.codecs[0].payload_type, 9);
  EXPECT_EQ(s.codecs[1].encoding, "opus");
  EXPECT_EQ(s.codecs[1].payload_type, 111);
  ASSERT_EQ(s.telephone_events.size(), 2u);
  EXPECT_EQ(s.telephone_events[0].payload_type, 126);
  EXPECT_EQ(s.telephone_events[0].clock_rate, 48000u);
  EXPECT_EQ(s.telephone_events[1].payload_type, 101);
  EXPECT_EQ(s.telephone_events[1].clock_rate, 8000u);
  EXPECT_TRUE(s.rtcp_mux);
  EXPECT_EQ(s.remote_rtcp_port, 44000);
}

TEST(OfferAnswer, EveryOfferedRecordableCodecAnsweredInPreferenceOrder) {
  // Offer order G729, PCMU, opus, PCMA (and an unknown codec); policy PCMU, PCMA, opus: all three
  // listed codecs answered in policy order, G729 (not in the policy) and G726 left out.
  CodecPolicy p;
  p.preference = {"PCMU", "PCMA", "opus"};
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 18 0 96 8 97 101 13\n"
                               "a=rtpmap:96 opus/48000/2\na=rtpmap:97 G726-32/8000\n"
                               "a=rtpmap:101 telephone-event/8000\na=sendonly\n"));
  auto plan = plan_ok(offer, p);
  std::vector<int> pts;
  for (const auto& c : plan.streams[0].codecs) pts.push_back(c.payload_type);
  EXPECT_EQ(pts, (std::vector<int>{0, 8, 96}));
  auto answer = build_answer(offer, plan, params({6000}));
  EXPECT_NE(answer.find("m=audio 6000 RTP/AVP 0 8 96 101 13\r\n"
                        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 opus/48000/2\r\n"
                        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtpmap:13 CN/8000\r\n"
                        "a=recvonly\r\n"),
            std::string::npos)
      << answer;
}

TEST(OfferAnswer, SamePayloadTypeOfferedTwiceAnsweredOnce) {
  // A (broken) offer listing PT 8 twice: one rtpmap in the answer.
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 8 8 0\n"));
  auto plan = plan_ok(offer);
  ASSERT_EQ(plan.streams[0].codecs.size(), 2u);
  EXPECT_EQ(plan.streams[0].codecs[0].payload_type, 8);
  EXPECT_EQ(plan.streams[0].codecs[1].payload_type, 0);
}

TEST(OfferAnswer, TelephoneEventAtOtherClockIsNotAccepted) {
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 8 126\n"
                               "a=rtpmap:126 telephone-event/48000\n"));
  auto plan = plan_ok(offer);
  EXPECT_TRUE(plan.streams[0].telephone_events.empty());
}

TEST(OfferAnswer, OpusWithoutChannelsToleratedAndAnsweredAsStereo) {
  CodecPolicy p;
  p.preference = {"opus"};
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 96\n"
                               "a=rtpmap:96 OPUS/48000\na=sendonly\n"));
  auto plan = plan_ok(offer, p);
  auto answer = build_answer(offer, plan, params({6000}));
  EXPECT_NE(answer.find("a=rtpmap:96 OPUS/48000/2\r\n"), std::string::npos) << answer;
}

TEST(OfferAnswer, G729AnnexbYesEchoedAndAbsentOmitted) {
  CodecPolicy p;
  p.preference = {"G729"};
  auto yes = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 18\n"
                             "a=fmtp:18 annexb=YES\n"));
  EXPECT_EQ(plan_ok(yes, p).streams[0].codecs[0].fmtp, "annexb=yes");
  auto absent = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 18\n"));
  auto plan = plan_ok(absent, p);
  EXPECT_EQ(plan.streams[0].codecs[0].fmtp, "");
  EXPECT_EQ(build_answer(absent, plan, params({7000})).find("a=fmtp"), std::string::npos);
}

TEST(OfferAnswer, WrongClockOrChannelsNotRecordable) {
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 96 97 98\n"
                               "a=rtpmap:96 PCMA/16000\na=rtpmap:97 PCMU/8000/2\n"
                               "a=rtpmap:98 opus/16000\n"));
  auto r = plan_answer(offer, CodecPolicy{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "no recordable codec offered: m=audio PCMA/16000 PCMU/8000/2 opus/16000");
}

TEST(OfferAnswer, InactiveStreamAnsweredInactiveAndPortZeroRejected) {
  auto offer = offer_from(load("paused_removed.sdp"));
  auto plan = plan_ok(offer);
  ASSERT_EQ(plan.streams.size(), 3u);
  EXPECT_TRUE(plan.streams[0].accepted);
  EXPECT_TRUE(plan.streams[0].paused);
  EXPECT_EQ(plan.streams[0].direction, Direction::kInactive);
  EXPECT_FALSE(plan.streams[1].accepted);
  EXPECT_EQ(plan.streams[1].reason, "stream removed by offerer (port 0)");
  EXPECT_TRUE(plan.streams[2].accepted);
  EXPECT_EQ(build_answer(offer, plan, params({40000, 40002, 40004})),
            crlf("v=0\n"
                 "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=audio 40000 RTP/AVP 8 0\n"
                 "a=rtpmap:8 PCMA/8000\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=label:1\n"
                 "a=inactive\n"
                 "m=audio 0 RTP/AVP 8\n"
                 "a=label:2\n"
                 "m=audio 40004 RTP/AVP 8 0\n"
                 "a=rtpmap:8 PCMA/8000\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=label:3\n"
                 "a=recvonly\n"));
}

TEST(OfferAnswer, RecvonlyOfferIsPausedAndAnsweredInactive) {
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 0\na=recvonly\n"));
  EXPECT_TRUE(is_paused(offer.media[0]));
  auto plan = plan_ok(offer);
  EXPECT_TRUE(plan.streams[0].paused);
  EXPECT_EQ(plan.streams[0].direction, Direction::kInactive);
}

TEST(OfferAnswer, SendrecvOfferAnsweredRecvonly) {
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/AVP 0\n"));
  EXPECT_FALSE(is_paused(offer.media[0]));
  auto plan = plan_ok(offer);
  EXPECT_EQ(plan.streams[0].direction, Direction::kRecvOnly);
}

TEST(OfferAnswer, ReinvitePauseThenResume) {
  // RFC 7866 §7.1.1: the SRC pauses with a=inactive and resumes with a=sendonly in re-INVITEs.
  auto paused = offer_from(crlf("v=0\no=src 1 2 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\n"
                                "m=audio 1000 RTP/AVP 8\na=inactive\na=label:1\n"));
  auto plan = plan_ok(paused);
  AnswerParams p = params({40000});
  p.session_version = 2;
  auto answer = build_answer(paused, plan, p);
  EXPECT_NE(answer.find("o=siprec-gateway 42 2 IN IP4"), std::string::npos);
  EXPECT_NE(answer.find("a=inactive\r\n"), std::string::npos);
  auto resumed = offer_from(crlf("v=0\no=src 1 3 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\n"
                                 "m=audio 1004 RTP/AVP 8\na=sendonly\na=label:1\n"
                                 "m=audio 1006 RTP/AVP 8\na=sendonly\na=label:2\n"));
  auto plan2 = plan_ok(resumed);
  EXPECT_EQ(plan2.accepted_count(), 2u);
  EXPECT_FALSE(plan2.streams[0].paused);
  EXPECT_EQ(plan2.streams[0].remote_port, 1004);
  EXPECT_EQ(plan2.streams[1].label, "2");
}

TEST(OfferAnswer, HoldByZeroAddressIsAPauseEvenWithoutDirection) {
  // RFC 3264 §8.4 / RFC 2543 hold, as BroadWorks and Metaswitch send it: c=0.0.0.0, no direction
  // attribute (or a=sendonly). Not "no media": the stream is paused, answered inactive.
  for (const char* dir : {"", "a=sendonly\n"}) {
    auto held = offer_from(crlf(std::string("v=0\no=src 1 2 IN IP4 0.0.0.0\nc=IN IP4 0.0.0.0\n"
                                            "m=audio 1000 RTP/AVP 8\n") + dir + "a=label:1\n"));
    EXPECT_TRUE(is_held(held.media[0])) << dir;
    EXPECT_TRUE(is_paused(held.media[0])) << dir;
    auto plan = plan_ok(held);
    ASSERT_EQ(plan.accepted_count(), 1u) << dir;
    EXPECT_TRUE(plan.streams[0].held);
    EXPECT_TRUE(plan.streams[0].paused);
    EXPECT_EQ(plan.streams[0].direction, Direction::kInactive);
    EXPECT_NE(build_answer(held, plan, params({40000})).find("a=inactive\r\n"), std::string::npos);
  }
  // A media-level real address under a session-level 0.0.0.0 is not held.
  auto mixed = offer_from(crlf("v=0\nc=IN IP4 0.0.0.0\nm=audio 1000 RTP/AVP 8\nc=IN IP4 1.2.3.4\n"));
  EXPECT_FALSE(is_held(mixed.media[0]));
  EXPECT_FALSE(is_paused(mixed.media[0]));
}

TEST(OfferAnswer, Ipv6AnswerAndLfOffer) {
  auto offer = offer_from(load("ipv6_lf.sdp"));
  auto plan = plan_ok(offer);
  EXPECT_EQ(plan.streams[0].remote_address, "2001:db8::10");
  auto answer = build_answer(offer, plan, params({40000, 40002}, "[2001:db8::5]"));
  EXPECT_EQ(answer, crlf("v=0\n"
                         "o=siprec-gateway 42 1 IN IP6 2001:db8::5\n"
                         "s=-\n"
                         "c=IN IP6 2001:db8::5\n"
                         "t=0 0\n"
                         "m=audio 40000 RTP/AVP 8 101\n"
                         "a=rtpmap:8 PCMA/8000\n"
                         "a=rtpmap:101 telephone-event/8000\n"
                         "a=fmtp:101 0-16\n"
                         "a=label:a\n"
                         "a=recvonly\n"
                         "m=audio 40002 RTP/AVP 8 101\n"
                         "a=rtpmap:8 PCMA/8000\n"
                         "a=rtpmap:101 telephone-event/8000\n"
                         "a=fmtp:101 0-16\n"
                         "a=label:b\n"
                         "a=recvonly\n"));
}

TEST(OfferAnswer, NoMediaIsAnError) {
  auto offer = offer_from("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n");
  auto r = plan_answer(offer, CodecPolicy{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "sdp.no_media");
}

TEST(OfferAnswer, AllStreamsRemovedIsNoRecordableCodec) {
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 0 RTP/AVP 0\n"));
  auto r = plan_answer(offer, CodecPolicy{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "sdp.no_recordable_codec");
  EXPECT_EQ(r.error().message,
            "no recordable codec offered: m=audio PCMU/8000 [stream removed by offerer (port 0)]");
}

TEST(OfferAnswer, SrtpRejectedWhenUnsupported) {
  auto offer = offer_from(load("srtp_sdes.sdp"));
  auto r = plan_answer(offer, CodecPolicy{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "sdp.srtp_policy");
  EXPECT_EQ(r.error().message,
            "SRTP disabled (media.srtp: off): m=audio PCMU/8000 telephone-event/8000 "
            "[RTP/SAVP refused: media.srtp is off]");
}

TEST(OfferAnswer, SrtpAcceptedWithSdesWhenSupported) {
  CodecPolicy p;
  p.srtp = CodecPolicy::Srtp::kAllow;
  auto offer = offer_from(load("srtp_sdes.sdp"));
  auto plan = plan_ok(offer, p);
  ASSERT_TRUE(plan.streams[0].srtp);
  EXPECT_EQ(plan.streams[0].srtp->suite, "AES_CM_128_HMAC_SHA1_80");
  AnswerParams ap = params({40000});
  ap.srtp_key_params = {"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"};
  EXPECT_EQ(build_answer(offer, plan, ap),
            crlf("v=0\n"
                 "o=siprec-gateway 42 1 IN IP4 203.0.113.5\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=audio 40000 RTP/SAVP 0 101\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtpmap:101 telephone-event/8000\n"
                 "a=fmtp:101 0-16\n"
                 "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\n"
                 "a=label:1\n"
                 "a=rtcp-mux\n"
                 "a=recvonly\n"));
  // Without our key the stream cannot be answered: written as rejected rather than half-formed.
  EXPECT_NE(build_answer(offer, plan, params({40000})).find("m=audio 0 RTP/SAVP 0\r\n"),
            std::string::npos);
}

TEST(OfferAnswer, DtlsSrtpAlwaysRejected) {
  CodecPolicy p;
  p.srtp = CodecPolicy::Srtp::kAllow;
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 UDP/TLS/RTP/SAVPF 0\n"
                               "a=fingerprint:sha-256 AB:CD\nm=audio 1002 RTP/AVP 0\n"));
  auto plan = plan_ok(offer, p);
  EXPECT_EQ(plan.streams[0].reason, "DTLS-SRTP not supported");
  EXPECT_TRUE(plan.streams[1].accepted);
}

TEST(OfferAnswer, UnsupportedCryptoSuiteRejected) {
  CodecPolicy p;
  p.srtp = CodecPolicy::Srtp::kAllow;
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=audio 1000 RTP/SAVP 0\n"
                               "a=crypto:1 F8_128_HMAC_SHA1_80 inline:abc\nm=audio 1002 RTP/AVP 0\n"));
  EXPECT_EQ(plan_ok(offer, p).streams[0].reason,
            "no usable a=crypto line (crypto suite 'F8_128_HMAC_SHA1_80' not supported)");
}

TEST(OfferAnswer, MissingPortForAcceptedStreamWrittenAsRejected) {
  auto offer = offer_from(load("genesys_edge.sdp"));
  auto plan = plan_ok(offer);
  auto answer = build_answer(offer, plan, params({40000}));  // one port for two streams
  EXPECT_NE(answer.find("m=audio 0 RTP/AVP 0\r\na=label:2\r\n"), std::string::npos) << answer;
}

TEST(OfferAnswer, PeerTextCannotInjectLines) {
  auto offer = offer_from("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1000 RTP/AVP 0\r\na=label:x\ry=1\r\n");
  auto plan = plan_ok(offer);
  auto answer = build_answer(offer, plan, params({40000}));
  EXPECT_NE(answer.find("a=label:xy=1\r\n"), std::string::npos) << answer;
}

TEST(OfferAnswer, ErrorMessageBoundedAndPrintable) {
  std::string sdp = "v=0\r\nc=IN IP4 1.2.3.4\r\n";
  for (int i = 0; i < 40; ++i)
    sdp += "m=audio 1000 RTP/AVP 96\r\na=rtpmap:96 X\"\x01YZ-very-long-codec-name/8000\r\n";
  auto offer = offer_from(sdp);
  auto r = plan_answer(offer, CodecPolicy{});
  ASSERT_FALSE(r.ok());
  EXPECT_LE(r.error().message.size(), 400u);
  for (char c : r.error().message) EXPECT_TRUE(c >= 0x20 && c < 0x7f && c != '"') << int(c);
}

TEST(OfferAnswer, ApplicationStreamRejected) {
  auto offer = offer_from(crlf("v=0\nc=IN IP4 1.2.3.4\nm=application 9 UDP/BFCP *\n"
                               "m=audio 1002 RTP/AVP 8\n"));
  auto plan = plan_ok(offer);
  EXPECT_EQ(plan.streams[0].reason, "application not recorded");
  auto answer = build_answer(offer, plan, params({0, 5000}));
  EXPECT_NE(answer.find("m=application 0 UDP/BFCP *\r\n"), std::string::npos);
}

TEST(OfferAnswer, DelayedOfferListsEveryRecordableCodecRecvonlyPerLabel) {
  // Our offer in the 2xx to an INVITE without SDP: one recvonly audio m= line per label, every
  // codec of the policy in its order (static PTs where RFC 3551 has one) and telephone-event.
  CodecPolicy policy;
  auto tmpl = delayed_offer_template(policy, {"cust", "agt"});
  ASSERT_TRUE(tmpl) << tmpl.error().message;
  auto plan = plan_ok(*tmpl);
  ASSERT_EQ(plan.accepted_count(), 2u);
  std::string sdp = build_answer(*tmpl, plan, params({40000, 40002}));
  EXPECT_NE(sdp.find("m=audio 40000 RTP/AVP 8 0 9 111 18 101 102\r\n"), std::string::npos) << sdp;
  EXPECT_NE(sdp.find("a=rtpmap:111 opus/48000/2\r\n"), std::string::npos) << sdp;
  EXPECT_NE(sdp.find("a=rtpmap:102 telephone-event/48000\r\n"), std::string::npos) << sdp;
  EXPECT_NE(sdp.find("a=label:cust\r\na=recvonly\r\nm=audio 40002"), std::string::npos) << sdp;
  EXPECT_NE(sdp.find("a=label:agt\r\na=recvonly\r\n"), std::string::npos) << sdp;
  // A narrower policy offers only its codecs, and no 48 kHz events without opus.
  policy.preference = {"PCMU"};
  auto narrow = delayed_offer_template(policy, {"1"});
  ASSERT_TRUE(narrow);
  std::string one = build_answer(*narrow, plan_ok(*narrow), params({40000}));
  EXPECT_NE(one.find("m=audio 40000 RTP/AVP 0 101\r\n"), std::string::npos) << one;
}

}  // namespace
}  // namespace sgw::siprec
