// Tests for parse_media_type, parse_multipart and split_recording_body (src/siprec/multipart.h).
#include "siprec/multipart.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace sgw::siprec {
namespace {

using test::crlf;

const std::string kSdp = crlf("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n"
                              "m=audio 16384 RTP/AVP 0\na=sendonly\na=label:1\n");
const std::string kXml = crlf(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">\n"
    "  <datamode>complete</datamode>\n"
    "</recording>");

// Builds a multipart body the way an SRC does (RFC 7866 §9.1 example).
std::string sdp_then_metadata(const std::string& boundary) {
  return "--" + boundary + "\r\nContent-Type: application/sdp\r\n\r\n" + kSdp + "\r\n--" + boundary +
         "\r\nContent-Type: application/rs-metadata+xml\r\n"
         "Content-Disposition: recording-session\r\n\r\n" +
         kXml + "\r\n--" + boundary + "--\r\n";
}

std::string error_code_of(std::string_view ct, std::string_view body) {
  auto r = split_recording_body(ct, body);
  return r.ok() ? "ok" : r.error().code;
}

TEST(MediaType, ParsesTypeSubtypeAndParameters) {
  auto mt = parse_media_type(" Multipart/Mixed ; charset=utf-8;BOUNDARY = \"a;b\\\"c\" ; x=1");
  ASSERT_TRUE(mt.ok());
  EXPECT_EQ(mt->essence(), "multipart/mixed");
  ASSERT_NE(mt->param("boundary"), nullptr);
  EXPECT_EQ(*mt->param("Boundary"), "a;b\"c");
  EXPECT_EQ(*mt->param("x"), "1");
  EXPECT_EQ(*mt->param("charset"), "utf-8");
  EXPECT_EQ(mt->param("nope"), nullptr);
}

TEST(MediaType, ToleratesEmptyAndValuelessParameters) {
  auto mt = parse_media_type("application/sdp;;foo; ;bar=2;");
  ASSERT_TRUE(mt.ok());
  EXPECT_EQ(mt->essence(), "application/sdp");
  ASSERT_EQ(mt->params.size(), 1u);
  EXPECT_EQ(mt->params[0].first, "bar");
}

TEST(MediaType, Malformed) {
  EXPECT_EQ(parse_media_type("sdp").error().code, "media_type.malformed");
  EXPECT_EQ(parse_media_type("/sdp").error().code, "media_type.malformed");
  EXPECT_EQ(parse_media_type("application/").error().code, "media_type.malformed");
  EXPECT_EQ(parse_media_type("").error().code, "media_type.malformed");
}

TEST(Multipart, SdpFirstThenMetadata) {
  std::vector<std::string> warnings;
  auto parts = parse_multipart("multipart/mixed;boundary=foobar", sdp_then_metadata("foobar"),
                               &warnings);
  ASSERT_TRUE(parts.ok()) << parts.error().message;
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].media_type, "application/sdp");
  EXPECT_EQ((*parts)[0].body, kSdp);  // the CRLF before the delimiter is not part of the body
  EXPECT_EQ((*parts)[1].media_type, "application/rs-metadata+xml");
  EXPECT_EQ((*parts)[1].content_disposition, "recording-session");
  EXPECT_EQ((*parts)[1].body, kXml);
  EXPECT_TRUE(warnings.empty());
}

TEST(Multipart, PartHeadersCaseInsensitiveAndKept) {
  std::string body = crlf(
      "--b1\ncontent-type: Application/SDP\nCONTENT-ID: <sdp@x>\ncontent-length: 3\n"
      "Content-Transfer-Encoding: binary\nX-Vendor: yes\n\nabc\n--b1--\n");
  auto parts = parse_multipart("multipart/mixed; boundary=b1", body);
  ASSERT_TRUE(parts.ok());
  const BodyPart& p = (*parts)[0];
  EXPECT_EQ(p.content_type, "Application/SDP");
  EXPECT_EQ(p.media_type, "application/sdp");
  EXPECT_EQ(p.content_id, "<sdp@x>");
  EXPECT_EQ(p.content_length, 3u);
  EXPECT_EQ(p.content_transfer_encoding, "binary");
  ASSERT_EQ(p.headers.size(), 5u);
  EXPECT_EQ(p.headers[4].first, "X-Vendor");
  ASSERT_NE(p.header("x-vendor"), nullptr);
  EXPECT_EQ(*p.header("x-vendor"), "yes");
  EXPECT_EQ(p.body, "abc");
}

TEST(Multipart, FoldedHeaderIsUnfolded) {
  std::string body = crlf("--b\nContent-Type: application/sdp;\n  foo=bar\n\nx\n--b--\n");
  auto parts = parse_multipart("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0].content_type, "application/sdp; foo=bar");
}

TEST(Multipart, PartWithoutContentTypeIsTextPlain) {
  auto parts = parse_multipart("multipart/mixed;boundary=b", crlf("--b\n\nhello\n--b--\n"));
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0].content_type, "text/plain");
  EXPECT_EQ((*parts)[0].media_type, "text/plain");
  EXPECT_TRUE((*parts)[0].headers.empty());
  EXPECT_EQ((*parts)[0].body, "hello");
}

