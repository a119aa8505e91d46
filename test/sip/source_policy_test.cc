#include "sip/source_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

namespace sgw::sip {
namespace {

SourceAllowList list(const std::vector<std::string>& cidrs) {
  auto l = SourceAllowList::parse(cidrs);
  EXPECT_TRUE(l) << (l ? "" : l.error().message);
  return l ? std::move(l).value() : SourceAllowList{};
}

TEST(SourceAllowList, EmptyAllowsEveryone) {
  SourceAllowList l;
  EXPECT_TRUE(l.allows("192.0.2.1"));
  EXPECT_TRUE(l.allows("::1"));
  EXPECT_TRUE(l.allows(""));
}

TEST(SourceAllowList, Ipv4PrefixesAndHosts) {
  auto l = list({"192.0.2.0/24", "10.1.2.3", "172.16.0.0/12"});
  EXPECT_TRUE(l.allows("192.0.2.0"));
  EXPECT_TRUE(l.allows("192.0.2.255"));
  EXPECT_FALSE(l.allows("192.0.3.0"));
  EXPECT_TRUE(l.allows("10.1.2.3"));
  EXPECT_FALSE(l.allows("10.1.2.4"));
  EXPECT_TRUE(l.allows("172.31.255.255"));  // /12: 172.16-172.31
  EXPECT_FALSE(l.allows("172.32.0.0"));
  EXPECT_FALSE(l.allows("::1"));            // no IPv6 entry
  EXPECT_FALSE(l.allows("not an address"));
  EXPECT_FALSE(l.allows(""));
}

TEST(SourceAllowList, Ipv6AndMappedIpv4) {
  auto l = list({"2001:db8::/32", "::1", "127.0.0.0/8"});
  EXPECT_TRUE(l.allows("2001:db8:ffff::7"));
  EXPECT_FALSE(l.allows("2001:db9::1"));
  EXPECT_TRUE(l.allows("::1"));
  EXPECT_FALSE(l.allows("::2"));
  EXPECT_TRUE(l.allows("::ffff:127.0.0.5"));  // a dual-stack socket's IPv4 peer
  EXPECT_FALSE(l.allows("::ffff:128.0.0.1"));
  auto mapped = list({"::ffff:192.0.2.0/120"});  // written as mapped IPv6: an IPv4 /24
  EXPECT_TRUE(mapped.allows("192.0.2.9"));
  EXPECT_FALSE(mapped.allows("192.0.3.9"));
}

TEST(SourceAllowList, OddPrefixLengths) {
  auto l = list({"192.0.2.128/25", "2001:db8:8000::/33", "0.0.0.0/0"});
  EXPECT_TRUE(l.allows("8.8.8.8"));  // /0 matches every IPv4 address
  auto m = list({"192.0.2.128/25", "2001:db8:8000::/33"});
  EXPECT_TRUE(m.allows("192.0.2.200"));
  EXPECT_FALSE(m.allows("192.0.2.127"));
  EXPECT_TRUE(m.allows("2001:db8:ffff::1"));
  EXPECT_FALSE(m.allows("2001:db8:7fff::1"));
}

TEST(SourceAllowList, SocketAddresses) {
  auto l = list({"127.0.0.0/8", "::1"});
  sockaddr_in in{};
  in.sin_family = AF_INET;
  ASSERT_EQ(inet_pton(AF_INET, "127.0.0.5", &in.sin_addr), 1);
  EXPECT_TRUE(l.allows(reinterpret_cast<sockaddr*>(&in), sizeof in));
  ASSERT_EQ(inet_pton(AF_INET, "192.0.2.1", &in.sin_addr), 1);
  EXPECT_FALSE(l.allows(reinterpret_cast<sockaddr*>(&in), sizeof in));
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "::1", &in6.sin6_addr), 1);
  EXPECT_TRUE(l.allows(reinterpret_cast<sockaddr*>(&in6), sizeof in6));
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:127.1.2.3", &in6.sin6_addr), 1);
  EXPECT_TRUE(l.allows(reinterpret_cast<sockaddr*>(&in6), sizeof in6));
  EXPECT_FALSE(l.allows(reinterpret_cast<sockaddr*>(&in6), 4));  // truncated
  EXPECT_FALSE(l.allows(nullptr, 0));
}

TEST(SourceAllowList, ErrorsNameTheEntry) {
  for (const char* bad : {"10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/x", "example.com",
                          "10.0.0.0/8/8", "[::1]"}) {
    auto l = SourceAllowList::parse({"127.0.0.1", bad});
    ASSERT_FALSE(l) << bad;
    EXPECT_NE(l.error().message.find(std::string("'") + bad + "'"), std::string::npos) << l.error().message;
  }
}

}  // namespace
}  // namespace sgw::sip
