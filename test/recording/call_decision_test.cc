#include "recording/call_decision.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sgw::recording {
namespace {

using ::testing::HasSubstr;

TEST(HookAnswer, EmptyObjectRecordsWithoutOverrides) {
  auto d = parse_hook_answer("{}");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->action, "record");
  EXPECT_EQ(d->sip_code, 0);
  EXPECT_FALSE(d->format);
  EXPECT_TRUE(d->tags.empty());
}

TEST(HookAnswer, EveryFieldRoundTrips) {
  auto d = parse_hook_answer(R"({"action":"record","format":"flac","channel_layout":"mono-files",
      "retention_days":365,"retention_mode":"COMPLIANCE","tags":{"team":"sales"},"key_prefix":"acme/eu-1",
      "stream":{"url":"wss://ai.example/x","protocol":"plain","organization_id":"org-1"}})");
  ASSERT_TRUE(d.ok()) << d.error().message;
  d->source = "hook";
  d->elapsed_ms = 7;
  auto back = decode_decision(encode_decision(*d));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(encode_decision(*back), encode_decision(*d));
  EXPECT_EQ(back->format, "flac");
  EXPECT_EQ(back->retention_days, 365u);
  EXPECT_EQ(back->tags.at("team"), "sales");
  EXPECT_EQ(back->key_prefix, "acme/eu-1");
  ASSERT_TRUE(back->stream);
  EXPECT_EQ(back->stream->url, "wss://ai.example/x");
  EXPECT_EQ(back->stream->protocol, "plain");
  EXPECT_EQ(back->stream->organization_id, "org-1");
  EXPECT_EQ(back->elapsed_ms, 7);
}

TEST(HookAnswer, RejectDefaultsTo603) {
  auto d = parse_hook_answer(R"({"action":"reject"})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->sip_code, 603);
  auto e = parse_hook_answer(R"({"action":"reject","sip_code":480})");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->sip_code, 480);
}