TEST(Multipart, BodyBytesExactIncludingInnerBlankLinesAndTrailingCrlf) {
  // The last CRLF before the delimiter belongs to it; any earlier one is content.
  std::string body = "--b\r\nContent-Type: text/x\r\n\r\n\r\nline1\r\n\r\n\r\n--b--";
  auto parts = parse_multipart("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0].body, "\r\nline1\r\n\r\n");
}

TEST(Multipart, BoundaryPrefixInsideContentIsNotADelimiter) {
  std::string body = crlf("--abc\nContent-Type: text/x\n\n--abcdef\nx --abc\n--abc--\n");
  auto parts = parse_multipart("multipart/mixed;boundary=abc", body);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].body, "--abcdef\r\nx --abc");
}

TEST(Multipart, TransportPaddingAfterBoundary) {
  std::string body = "--b \t\r\nContent-Type: text/x\r\n\r\nA\r\n--b  \r\n\r\nB\r\n--b-- \t\r\n";
  auto parts = parse_multipart("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].body, "A");
  EXPECT_EQ((*parts)[1].body, "B");
}

TEST(Multipart, EmptyPart) {
  auto parts = parse_multipart("multipart/mixed;boundary=b", "--b\r\n--b\r\n\r\nx\r\n--b--");
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].body, "");
  EXPECT_EQ((*parts)[1].body, "x");
}

TEST(Multipart, PartWithNeitherHeadersNorBlankLineTakenAsBody) {
  std::vector<std::string> warnings;
  auto parts = parse_multipart("multipart/mixed;boundary=b", "--b\r\nv=0\r\nm=x\r\n--b--", &warnings);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0].body, "v=0\r\nm=x");
  EXPECT_EQ(warnings.size(), 1u);
}

TEST(Multipart, Errors) {
  auto code = [](std::string_view ct, std::string_view body) {
    auto r = parse_multipart(ct, body);
    return r.ok() ? std::string("ok") : r.error().code;
  };
  EXPECT_EQ(code("application/sdp", "x"), "multipart.not_multipart");
  EXPECT_EQ(code("multipart/mixed", "--b\r\n\r\nx\r\n--b--"), "multipart.no_boundary");
  EXPECT_EQ(code("multipart/mixed; boundary=\"\"", "--\r\n"), "multipart.no_boundary");
  EXPECT_EQ(code("multipart/mixed; boundary=" + std::string(201, 'x'), "x"), "multipart.no_boundary");
  EXPECT_EQ(code("multipart/mixed; boundary=b", "no delimiters here"), "multipart.no_parts");
  EXPECT_EQ(code("multipart/mixed; boundary=b", ""), "multipart.no_parts");
  EXPECT_EQ(code("multipart/mixed; boundary=b", "--b--\r\n"), "multipart.no_parts");
  EXPECT_EQ(code("multipart/mixed; boundary=b", "--b\r\n"), "multipart.no_parts");
  EXPECT_EQ(code("multipart/mixed; boundary=b", "--b\r\nContent-Type: application/sdp\r\nContent-Le"),
            "multipart.unterminated");
  EXPECT_EQ(code("multipart/mixed; boundary=b", std::string(kMaxMultipartBytes + 1, 'x')),
            "multipart.too_large");
}

TEST(Multipart, AtMostSixteenParts) {
  auto body = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += "--b\r\n\r\npart\r\n";
    return s + "--b--\r\n";
  };
  auto ok = parse_multipart("multipart/mixed;boundary=b", body(16));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 16u);
  auto bad = parse_multipart("multipart/mixed;boundary=b", body(17));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "multipart.too_many_parts");
}

TEST(SplitRecordingBody, MetadataFirstThenSdp) {
  std::string body = "--OSS-unique-boundary-42\r\nContent-Type: application/rs-metadata+xml\r\n"
                     "Content-Disposition: recording-session\r\n\r\n" +
                     kXml + "\r\n--OSS-unique-boundary-42\r\nContent-Type: application/sdp\r\n\r\n" +
                     kSdp + "\r\n--OSS-unique-boundary-42--\r\n";
  auto r = split_recording_body("multipart/mixed;boundary=OSS-unique-boundary-42", body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, kSdp);
  ASSERT_EQ(r->metadata_docs.size(), 1u);
  EXPECT_EQ(r->metadata_docs[0], kXml);
  EXPECT_TRUE(r->warnings.empty());
}

