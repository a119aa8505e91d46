#include "sip/tls_via_rewriter.h"

#include <gtest/gtest.h>

#include <string>

namespace sgw::sip::detail {
namespace {

using Dir = TlsViaRewriter::Direction;

const std::string kInvite =
    "INVITE sips:srs@192.0.2.1:5061 SIP/2.0\r\n"
    "Via: SIP/2.0/TLS 192.0.2.9:40000;branch=z9hG4bK1\r\n"
    "Via: SIP/2.0/TLS 192.0.2.8:5061;branch=z9hG4bK0\r\n"
    "Content-Length: 5\r\n\r\nv=0\r\n";

std::string feed_all(TlsViaRewriter& r, const std::string& in, std::size_t chunk) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += chunk) r.feed(std::string_view(in).substr(i, chunk), out);
  return out;
}

TEST(TlsViaRewriter, RequestToSofiaGetsTcpInTheTopViaOnly) {
  TlsViaRewriter r(Dir::kToSofia);
  std::string out = feed_all(r, kInvite, kInvite.size());
  std::string expected = kInvite;
  expected.replace(expected.find("SIP/2.0/TLS"), 11, "SIP/2.0/TCP");
  EXPECT_EQ(out, expected);
  EXPECT_NE(out.find("Via: SIP/2.0/TLS 192.0.2.8"), std::string::npos);  // second Via untouched
  EXPECT_EQ(r.pending(), 0u);
}

TEST(TlsViaRewriter, ByteByByteAndPipelinedWithKeepalives) {
  TlsViaRewriter r(Dir::kToSofia);
  std::string in = "\r\n\r\n" + kInvite + "\r\n" + kInvite;
  std::string out = feed_all(r, in, 1);
  EXPECT_EQ(out.size(), in.size());
  EXPECT_EQ(out.find("SIP/2.0/TLS 192.0.2.9"), std::string::npos);
  EXPECT_EQ(r.pending(), 0u);
}

TEST(TlsViaRewriter, IncompleteMessageIsHeldBack) {
  TlsViaRewriter r(Dir::kToSofia);
  std::string out;
  r.feed(std::string_view(kInvite).substr(0, kInvite.size() - 2), out);
  EXPECT_TRUE(out.empty());
  r.feed(std::string_view(kInvite).substr(kInvite.size() - 2), out);
  EXPECT_EQ(out.size(), kInvite.size());
}

TEST(TlsViaRewriter, CompactFormsAndCase) {
  TlsViaRewriter r(Dir::kToSofia);
  std::string in = "OPTIONS sips:a@b SIP/2.0\r\nv:  sip/2.0/tls 192.0.2.9;branch=z9hG4bK2\r\nl: 0\r\n\r\n";
  std::string out = feed_all(r, in, 7);
  EXPECT_NE(out.find("v:  SIP/2.0/TCP 192.0.2.9"), std::string::npos) << out;
}

TEST(TlsViaRewriter, ResponsesToThePeerGetTlsBack) {
  TlsViaRewriter r(Dir::kToPeer);
  std::string resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 192.0.2.9:40000;branch=z9hG4bK1;received=127.0.0.1\r\n"
                     "Content-Length: 0\r\n\r\n";
  std::string out = feed_all(r, resp, 3);
  EXPECT_NE(out.find("Via: SIP/2.0/TLS 192.0.2.9"), std::string::npos) << out;
  // A request sofia sends (BYE) keeps its own Via.
  std::string bye = "BYE sips:src@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1234;branch=z9hG4bK9\r\n"
                    "Content-Length: 0\r\n\r\n";
  EXPECT_EQ(feed_all(r, bye, bye.size()), bye);
  // Requests to sofia are not touched by the peer-side rewriter, responses by the sofia side.
  TlsViaRewriter in(Dir::kToSofia);
  EXPECT_EQ(feed_all(in, resp, resp.size()), resp);
}

TEST(TlsViaRewriter, UnframeableInputPassesThroughUnchanged) {
  TlsViaRewriter r(Dir::kToSofia);
  std::string bad = "INVITE sips:a@b SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nContent-Length: x\r\n\r\n";
  std::string out = feed_all(r, bad + kInvite, 5);
  EXPECT_EQ(out, bad + kInvite);  // from then on the connection is relayed as it is
  TlsViaRewriter big(Dir::kToSofia);
  std::string junk(TlsViaRewriter::kMaxHeaderBytes + 10, 'a');
  EXPECT_EQ(feed_all(big, junk, 4096), junk);
  EXPECT_EQ(big.pending(), 0u);
}

}  // namespace
}  // namespace sgw::sip::detail
