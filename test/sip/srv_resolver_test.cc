// SIP target selection against a real DNS server: each test starts its own
// dnsmasq (Debian package dnsmasq-base) on a free loopback port with SRV, A
// and AAAA records from the command line, and kills it (by PID) at the end.

#include "sip/srv_resolver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "test_ports.h"

extern char** environ;

namespace sgw::sip {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The zone the tests resolve against. recorder.test has three gateways at
// priority 10 (weights 60/30/10) and a backup at priority 20 over UDP, one
// TCP and one SIPS target.
const std::vector<std::string> kRecords = {
    "--srv-host=_sip._udp.recorder.test,gw1.recorder.test,5070,10,60",
    "--srv-host=_sip._udp.recorder.test,gw2.recorder.test,5071,10,30",
    "--srv-host=_sip._udp.recorder.test,gw3.recorder.test,5072,10,10",
    "--srv-host=_sip._udp.recorder.test,backup.recorder.test,5080,20,100",
    "--srv-host=_sip._tcp.recorder.test,gw1.recorder.test,5090,10,100",
    "--srv-host=_sips._tcp.recorder.test,gw1.recorder.test,5061,10,100",
    "--srv-host=_sip._tcp.tcponly.recorder.test,gw2.recorder.test,5095,1,1",
    "--srv-host=_sip._udp.dangling.recorder.test,nowhere.recorder.test,5060,1,1",
    "--host-record=gw1.recorder.test,127.0.0.1",
    "--host-record=gw2.recorder.test,127.0.0.2",
    "--host-record=gw3.recorder.test,127.0.0.3",
    "--host-record=backup.recorder.test,127.0.0.9",
    "--host-record=plain.recorder.test,127.0.0.5",
    "--host-record=dual.recorder.test,127.0.0.6,::6",
};

class Dnsmasq {
 public:
  // Starts dnsmasq and waits (bounded) until it answers.
  ::testing::AssertionResult start() {
    if (access(SGW_DNSMASQ, X_OK) != 0)
      return ::testing::AssertionFailure()
             << SGW_DNSMASQ << " not found: install the Debian package dnsmasq-base";
    port = test::free_port();
    if (port == 0) return ::testing::AssertionFailure() << "no free port";
    char log_template[] = "/tmp/sgw-dnsmasq-XXXXXX";
    int log_fd = mkstemp(log_template);
    if (log_fd < 0) return ::testing::AssertionFailure() << "mkstemp failed";
    log_path_ = log_template;
    std::vector<std::string> args = {
        SGW_DNSMASQ,        "--keep-in-foreground", "--port=" + std::to_string(port),
        "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
        "--no-poll",        "--pid-file=",          "--conf-file=/dev/null",
        "--log-facility=-", "--local=/test/",       "--cache-size=0"};
    args.insert(args.end(), kRecords.begin(), kRecords.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, log_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, log_fd, STDERR_FILENO);
    int rc = posix_spawn(&pid_, SGW_DNSMASQ, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(log_fd);
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "posix_spawn dnsmasq: " << rc;
    }
    ResolverOptions o = options();
    o.timeout_ms = 200;
    auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      if (resolve_targets("sip:plain.recorder.test:5060", o).ok()) return ::testing::AssertionSuccess();
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure() << "dnsmasq exited: " << log();
      }
      std::this_thread::sleep_for(20ms);
    }
    return ::testing::AssertionFailure() << "dnsmasq did not answer within 10 s: " << log();
  }

  // Stops the process we started (only that PID), bounded.
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    auto deadline = Clock::now() + 3s;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
  }

  ~Dnsmasq() {
    stop();
    if (!log_path_.empty()) unlink(log_path_.c_str());
  }

  ResolverOptions options(unsigned seed = 1) const {
    ResolverOptions o;
    o.servers = {"127.0.0.1:" + std::to_string(port)};
    o.timeout_ms = 2000;
    o.seed = seed;
    return o;
  }

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::uint16_t port = 0;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

class SrvResolverTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dns.start()); }
  void TearDown() override { dns.stop(); }

  std::vector<Target> resolve(const std::string& uri, ResolverOptions o) {
    auto r = resolve_targets(uri, o);
    EXPECT_TRUE(r.ok()) << uri << ": " << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : std::vector<Target>{};
  }

  Dnsmasq dns;
};

std::vector<std::string> names(const std::vector<Target>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(t.to_string());
  return out;
}

TEST_F(SrvResolverTest, PriorityOrderThenWeightedWithinPriority) {
  auto ts = resolve("sip:recorder.test;transport=udp", dns.options(7));
  ASSERT_EQ(ts.size(), 4u) << ::testing::PrintToString(names(ts));
  // The three priority-10 gateways first (any order), with their SRV ports...
  std::map<std::string, std::uint16_t> want = {
      {"127.0.0.1", 5070}, {"127.0.0.2", 5071}, {"127.0.0.3", 5072}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ts[i].transport, "udp");
    ASSERT_TRUE(want.count(ts[i].host)) << ts[i].to_string();
    EXPECT_EQ(ts[i].port, want[ts[i].host]);
    want.erase(ts[i].host);
  }
  // ...then the priority-20 backup.
  EXPECT_EQ(ts[3].to_string(), "udp:127.0.0.9:5080");
}