TEST(HookAnswer, BadAnswersNameTheField) {
  struct Case {
    const char* body;
    const char* field;
  } cases[] = {
      {"[1]", "answer"},
      {"{\"action\":\"record\"", "not valid JSON"},
      {R"({"action":"maybe"})", "action"},
      {R"({"action":"reject","sip_code":486})", "sip_code"},
      {R"({"sip_code":603})", "sip_code"},
      {R"({"format":"mp3"})", "format"},
      {R"({"channel_layout":"left"})", "channel_layout"},
      {R"({"retention_days":0})", "retention_days"},
      {R"({"retention_days":-1})", "retention_days"},
      {R"({"retention_days":"30"})", "retention_days"},
      {R"({"retention_mode":"compliance"})", "retention_mode"},
      {R"({"tags":{"a":1}})", "tags"},
      {R"({"tags":{"a\u0001":"x"}})", "tags"},
      {R"({"key_prefix":"../etc"})", "key_prefix"},
      {R"({"key_prefix":"/abs"})", "key_prefix"},
      {R"({"key_prefix":"a//b"})", "key_prefix"},
      {R"({"stream":{"url":"http://x"}})", "stream"},
      {R"({"stream":"wss://x"})", "stream"},
      {R"({"stream":{}})", "stream"},
      {R"({"stream":{"url":"wss://x","mode":"audiohook"}})", "mode: unknown field"},
      {R"({"stream":{"url":"wss://x","protocol":"sip"}})", "protocol"},
      {R"({"stream":{"url":"wss://x","api_key":7}})", "api_key"},
      {R"({"stream":{"url":"","protocol":"plain"}})", "empty url"},
      {R"({"tags":{"aws:team":"x"}})", "aws: prefix"},
      {R"({"tags":{"":"x"}})", "tags"},
      {R"({"tags":{"a":"\u0007"}})", "tags"},
      {R"({"retention_day":3})", "retention_day: unknown field"},
      {R"({"source":"hook"})", "source: unknown field"},
  };
  for (const auto& c : cases) {
    auto d = parse_hook_answer(c.body);
    ASSERT_FALSE(d.ok()) << c.body;
    EXPECT_EQ(d.error().code, "hook.answer");
    EXPECT_THAT(d.error().message, HasSubstr(c.field)) << c.body;
  }
}

TEST(HookAnswer, TooManyTagsRefused) {
  std::string body = R"({"tags":{)";
  for (int i = 0; i < 11; ++i) body += (i ? "," : "") + std::string("\"t") + std::to_string(i) + "\":\"v\"";
  body += "}}";
  EXPECT_FALSE(parse_hook_answer(body).ok());
}

// S3's tag limits (docs/integrations.md): names 1-128, values 0-256 characters, counted as
// characters (code points), not bytes.
TEST(HookAnswer, TagLengthsAreS3sCountedInCharacters) {
  auto answer = [](const std::string& name, const std::string& value) {
    return parse_hook_answer(nlohmann::json{{"tags", {{name, value}}}}.dump());
  };
  EXPECT_TRUE(answer(std::string(128, 'k'), std::string(256, 'v')).ok());
  EXPECT_FALSE(answer(std::string(129, 'k'), "v").ok());
  EXPECT_FALSE(answer("k", std::string(257, 'v')).ok());
  EXPECT_TRUE(answer("k", "").ok());
  // 256 two-byte characters (512 bytes) is 256 characters: accepted; 257 is not.
  std::string e_acute = "\xc3\xa9";
  std::string v256, v257;
  for (int i = 0; i < 256; ++i) v256 += e_acute;
  v257 = v256 + e_acute;
  EXPECT_TRUE(answer("k", v256).ok());
  auto over = answer("k", v257);
  ASSERT_FALSE(over.ok());
  EXPECT_THAT(over.error().message, HasSubstr("values 0-256"));
  // Spaces and S3's punctuation are fine.
  auto ok = answer("cost centre", "a+b-c=d._:/@ e");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->tags.at("cost centre"), "a+b-c=d._:/@ e");
}

TEST(HookAnswer, TagsCountWithTheConfiguredOnes) {
  AnswerRules rules;
  for (int i = 0; i < 8; ++i) rules.configured_tags["c" + std::to_string(i)] = "x";
  // 8 configured + 2 new = 10: fine; + 3 new = 11: refused; a configured name given again does not count twice.
  EXPECT_TRUE(parse_hook_answer(R"({"tags":{"a":"1","b":"2"}})", rules).ok());
  auto over = parse_hook_answer(R"({"tags":{"a":"1","b":"2","c":"3"}})", rules);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, "hook.answer");
  EXPECT_THAT(over.error().message, HasSubstr("tags: 11 tags with s3.tags (8)"));
  EXPECT_TRUE(parse_hook_answer(R"({"tags":{"a":"1","b":"2","c0":"3"}})", rules).ok());
}

TEST(HookAnswer, RetentionRefusedWhenTheBucketHasNoConfiguredLock) {
  AnswerRules rules;
  rules.retention_refused = true;
  auto d = parse_hook_answer(R"({"retention_mode":"GOVERNANCE"})", rules);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.error().message, HasSubstr("retention_mode: s3.retention_mode is not configured"));
  EXPECT_FALSE(parse_hook_answer(R"({"retention_days":3})", rules).ok());
  EXPECT_TRUE(parse_hook_answer(R"({"tags":{"a":"b"}})", rules).ok());
  EXPECT_TRUE(parse_hook_answer(R"({"retention_days":3})").ok());  // no S3 / a locked bucket
}

// "stream": absent -> the configuration's; null or {"url": ""} -> no stream for the call.
TEST(HookAnswer, StreamAbsentNullOrEmptyUrl) {
  auto absent = parse_hook_answer("{}");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->stream);
  for (const char* off : {R"({"stream":null})", R"({"stream":{"url":""}})"}) {
    auto d = parse_hook_answer(off);
    ASSERT_TRUE(d.ok()) << off << ": " << d.error().message;
    ASSERT_TRUE(d->stream) << off;
    EXPECT_EQ(d->stream->url, "") << off;
    auto j = encode_decision(*d);
    EXPECT_TRUE(j.contains("stream") && j["stream"].is_null()) << j.dump();
    auto back = decode_decision(j);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->stream, d->stream);
  }
}

// The recording keeps where the call was streamed, never a secret: no api_key, no query.
TEST(HookAnswer, StoredStreamHasNoSecrets) {
  auto d = parse_hook_answer(
      R"({"stream":{"url":"wss://ai.example/ws?token=s3cret#x","api_key":"k-123","protocol":"audiohook"}})");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->stream->url, "wss://ai.example/ws?token=s3cret#x");  // used as given for the call
  EXPECT_EQ(d->stream->api_key, "k-123");
  auto text = encode_decision(*d).dump();
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
  EXPECT_EQ(text.find("k-123"), std::string::npos) << text;
  EXPECT_EQ(encode_decision(*d)["stream"], (nlohmann::json{{"url", "wss://ai.example/ws"}, {"protocol", "audiohook"}}));
}

TEST(StoredDecision, KeepsSourceAndError) {
  CallDecision d;
  d.source = "on_error";
  d.error = "no answer within hooks.timeout_ms = 300 ms";
  auto back = decode_decision(encode_decision(d));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->source, "on_error");
  EXPECT_EQ(back->error, d.error);
  EXPECT_FALSE(decode_decision(nlohmann::json{{"format", "mp3"}}).ok());
}

// A spool written by a version that kept the stream object as answered (any field) still
// finalises with its decision; an answer with such a field is refused (BadAnswersNameTheField).
TEST(StoredDecision, OlderStreamObjectsAreRead) {
  auto back = decode_decision(nlohmann::json::parse(
      R"({"source":"hook","action":"record","elapsed_ms":3,"key_prefix":"a","stream":{"url":"wss://x/y","mode":"m"}})"));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->key_prefix, "a");
  EXPECT_EQ(back->stream->url, "wss://x/y");
}

}  // namespace
}  // namespace sgw::recording
