#include "common/logging.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace sgw::common {
namespace {

TEST(Redact, MasksUriUserPartsNamesAndNumbers) {
  EXPECT_EQ(redact_personal_data("from \"Alice Smith\" <sip:alice@example.com>;tag=1"),
            "from \"***\" <sip:***@example.com>;tag=1");
  EXPECT_EQ(redact_personal_data("sips:+4930123456@10.0.0.1:5061"), "sips:***@10.0.0.1:5061");
  EXPECT_EQ(redact_personal_data("tel:+1-555-0100 called"), "tel:*** called");
  EXPECT_EQ(redact_personal_data("caller +4930123456 and 015112345678 rang"), "caller *** and *** rang");
}

TEST(Redact, LeavesIdsAddressesAndPortsAlone) {
  const std::string keep =
      "12345678-1234-4234-8234-123456789012 [a@b] from 192.168.100.200:5060 port 20000 sip:gw.example.com";
  EXPECT_EQ(redact_personal_data(keep), keep);
}

// Captures what the sink writes to stderr while FN runs.
template <typename Fn>
std::vector<std::string> stderr_lines(Fn fn) {
  std::fflush(stderr);
  int saved = ::dup(2);
  char path[] = "/tmp/sgw-logging-test-XXXXXX";
  int fd = ::mkstemp(path);
  ::dup2(fd, 2);
  fn();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::vector<std::string> lines;
  FILE* f = std::fopen(path, "r");
  char buf[4096];
  while (f && std::fgets(buf, sizeof buf, f)) {
    std::string l(buf);
    if (!l.empty() && l.back() == '\n') l.pop_back();
    lines.push_back(l);
  }
  if (f) std::fclose(f);
  ::close(fd);
  ::unlink(path);
  return lines;
}

TEST(Logging, JsonLinesCarryTheCallsIds) {
  LogOptions o;
  o.format = "json";
  o.node = "gw-1";
  o.region = "eu";
  ASSERT_TRUE(init_logging(o));
  log_register_call("0f8e1a2b-0000-4000-8000-000000000001", "call-xyz@src", "conv-1");
  auto lines = stderr_lines([] {
    logger("test")->info("0f8e1a2b-0000-4000-8000-000000000001 [call-xyz@src]: answered");
    logger("test")->info("nothing about a call");
  });
  ASSERT_EQ(lines.size(), 2u);
  auto a = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(a["level"], "info");
  EXPECT_EQ(a["call_id"], "call-xyz@src");
  EXPECT_EQ(a["recording_id"], "0f8e1a2b-0000-4000-8000-000000000001");
  EXPECT_EQ(a["conversation_id"], "conv-1");
  EXPECT_EQ(a["node"], "gw-1");
  EXPECT_EQ(a["region"], "eu");
  EXPECT_TRUE(a.contains("time") && a.contains("thread") && a.contains("message"));
  auto b = nlohmann::json::parse(lines[1]);
  EXPECT_FALSE(b.contains("call_id"));
  EXPECT_EQ(b["message"], "nothing about a call");
  ASSERT_TRUE(init_logging(LogOptions{}));
}

TEST(Logging, RepeatedErrorIsCountedNotPrinted) {
  LogOptions o;
  o.redact = true;
  ASSERT_TRUE(init_logging(o));
  auto lines = stderr_lines([] {
    for (int i = 0; i < 50; ++i) logger("test")->error("disk full writing for sip:bob@example.com");
    logger("test")->error("another error");
    flush_logging();
  });
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("disk full writing for sip:***@example.com"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("another error"), std::string::npos);
  EXPECT_NE(lines[2].find("(repeated 49 times in 10 s)"), std::string::npos) << lines[2];
  for (const auto& l : lines) EXPECT_EQ(l.find("bob"), std::string::npos) << l;
  ASSERT_TRUE(init_logging(LogOptions{}));
}

}  // namespace
}  // namespace sgw::common