TEST_F(SrvResolverTest, SameSeedSameOrder) {
  auto a = resolve("sip:recorder.test;transport=udp", dns.options(42));
  auto b = resolve("sip:recorder.test;transport=udp", dns.options(42));
  EXPECT_EQ(names(a), names(b));
}

TEST_F(SrvResolverTest, FirstChoiceFollowsWeights) {
  // 300 seeded resolutions through the DNS server: who comes first?
  std::map<std::string, int> first;
  constexpr int kDraws = 300;
  for (unsigned seed = 1; seed <= kDraws; ++seed) {
    auto ts = resolve("sip:recorder.test;transport=udp", dns.options(seed));
    ASSERT_FALSE(ts.empty());
    ++first[ts[0].host];
  }
  // Weights 60/30/10 (RFC 2782: picks r in [0, 100], so 61/30/10 of 101).
  EXPECT_NEAR(first["127.0.0.1"] / double(kDraws), 0.60, 0.10);
  EXPECT_NEAR(first["127.0.0.2"] / double(kDraws), 0.30, 0.09);
  EXPECT_NEAR(first["127.0.0.3"] / double(kDraws), 0.10, 0.06);
  EXPECT_EQ(first["127.0.0.9"], 0) << "a priority-20 record came first";
}

TEST_F(SrvResolverTest, TransportSelection) {
  EXPECT_EQ(names(resolve("sip:recorder.test;transport=tcp", dns.options())),
            std::vector<std::string>{"tcp:127.0.0.1:5090"});
  EXPECT_EQ(names(resolve("sips:recorder.test", dns.options())),
            std::vector<std::string>{"tls:127.0.0.1:5061"});
  // No transport parameter: UDP SRV targets first, then TCP ones.
  auto both = resolve("sip:srs@recorder.test", dns.options());
  ASSERT_EQ(both.size(), 5u) << ::testing::PrintToString(names(both));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(both[i].transport, "udp");
  EXPECT_EQ(both[4].to_string(), "tcp:127.0.0.1:5090");
  ResolverOptions tcp_first = dns.options();
  tcp_first.prefer_tcp = true;
  auto tcp = resolve("sip:recorder.test", tcp_first);
  ASSERT_EQ(tcp.size(), 5u);
  EXPECT_EQ(tcp[0].to_string(), "tcp:127.0.0.1:5090");
  // Only a TCP SRV exists: that is the transport.
  EXPECT_EQ(names(resolve("sip:tcponly.recorder.test", dns.options())),
            std::vector<std::string>{"tcp:127.0.0.2:5095"});
}

TEST_F(SrvResolverTest, NoSrvFallsBackToAddressRecordsOn5060) {
  EXPECT_EQ(names(resolve("sip:plain.recorder.test", dns.options())),
            std::vector<std::string>{"udp:127.0.0.5:5060"});
  EXPECT_EQ(names(resolve("sip:plain.recorder.test;transport=tcp", dns.options())),
            std::vector<std::string>{"tcp:127.0.0.5:5060"});
  auto dual = names(resolve("sip:dual.recorder.test", dns.options()));
  std::sort(dual.begin(), dual.end());
  EXPECT_EQ(dual, (std::vector<std::string>{"udp:127.0.0.6:5060", "udp:[::6]:5060"}));
}

TEST_F(SrvResolverTest, ExplicitPortSkipsSrv) {
  // recorder.test has SRV records, but a port in the URI means A/AAAA only
  // (RFC 3263 §4.2); gw2 has an A record.
  EXPECT_EQ(names(resolve("sip:gw2.recorder.test:5999;transport=tcp", dns.options())),
            std::vector<std::string>{"tcp:127.0.0.2:5999"});
  auto r = resolve_targets("sip:recorder.test:5060", dns.options());
  ASSERT_FALSE(r.ok()) << "recorder.test has no A record";
  EXPECT_NE(r.error().message.find("recorder.test A/AAAA"), std::string::npos) << r.error().message;
}

