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
      "stream":{"url":"wss://ai.example/x","mode":"audiohook"}})");
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
  EXPECT_EQ(back->stream["mode"], "audiohook");
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

}  // namespace
}  // namespace sgw::recording