TEST(SplitRecordingBody, SdpFirstQuotedBoundary) {
  auto r = split_recording_body("multipart/mixed;boundary=\"unique boundary:1\"",
                                sdp_then_metadata("unique boundary:1"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, kSdp);
  EXPECT_EQ(r->metadata_docs.at(0), kXml);
}

TEST(SplitRecordingBody, BoundaryAfterOtherParamsWithSpacesAndCase) {
  auto r = split_recording_body("Multipart/MIXED ; charset=UTF-8 ; Boundary = \"xYz\"",
                                sdp_then_metadata("xYz"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, kSdp);
}

TEST(SplitRecordingBody, MissingCloseDelimiterAcceptedWithWarning) {
  // Some SBCs end the body after the last part without the final "--boundary--".
  std::string body = "--b\r\nContent-Type: application/sdp\r\n\r\n" + kSdp +
                     "\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n" + kXml + "\r\n";
  auto r = split_recording_body("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, kSdp);
  ASSERT_EQ(r->metadata_docs.size(), 1u);
  EXPECT_EQ(r->metadata_docs[0], kXml + "\r\n");  // no delimiter, so the trailing CRLF stays
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("missing close delimiter"), std::string::npos);
}

TEST(SplitRecordingBody, TrailingOpenDelimiterWithoutCloseAccepted) {
  std::string body = "--b\r\nContent-Type: application/sdp\r\n\r\n" + kSdp + "\r\n--b\r\n";
  auto r = split_recording_body("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, kSdp);
  EXPECT_EQ(r->warnings.size(), 1u);
}

TEST(SplitRecordingBody, PreambleAndEpilogueIgnored) {
  std::string body = "This is a multi-part message in MIME format.\r\n\r\n" +
                     sdp_then_metadata("b") + "epilogue text\r\n--b\r\nnot a part\r\n";
  auto r = split_recording_body("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, kSdp);
  EXPECT_EQ(r->metadata_docs.size(), 1u);
}

TEST(SplitRecordingBody, LfOnlyLineEndings) {
  std::string sdp_lf = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nm=audio 1 RTP/AVP 0\n";
  std::string body = "--lf\nContent-Type: application/sdp\n\n" + sdp_lf +
                     "\n--lf\nContent-Type: application/rs-metadata+xml\n\n<recording/>\n--lf--\n";
  auto r = split_recording_body("multipart/mixed; boundary=lf", body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, sdp_lf);
  EXPECT_EQ(r->metadata_docs.at(0), "<recording/>");
}

TEST(SplitRecordingBody, ThreePartsOneUnknownIgnoredWithWarning) {
  std::string body = "--b\r\nContent-Type: application/sdp\r\n\r\n" + kSdp +
                     "\r\n--b\r\nContent-Type: application/vnd.vendor-info+json\r\n\r\n{}\r\n"
                     "--b\r\nContent-Type: application/rs-metadata\r\n\r\n" +
                     kXml + "\r\n--b--\r\n";
  auto r = split_recording_body("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sdp, kSdp);
  ASSERT_EQ(r->metadata_docs.size(), 1u);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0], "part 2: ignored part of type 'application/vnd.vendor-info+json'");
}

TEST(SplitRecordingBody, TwoMetadataPartsKeptInOrder) {
  std::string body = "--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\nA\r\n"
                     "--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\nB\r\n--b--";
  auto r = split_recording_body("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->sdp);
  EXPECT_EQ(r->metadata_docs, (std::vector<std::string>{"A", "B"}));
}

TEST(SplitRecordingBody, SdpAlone) {
  auto r = split_recording_body("Application/SDP; charset=utf-8", kSdp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sdp, kSdp);
  EXPECT_TRUE(r->metadata_docs.empty());
}

TEST(SplitRecordingBody, MetadataAloneInReinvite) {
  auto r = split_recording_body("application/rs-metadata+xml", kXml);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->sdp);
  EXPECT_EQ(r->metadata_docs, std::vector<std::string>{kXml});
}

TEST(SplitRecordingBody, EmptyBodyWithoutType) {
  auto r = split_recording_body("", "");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->sdp);
  EXPECT_TRUE(r->metadata_docs.empty());
}

TEST(SplitRecordingBody, Errors) {
  EXPECT_EQ(error_code_of("text/html", "<html/>"), "body.unsupported_type");
  EXPECT_EQ(error_code_of("multipart/alternative;boundary=b", "--b\r\n\r\nx\r\n--b--"),
            "body.unsupported_type");
  EXPECT_EQ(error_code_of("garbage", "x"), "body.unsupported_type");
  EXPECT_EQ(error_code_of("", "v=0"), "body.unsupported_type");
  EXPECT_EQ(error_code_of("multipart/mixed", "x"), "multipart.no_boundary");
  std::string two_sdp = "--b\r\nContent-Type: application/sdp\r\n\r\n" + kSdp +
                        "\r\n--b\r\nContent-Type: application/sdp\r\n\r\n" + kSdp + "\r\n--b--";
  EXPECT_EQ(error_code_of("multipart/mixed;boundary=b", two_sdp), "body.multiple_sdp");
}

TEST(SplitRecordingBody, NonIdentityTransferEncodingWarns) {
  std::string body = "--b\r\nContent-Type: application/rs-metadata+xml\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\nPHJlY29yZGluZy8+\r\n--b--";
  auto r = split_recording_body("multipart/mixed;boundary=b", body);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("base64"), std::string::npos);
}

}  // namespace
}  // namespace sgw::siprec