TEST_F(SrvResolverTest, NxdomainNamesTheName) {
  auto r = resolve_targets("sip:srs@missing.recorder.test", dns.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("sip:srs@missing.recorder.test"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("missing.recorder.test A/AAAA: NXDOMAIN"), std::string::npos)
      << r.error().message;
}

TEST_F(SrvResolverTest, UnresolvableSrvTargetIsNamed) {
  auto r = resolve_targets("sip:dangling.recorder.test;transport=udp", dns.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nowhere.recorder.test"), std::string::npos) << r.error().message;
}

TEST_F(SrvResolverTest, ServerGoneIsABoundedError) {
  ResolverOptions o = dns.options();
  dns.stop();  // the port is closed now: ICMP refusals, or silence
  o.timeout_ms = 500;
  auto start = Clock::now();
  auto r = resolve_targets("sip:recorder.test;transport=udp", o);
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  // Bounded by the deadline: the upper bound leaves a busy machine 2 s of slack, far below
  // what ignoring timeout_ms costs (c-ares' own 5 s per try).
  EXPECT_LT(took, 500ms + 2s);
  EXPECT_NE(r.error().message.find("_sip._udp.recorder.test SRV"), std::string::npos)
      << r.error().message;
}

// --- no DNS server needed ----------------------------------------------------

// A UDP socket that never answers: the resolver must give up on its deadline.
TEST(SrvResolverNoServer, SilentServerTimesOutOnDeadline) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ResolverOptions o;
  o.servers = {"127.0.0.1:" + std::to_string(ntohs(a.sin_port))};
  o.timeout_ms = 400;
  auto start = Clock::now();
  auto r = resolve_targets("sip:recorder.test", o);
  auto took = Clock::now() - start;
  close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_GE(took, 350ms);
  EXPECT_LT(took, 400ms + 2s);  // slack for a busy machine; c-ares' own timeout is 5 s per try
  EXPECT_NE(r.error().message.find("timeout"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("sip:recorder.test"), std::string::npos) << r.error().message;
}

TEST(SrvResolverNoServer, IpLiteralsNeedNoDns) {
  ResolverOptions o;
  o.servers = {"127.0.0.1:1"};  // would fail if asked
  o.timeout_ms = 100;
  auto check = [&](const std::string& uri, const std::string& want) {
    auto r = resolve_targets(uri, o);
    ASSERT_TRUE(r.ok()) << uri << ": " << r.error().message;
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].to_string(), want) << uri;
  };
  check("sip:127.0.0.1", "udp:127.0.0.1:5060");
  check("sip:srs@10.1.2.3:5070;transport=tcp", "tcp:10.1.2.3:5070");
  check("sip:[::1]:5080;transport=udp", "udp:[::1]:5080");
  check("sips:192.0.2.7", "tls:192.0.2.7:5061");
  check("<sip:srs@127.0.0.1:5062;transport=TCP?X=1>", "tcp:127.0.0.1:5062");
  check("127.0.0.1:5099", "udp:127.0.0.1:5099");
}

TEST(SrvResolverNoServer, BadUrisAreErrors) {
  ResolverOptions o;
  o.servers = {"127.0.0.1:1"};
  o.timeout_ms = 100;
  for (std::string uri : {"sip:", "sip:host:99999", "sip:host:12x", "sip:[::1", "sip:a b",
                          "sip:host;transport=sctp", "sip:[zz]:5060"}) {
    auto r = resolve_targets(uri, o);
    ASSERT_FALSE(r.ok()) << uri;
    EXPECT_EQ(r.error().code, "sip.uri") << uri;
    EXPECT_NE(r.error().message.find(uri), std::string::npos) << r.error().message;
  }
}

// RFC 2782 selection on its own, with many draws: proportional to weight.
TEST(SrvOrdering, WeightsAreProportionalAndPrioritiesStrict) {
  std::vector<SrvRecord> recs = {{"a", 10, 60, 1}, {"b", 10, 30, 2}, {"c", 10, 10, 3},
                                 {"z", 5, 0, 9},   {"y", 20, 50, 8}};
  std::mt19937 rng(12345);
  std::map<std::string, int> first;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    auto o = order_srv_records(recs, rng);
    ASSERT_EQ(o.size(), recs.size());
    EXPECT_EQ(o[0].target, "z");  // lowest priority value first, weight 0 or not
    EXPECT_EQ(o[4].target, "y");
    ++first[o[1].target];
  }
  EXPECT_NEAR(first["a"] / double(kDraws), 61.0 / 101, 0.02);
  EXPECT_NEAR(first["b"] / double(kDraws), 30.0 / 101, 0.02);
  EXPECT_NEAR(first["c"] / double(kDraws), 10.0 / 101, 0.015);
}

TEST(SrvOrdering, ZeroWeightsArePickedRarelyButPicked) {
  std::vector<SrvRecord> recs = {{"heavy", 1, 100, 1}, {"zero", 1, 0, 2}};
  std::mt19937 rng(99);
  int zero_first = 0;
  constexpr int kDraws = 10000;
  for (int i = 0; i < kDraws; ++i)
    if (order_srv_records(recs, rng)[0].target == "zero") ++zero_first;
  // r == 0 out of [0, 100] selects the weight-0 record: about 1 in 101.
  EXPECT_GT(zero_first, 0);
  EXPECT_LT(zero_first, kDraws / 30);
}

}  // namespace
}  // namespace sgw::sip
