// stream_target_for: the call-control hook's stream over the configuration's
// (docs/integrations.md "Live audio").
#include "stream/live_stream.h"

#include <gtest/gtest.h>

namespace sgw::stream {
namespace {

StreamTarget configured() { return {"wss://config.example/ws", Protocol::kAudioHook, "config-key", "org-config"}; }

TEST(StreamTargetFor, NoHookStreamMeansTheConfiguredOne) {
  auto t = stream_target_for(configured(), std::nullopt);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->url, "wss://config.example/ws");
  EXPECT_EQ(t->api_key, "config-key");
  EXPECT_FALSE(stream_target_for(StreamTarget{}, std::nullopt));  // no stream.url: not streamed
}

TEST(StreamTargetFor, HookUrlReplacesItAndKeepsWhatTheHookDidNotSay) {
  recording::StreamOverride o;
  o.url = "ws://127.0.0.1:9000/call";
  auto t = stream_target_for(configured(), o);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->url, "ws://127.0.0.1:9000/call");
  EXPECT_EQ(t->protocol, Protocol::kAudioHook);
  EXPECT_EQ(t->api_key, "config-key");
  EXPECT_EQ(t->organization_id, "org-config");
  o.protocol = "plain";
  o.api_key = "call-key";
  o.organization_id = "org-call";
  t = stream_target_for(configured(), o);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->protocol, Protocol::kPlain);
  EXPECT_EQ(t->api_key, "call-key");
  EXPECT_EQ(t->organization_id, "org-call");
  // Without stream.url a hook's stream is still opened.
  auto only_hook = stream_target_for(StreamTarget{}, o);
  ASSERT_TRUE(only_hook);
  EXPECT_EQ(only_hook->url, "ws://127.0.0.1:9000/call");
}

TEST(StreamTargetFor, HookEmptyUrlMeansNoStream) {
  EXPECT_FALSE(stream_target_for(configured(), recording::StreamOverride{}));
}

}  // namespace
}  // namespace sgw::stream
