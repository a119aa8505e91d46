#include "app/config.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sgw::app {
namespace {

using ::testing::HasSubstr;

// The complete example from docs/configuration.md (keep the two in step; here
// the codec names are in mixed case on purpose).
constexpr const char* kFullExample = R"yaml(
node:
  name: gw-eu-1
  region: eu-west-1

sip:
  listen:
    - udp:0.0.0.0:5060
    - tcp:0.0.0.0:5060
    - udp:[::]:5060
  max_sessions: 2000
  retry_after_s: 10
  max_message_bytes: 32768

media:
  address: 192.0.2.10
  rtp_ports: 20000-29999
  workers: 4
  timeout_s: 30
  max_paused_s: 7200
  latch: address_port
  codecs: [pcma, PCMU, g722, Opus]
  srtp: require

recording:
  dir: /var/lib/siprecd/recordings
  spool_dir: /var/lib/siprecd/spool

metadata:
  max_bytes: 131072
  max_depth: 16
  conversation_id_rules:
    - header:X-GenesysConversationID
    - extension:session:GenesysConversationID
    - regex:call-id:^([0-9a-f-]{36})@
    - metadata:session_id
    - call-id

http:
  listen: 127.0.0.1:8080

stream:
  url: wss://audiohook.example.com/api/v1/audiohook/ws
  protocol: audiohook
  ca_file: /etc/siprecd/stream-ca.pem
  api_key: example-key
  organization_id: d7934305-0972-4844-938e-9060eef73d05
  queue_packets: 256
  max_queued_frames: 50
  delay_ms: 60
  ping_interval_s: 5

log:
  level: debug
  redact_personal_data: true
)yaml";

std::string error_of(const std::string& yaml) {
  auto r = load_config_text(yaml, "test.yaml");
  if (r.ok()) return "<ok>";
  return r.error().message;
}

TEST(DefaultConfig, MatchesDocumentedDefaults) {
  Config c = default_config();
  EXPECT_FALSE(c.node_name.empty());
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) == 0 && host[0] != '\0') {
    EXPECT_EQ(c.node_name, std::string(host.data()));
  }
  EXPECT_EQ(c.region, "local");
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].to_string(), "udp:127.0.0.1:5060");
  EXPECT_EQ(c.listen[1].to_string(), "tcp:127.0.0.1:5060");
  EXPECT_EQ(c.max_sessions, 10000u);
  EXPECT_EQ(c.retry_after_s, 30u);
  EXPECT_EQ(c.max_message_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(c.udp_receive_buffer_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(c.media_address, "127.0.0.1");
  EXPECT_EQ(c.rtp_port_min, 10000);
  EXPECT_EQ(c.rtp_port_max, 20000);
  EXPECT_EQ(c.media_workers, 0u);
  EXPECT_EQ(c.media_timeout_s, 60u);
  EXPECT_EQ(c.codecs, (std::vector<std::string>{"PCMA", "PCMU", "G722", "opus", "G729"}));
  EXPECT_EQ(c.srtp, "off");
  EXPECT_EQ(c.recordings_dir, "var/recordings");
  EXPECT_EQ(c.spool_dir, "var/spool");
  EXPECT_EQ(c.spool_sync, "filesystem");
  EXPECT_EQ(c.metadata_max_bytes, 256u * 1024);
  EXPECT_EQ(c.metadata_max_depth, 32u);
  EXPECT_EQ(c.conversation_id_rules.size(), 7u);
  EXPECT_TRUE(c.http_listen.empty());
  EXPECT_EQ(c.log_level, "info");
  EXPECT_FALSE(c.redact_personal_data);
  EXPECT_TRUE(validate(c).ok()) << validate(c).error().message;
}

TEST(LoadConfig, EmptyDocumentGivesDefaults) {
  auto r = load_config_text("", "empty.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->listen.size(), 2u);
  auto comments = load_config_text("# nothing\n", "c.yaml");
  ASSERT_TRUE(comments.ok()) << comments.error().message;
  auto empty_sections = load_config_text("sip:\nmedia:\n", "s.yaml");
  ASSERT_TRUE(empty_sections.ok()) << empty_sections.error().message;
  EXPECT_EQ(empty_sections->max_sessions, 10000u);
}

TEST(LoadConfig, FullExample) {
  auto r = load_config_text(kFullExample, "example.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.node_name, "gw-eu-1");
  EXPECT_EQ(c.region, "eu-west-1");
  ASSERT_EQ(c.listen.size(), 3u);
  EXPECT_EQ(c.listen[0].transport, Transport::kUdp);
  EXPECT_EQ(c.listen[0].address, "0.0.0.0");
  EXPECT_EQ(c.listen[1].transport, Transport::kTcp);
  EXPECT_EQ(c.listen[2].address, "::");
  EXPECT_EQ(c.listen[2].to_string(), "udp:[::]:5060");
  EXPECT_EQ(c.max_sessions, 2000u);
  EXPECT_EQ(c.retry_after_s, 10u);
  EXPECT_EQ(c.max_message_bytes, 32768u);
  EXPECT_EQ(c.media_address, "192.0.2.10");
  EXPECT_EQ(c.rtp_port_min, 20000);
  EXPECT_EQ(c.rtp_port_max, 29999);
  EXPECT_EQ(c.media_workers, 4u);
  EXPECT_EQ(c.media_timeout_s, 30u);
  // Codec names are case-insensitive and stored in canonical spelling.
  EXPECT_EQ(c.codecs, (std::vector<std::string>{"PCMA", "PCMU", "G722", "opus"}));
  EXPECT_EQ(c.srtp, "require");
  EXPECT_EQ(c.recordings_dir, "/var/lib/siprecd/recordings");
  EXPECT_EQ(c.spool_dir, "/var/lib/siprecd/spool");
  EXPECT_EQ(c.metadata_max_bytes, 131072u);
  EXPECT_EQ(c.metadata_max_depth, 16u);
  ASSERT_EQ(c.conversation_id_rules.size(), 5u);
  EXPECT_EQ(c.conversation_id_rules[2], "regex:call-id:^([0-9a-f-]{36})@");
  EXPECT_EQ(c.conversation_id_rules[4], "call-id");
  EXPECT_EQ(c.http_listen, "127.0.0.1:8080");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_TRUE(c.redact_personal_data);
}

TEST(LoadConfig, PartialFileKeepsOtherDefaults) {
  auto r = load_config_text("media:\n  workers: 2\n", "p.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->media_workers, 2u);
  EXPECT_EQ(r->media_timeout_s, 60u);
  EXPECT_EQ(r->listen.size(), 2u);
}

TEST(LoadConfig, DocsExampleMatchesTest) {
  // docs/configuration.md carries the same example; it must load too.
  // SGW_TEST_DATA_DIR is <repo>/test/app/data (which need not exist): go up lexically.
  auto repo = std::filesystem::path(SGW_TEST_DATA_DIR).parent_path().parent_path().parent_path();
  std::ifstream in(repo / "docs" / "configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md not found";
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string fence = "```yaml\n";
  auto start = doc.find(fence);
  ASSERT_NE(start, std::string::npos);
  start += fence.size();
  auto end = doc.find("```", start);
  ASSERT_NE(end, std::string::npos);
  auto r = load_config_text(doc.substr(start, end - start), "configuration.md");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->node_name, "gw-eu-1");
}

TEST(LoadConfig, StreamKeys) {
  Config d = default_config();
  EXPECT_EQ(d.stream_url, "");
  EXPECT_EQ(d.stream_protocol, "audiohook");
  EXPECT_EQ(d.stream_max_queued_frames, 50u);
  auto r = load_config_text("stream:\n  url: wss://ai.example/ws?k=1\n  protocol: plain\n  ca_file: /ca.pem\n"
                            "  queue_packets: 64\n  max_queued_frames: 5\n  delay_ms: 40\n  ping_interval_s: 0\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->stream_url, "wss://ai.example/ws?k=1");
  EXPECT_EQ(r->stream_protocol, "plain");
  EXPECT_EQ(r->stream_queue_packets, 64u);
  EXPECT_THAT(error_of("stream:\n  url: http://x/\n"), HasSubstr("stream.url"));
  EXPECT_THAT(error_of("stream:\n  protocol: rtp\n"), HasSubstr("stream.protocol"));
  EXPECT_THAT(error_of("stream:\n  delay_ms: 5\n"), HasSubstr("stream.delay_ms"));
  EXPECT_THAT(error_of("stream:\n  queue_packets: 1\n"), HasSubstr("stream.queue_packets"));
}

TEST(LoadConfig, SessionTimerPauseAndLatchKeys) {
  Config d = default_config();
  EXPECT_EQ(d.min_session_expires_s, 90u);  // RFC 4028 §5
  EXPECT_EQ(d.max_paused_s, 7200u);
  EXPECT_EQ(d.latch, "address_port");
  auto r = load_config_text("sip:\n  min_session_expires_s: 2\nmedia:\n  max_paused_s: 0\n  latch: address\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->min_session_expires_s, 2u);
  EXPECT_EQ(r->max_paused_s, 0u);
  EXPECT_EQ(r->latch, "address");
  EXPECT_THAT(error_of("media:\n  latch: port\n"),
              HasSubstr("media.latch: expected address_port or address, got 'port'"));
  EXPECT_THAT(error_of("sip:\n  min_session_expires_s: 0\n"), HasSubstr("sip.min_session_expires_s"));
  EXPECT_THAT(error_of("media:\n  max_paused_s: 9999999\n"), HasSubstr("media.max_paused_s"));
}

TEST(LoadConfig, PerSourceLimitKeys) {
  Config d = default_config();
  EXPECT_TRUE(d.allowed_sources.empty());
  EXPECT_EQ(d.invite_rate_per_source, 0u);
  EXPECT_EQ(d.invite_burst_per_source, 100u);
  EXPECT_EQ(d.max_sessions_per_source, 0u);
  EXPECT_EQ(d.max_streams_per_session, 16u);
  auto r = load_config_text(
      "sip:\n  allowed_sources: [10.0.0.0/8, '2001:db8::/32']\n  invite_rate_per_source: 5\n"
      "  invite_burst_per_source: 7\n  max_sessions_per_source: 3\n  max_streams_per_session: 4\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->allowed_sources, (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32"}));
  EXPECT_EQ(r->invite_rate_per_source, 5u);
  EXPECT_EQ(r->invite_burst_per_source, 7u);
  EXPECT_EQ(r->max_sessions_per_source, 3u);
  EXPECT_EQ(r->max_streams_per_session, 4u);
  EXPECT_THAT(error_of("sip:\n  allowed_sources: [10.0.0.0/33]\n"),
              HasSubstr("sip.allowed_sources: '10.0.0.0/33': prefix length must be 0-32"));
  EXPECT_THAT(error_of("sip:\n  allowed_sources: [gw.example.com]\n"), HasSubstr("sip.allowed_sources"));
  EXPECT_THAT(error_of("sip:\n  invite_burst_per_source: 0\n"), HasSubstr("sip.invite_burst_per_source"));
  EXPECT_THAT(error_of("sip:\n  max_streams_per_session: 65\n"), HasSubstr("sip.max_streams_per_session"));
  EXPECT_THAT(error_of("sip:\n  invite_rate_per_source: 100001\n"), HasSubstr("sip.invite_rate_per_source"));
  Config bad = default_config();
  bad.allowed_sources = {"::1/200"};
  auto st = validate(bad);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message, HasSubstr("sip.allowed_sources"));
}

TEST(LoadConfig, UnknownKeysAreErrors) {
  EXPECT_THAT(error_of("sip:\n  max_sesions: 5\n"),
              HasSubstr("test.yaml:2: unknown key 'sip.max_sesions' (did you mean 'sip.max_sessions'?)"));
  EXPECT_THAT(error_of("loging:\n  level: info\n"), HasSubstr("unknown key 'loging'"));
  EXPECT_THAT(error_of("log:\n  colour: true\n"), HasSubstr("unknown key 'log.colour'"));
  auto r = load_config_text("media:\n  bogus: 1\n", "x.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "config.unknown_key");
}

TEST(LoadConfig, DuplicateKeysAreErrors) {
  EXPECT_THAT(error_of("sip:\n  max_sessions: 5\n  max_sessions: 6\n"),
              HasSubstr("sip.max_sessions: key given twice"));
}

TEST(LoadConfig, WrongTypesNameKeyAndExpectedType) {
  EXPECT_THAT(error_of("sip:\n  max_sessions: abc\n"),
              HasSubstr("test.yaml:2: sip.max_sessions: expected an unsigned integer, got 'abc'"));
  EXPECT_THAT(error_of("sip:\n  max_sessions: -5\n"),
              HasSubstr("sip.max_sessions: expected an unsigned integer, got '-5'"));
  EXPECT_THAT(error_of("sip:\n  max_sessions: 1.5\n"),
              HasSubstr("sip.max_sessions: expected an unsigned integer"));
  EXPECT_THAT(error_of("sip:\n  max_sessions: [1]\n"),
              HasSubstr("sip.max_sessions: expected an unsigned integer, got a list"));
  EXPECT_THAT(error_of("media:\n  srtp: maybe\n"),
              HasSubstr("media.srtp: expected off, allow or require, got 'maybe'"));
  EXPECT_THAT(error_of("media:\n  srtp: true\n"),
              HasSubstr("media.srtp: expected off, allow or require, got 'true'"));
  EXPECT_THAT(error_of("sip:\n  listen: udp:127.0.0.1:5060\n"),
              HasSubstr("sip.listen: expected a list"));
  EXPECT_THAT(error_of("media:\n  codecs: PCMA\n"), HasSubstr("media.codecs: expected a list of strings"));
  EXPECT_THAT(error_of("node:\n  name: {a: b}\n"), HasSubstr("node.name: expected a string, got a map"));
  EXPECT_THAT(error_of("node:\n  name:\n"), HasSubstr("node.name: expected a string, got nothing"));
  EXPECT_THAT(error_of("sip: 5\n"), HasSubstr("sip: expected a map, got '5'"));
  EXPECT_THAT(error_of("- a\n- b\n"), HasSubstr("expected a map of sections"));
  EXPECT_THAT(error_of("metadata:\n  conversation_id_rules: [header:X, [a]]\n"),
              HasSubstr("metadata.conversation_id_rules[1]: expected a string, got a list"));
  auto r = load_config_text("sip:\n  max_sessions: abc\n", "x.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "config.type");
}

TEST(LoadConfig, BooleansAcceptYamlSpellings) {
  auto r = load_config_text("recording:\n  keep_spool: yes\nlog:\n  redact_personal_data: On\n", "b.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->keep_spool);
  EXPECT_TRUE(r->redact_personal_data);
}

TEST(LoadConfig, RangesAreChecked) {
  EXPECT_THAT(error_of("sip:\n  max_sessions: 0\n"), HasSubstr("sip.max_sessions: expected 1-1000000, got 0"));
  EXPECT_THAT(error_of("sip:\n  max_message_bytes: 1000\n"),
              HasSubstr("sip.max_message_bytes: expected 1500-16777216, got 1000"));
  EXPECT_THAT(error_of("sip:\n  max_message_bytes: 20000000\n"), HasSubstr("sip.max_message_bytes: expected 1500-16777216"));
  EXPECT_THAT(error_of("sip:\n  retry_after_s: 0\n"), HasSubstr("sip.retry_after_s: expected 1-86400"));
  EXPECT_THAT(error_of("sip:\n  udp_receive_buffer_bytes: 1024\n"),
              HasSubstr("sip.udp_receive_buffer_bytes: expected 65536-268435456, got 1024"));
  EXPECT_THAT(error_of("recording:\n  spool_sync: fsync\n"),
              HasSubstr("recording.spool_sync: expected filesystem or file, got 'fsync'"));
  EXPECT_THAT(error_of("media:\n  timeout_s: 0\n"), HasSubstr("media.timeout_s: expected 1-86400"));
  EXPECT_THAT(error_of("media:\n  workers: 5000\n"), HasSubstr("media.workers: expected 0-1024"));
  EXPECT_THAT(error_of("metadata:\n  max_depth: 0\n"), HasSubstr("metadata.max_depth: expected 1-1024"));
  EXPECT_THAT(error_of("metadata:\n  max_bytes: 99999999999\n"), HasSubstr("metadata.max_bytes: expected 1024-16777216"));
  // Larger than uint64: not a number we can read.
  EXPECT_THAT(error_of("sip:\n  max_sessions: 99999999999999999999999\n"),
              HasSubstr("sip.max_sessions: expected an unsigned integer"));
}

TEST(LoadConfig, BadPorts) {
  EXPECT_THAT(error_of("sip:\n  listen: [udp:127.0.0.1:0]\n"), HasSubstr("sip.listen: expected a port 1-65535"));
  EXPECT_THAT(error_of("sip:\n  listen: [udp:127.0.0.1:65536]\n"), HasSubstr("sip.listen: expected a port 1-65535"));
  EXPECT_THAT(error_of("sip:\n  listen: [udp:127.0.0.1:x]\n"), HasSubstr("sip.listen: expected a port 1-65535"));
  EXPECT_THAT(error_of("sip:\n  listen: [udp:127.0.0.1:5060, udp:127.0.0.1:5060]\n"),
              HasSubstr("sip.listen: duplicate entry 'udp:127.0.0.1:5060'"));
  EXPECT_THAT(error_of("sip:\n  listen: ['udp:[::1]:5060', 'udp:[0::1]:5060']\n"),
              HasSubstr("sip.listen: duplicate entry 'udp:[::1]:5060'"));
  EXPECT_THAT(error_of("sip:\n  listen: []\n"), HasSubstr("sip.listen: at least one listen address"));
  EXPECT_THAT(error_of("media:\n  rtp_ports: 20000-10000\n"), HasSubstr("media.rtp_ports: expected MIN-MAX"));
  EXPECT_THAT(error_of("media:\n  rtp_ports: 10001-20000\n"), HasSubstr("MIN even"));
  EXPECT_THAT(error_of("media:\n  rtp_ports: 10000-10000\n"), HasSubstr("media.rtp_ports"));
  EXPECT_THAT(error_of("media:\n  rtp_ports: 0-100\n"), HasSubstr("media.rtp_ports"));
  EXPECT_THAT(error_of("media:\n  rtp_ports: 60000-70000\n"), HasSubstr("media.rtp_ports"));
  EXPECT_THAT(error_of("media:\n  rtp_ports: 10000\n"), HasSubstr("media.rtp_ports"));
  EXPECT_THAT(error_of("http:\n  listen: 127.0.0.1:0\n"), HasSubstr("http.listen: expected a port 1-65535"));
  EXPECT_THAT(error_of("http:\n  listen: 127.0.0.1\n"), HasSubstr("http.listen: expected ADDR:PORT"));
  auto ok = load_config_text("media:\n  rtp_ports: 40000-40001\n", "x.yaml");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->rtp_port_min, 40000);
  EXPECT_EQ(ok->rtp_port_max, 40001);
}

TEST(LoadConfig, AddressesAndNames) {
  EXPECT_THAT(error_of("media:\n  address: localhost\n"),
              HasSubstr("media.address: expected a literal IPv4 or IPv6 address"));
  EXPECT_THAT(error_of("media:\n  address: 0.0.0.0\n"), HasSubstr("media.address: must be a specific address"));
  EXPECT_THAT(error_of("media:\n  address: '[::1]'\n"), HasSubstr("media.address"));
  auto v6 = load_config_text("media:\n  address: '2001:db8::1'\nhttp:\n  listen: '[::1]:8080'\n", "x.yaml");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->http_listen, "[::1]:8080");
  EXPECT_THAT(error_of("http:\n  listen: '::1:8080'\n"), HasSubstr("http.listen: an IPv6 address must be in brackets"));
  EXPECT_THAT(error_of("http:\n  listen: example.com:80\n"), HasSubstr("http.listen: expected a literal"));
  EXPECT_THAT(error_of("node:\n  name: 'a b'\n"), HasSubstr("node.name: only letters"));
  EXPECT_THAT(error_of("node:\n  region: ''\n"), HasSubstr("node.region: must not be empty"));
  EXPECT_THAT(error_of("recording:\n  dir: ''\n"), HasSubstr("recording.dir: must not be empty"));
  EXPECT_THAT(error_of("recording:\n  dir: /a\n  spool_dir: /a\n"),
              HasSubstr("recording.spool_dir: must differ from recording.dir"));
  auto http_off = load_config_text("http:\n  listen:\n", "x.yaml");
  ASSERT_TRUE(http_off.ok()) << http_off.error().message;
  EXPECT_TRUE(http_off->http_listen.empty());
}

TEST(LoadConfig, CodecsAndRulesAndLogLevel) {
  EXPECT_THAT(error_of("media:\n  codecs: [PCMA, GSM]\n"), HasSubstr("media.codecs: unknown codec 'GSM'"));
  EXPECT_THAT(error_of("media:\n  codecs: [PCMA, pcma]\n"), HasSubstr("media.codecs: codec 'PCMA' is listed twice"));
  EXPECT_THAT(error_of("media:\n  codecs: []\n"), HasSubstr("media.codecs: at least one codec"));
  EXPECT_THAT(error_of("metadata:\n  conversation_id_rules: [header:X, 'cookie:Y']\n"),
              HasSubstr("test.yaml:2: metadata.conversation_id_rules[1]: rule 'cookie:Y' must be"));
  EXPECT_THAT(error_of("metadata:\n  conversation_id_rules: ['']\n"),
              HasSubstr("metadata.conversation_id_rules[0]: a rule must not be empty"));
  EXPECT_THAT(error_of("metadata:\n  conversation_id_rules: ['header:']\n"),
              HasSubstr("has nothing after the ':'"));
  EXPECT_THAT(error_of("log:\n  level: verbose\n"),
              HasSubstr("log.level: expected one of trace, debug, info, warn, error, critical, off, got 'verbose'"));
  auto upper = load_config_text("log:\n  level: WARN\n", "x.yaml");
  ASSERT_TRUE(upper.ok()) << upper.error().message;
  EXPECT_EQ(upper->log_level, "warn");
}

TEST(LoadConfig, YamlSyntaxErrorNamesFileAndLine) {
  auto r = load_config_text("sip:\n  listen: [udp:1.2.3.4:5\n", "broken.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "config.syntax");
  EXPECT_THAT(r.error().message, HasSubstr("broken.yaml:"));
  EXPECT_THAT(r.error().message, HasSubstr("YAML syntax error"));
  auto tabs = load_config_text("sip:\n\tmax_sessions: 5\n", "tabs.yaml");
  ASSERT_FALSE(tabs.ok());
  EXPECT_THAT(tabs.error().message, HasSubstr("tabs.yaml:"));
  auto two = load_config_text("sip: {}\n---\nsip: {}\n", "two.yaml");
  ASSERT_FALSE(two.ok());
  EXPECT_THAT(two.error().message, HasSubstr("expected one YAML document"));
}

TEST(LoadConfigFile, MissingFileNamesIt) {
  auto r = load_config_file("/nonexistent/siprecd.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "config.file");
  EXPECT_THAT(r.error().message, HasSubstr("/nonexistent/siprecd.yaml: cannot open config file"));
}

TEST(LoadConfigFile, DirectoryIsAnError) {
  auto r = load_config_file(std::filesystem::temp_directory_path().string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "config.file");
}

TEST(LoadConfigFile, ReadsFileAndNamesItInErrors) {
  auto dir = std::filesystem::temp_directory_path() /
             ("sgw_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto good = (dir / "good.yaml").string();
  auto bad = (dir / "bad.yaml").string();
  std::ofstream(good) << kFullExample;
  std::ofstream(bad) << "node:\n  name: gw\nsip:\n  max_sessions: lots\n";
  auto r = load_config_file(good);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->node_name, "gw-eu-1");
  auto e = load_config_file(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, bad + ":4: sip.max_sessions: expected an unsigned integer, got 'lots'");
  std::filesystem::remove_all(dir);
}

TEST(ParseListen, V4V6AndErrors) {
  auto v4 = parse_listen("udp:127.0.0.1:5060");
  ASSERT_TRUE(v4.ok()) << v4.error().message;
  EXPECT_EQ(v4->transport, Transport::kUdp);
  EXPECT_EQ(v4->address, "127.0.0.1");
  EXPECT_EQ(v4->port, 5060);
  EXPECT_EQ(v4->to_string(), "udp:127.0.0.1:5060");

  auto v6 = parse_listen("tcp:[::1]:5080");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->transport, Transport::kTcp);
  EXPECT_EQ(v6->address, "::1");
  EXPECT_EQ(v6->port, 5080);
  EXPECT_EQ(v6->to_string(), "tcp:[::1]:5080");

  auto canon = parse_listen("TCP:[2001:DB8:0:0::1]:65535");
  ASSERT_TRUE(canon.ok()) << canon.error().message;
  EXPECT_EQ(canon->to_string(), "tcp:[2001:db8::1]:65535");

  for (const char* bad : {"", "udp", "udp:", "sctp:127.0.0.1:5060", "dtls:127.0.0.1:5061",
                          "udp:127.0.0.1", "udp:127.0.0.1:", "udp:127.0.0.1:0", "udp:127.0.0.1:65536",
                          "udp:127.0.0.1:50a", "udp:127.0.0.1:+5", "udp:localhost:5060",
                          "udp:::1:5060", "udp:[::1]5060", "udp:[::1:5060", "udp:[127.0.0.1]:5060",
                          "udp:1.2.3:5060", "udp:1.2.3.256:5060", "udp: 127.0.0.1:5060"}) {
    auto r = parse_listen(bad);
    EXPECT_FALSE(r.ok()) << "accepted '" << bad << "'";
    if (!r.ok()) {
      EXPECT_THAT(r.error().message, HasSubstr(std::string("got '") + bad + "'"));
    }
  }
}

TEST(ParseHostPort, Forms) {
  auto v4 = parse_host_port("0.0.0.0:8080");
  ASSERT_TRUE(v4.ok()) << v4.error().message;
  EXPECT_EQ(v4->address, "0.0.0.0");
  EXPECT_EQ(v4->port, 8080);
  auto v6 = parse_host_port("[::]:9090");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->address, "::");
  EXPECT_EQ(v6->port, 9090);
  EXPECT_FALSE(parse_host_port("8080").ok());
  EXPECT_FALSE(parse_host_port(":8080").ok());
  EXPECT_FALSE(parse_host_port("[::1]").ok());
}

TEST(Validate, CatchesProgrammaticMistakes) {
  Config c = default_config();
  c.listen.clear();
  EXPECT_THAT(validate(c).error().message, HasSubstr("sip.listen: at least one"));
  c = default_config();
  c.listen.push_back(c.listen.front());
  EXPECT_THAT(validate(c).error().message, HasSubstr("sip.listen: duplicate entry 'udp:127.0.0.1:5060'"));
  c = default_config();
  c.listen[0].address = "[::1]";
  EXPECT_THAT(validate(c).error().message, HasSubstr("sip.listen: expected a literal"));
  c = default_config();
  c.rtp_port_min = 3;
  EXPECT_THAT(validate(c).error().message, HasSubstr("media.rtp_ports"));
  c = default_config();
  c.codecs = {"pcma"};
  EXPECT_THAT(validate(c).error().message, HasSubstr("media.codecs: use the canonical spelling PCMA"));
  c = default_config();
  c.spool_dir.clear();
  EXPECT_THAT(validate(c).error().message, HasSubstr("recording.spool_dir: must not be empty"));
  c = default_config();
  c.log_level = "loud";
  EXPECT_THAT(validate(c).error().message, HasSubstr("log.level"));
  c = default_config();
  c.conversation_id_rules.push_back("nope");
  EXPECT_THAT(validate(c).error().message, HasSubstr("metadata.conversation_id_rules[7]"));
  c = default_config();
  c.http_listen = "1.2.3.4:99999";
  EXPECT_THAT(validate(c).error().message, HasSubstr("http.listen: expected a port"));
}

TEST(ApplyOverrides, FlagsWinOverFileAndListenReplaces) {
  auto file = load_config_text(kFullExample, "example.yaml");
  ASSERT_TRUE(file.ok()) << file.error().message;
  CliOverrides o;
  o.listen = {"tcp:[::1]:5070", "udp:10.0.0.1:5070"};
  o.media_address = "10.0.0.2";
  o.rtp_ports = "30000-30099";
  o.recordings_dir = "/rec";
  o.spool_dir = "/spool";
  o.http_listen = "[::1]:9000";
  o.log_level = "TRACE";
  auto r = apply_overrides(*file, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->listen.size(), 2u);  // replaced, not appended to the file's three
  EXPECT_EQ(r->listen[0].to_string(), "tcp:[::1]:5070");
  EXPECT_EQ(r->listen[1].to_string(), "udp:10.0.0.1:5070");
  EXPECT_EQ(r->media_address, "10.0.0.2");
  EXPECT_EQ(r->rtp_port_min, 30000);
  EXPECT_EQ(r->rtp_port_max, 30099);
  EXPECT_EQ(r->recordings_dir, "/rec");
  EXPECT_EQ(r->spool_dir, "/spool");
  EXPECT_EQ(r->http_listen, "[::1]:9000");
  EXPECT_EQ(r->log_level, "trace");
  // Untouched keys keep the file's values.
  EXPECT_EQ(r->node_name, "gw-eu-1");
  EXPECT_EQ(r->media_workers, 4u);
}

TEST(ApplyOverrides, EmptyOverridesChangeNothing) {
  auto file = load_config_text(kFullExample, "example.yaml");
  ASSERT_TRUE(file.ok());
  auto r = apply_overrides(*file, CliOverrides{});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->listen.size(), 3u);
  EXPECT_EQ(r->http_listen, "127.0.0.1:8080");
}

TEST(ApplyOverrides, ErrorsNameTheFlag) {
  const auto err = [](CliOverrides o) {
    auto r = apply_overrides(default_config(), o);
    return r.ok() ? std::string("<ok>") : r.error().message;
  };
  CliOverrides o;
  o.rtp_ports = "20000-10000";
  EXPECT_THAT(err(o), HasSubstr("--rtp-ports: expected MIN-MAX"));
  o = {};
  o.listen = {"udp:127.0.0.1:5060", "bogus"};
  EXPECT_THAT(err(o), HasSubstr("--listen: expected udp:ADDR:PORT, tcp:ADDR:PORT or tls:ADDR:PORT, got 'bogus'"));
  o = {};
  o.listen = {"udp:127.0.0.1:5060", "udp:127.0.0.1:5060"};
  EXPECT_THAT(err(o), HasSubstr("--listen: duplicate entry"));
  o = {};
  o.media_address = "host.example";
  EXPECT_THAT(err(o), HasSubstr("--media-address: expected a literal"));
  o = {};
  o.http_listen = "8080";
  EXPECT_THAT(err(o), HasSubstr("--http: expected ADDR:PORT"));
  o = {};
  o.log_level = "chatty";
  EXPECT_THAT(err(o), HasSubstr("--log-level: expected one of"));
  o = {};
  o.recordings_dir = "var/spool";  // same as the default spool dir
  EXPECT_THAT(err(o), HasSubstr("recording.spool_dir: must differ from recording.dir"));
}

}  // namespace
}  // namespace sgw::app

namespace sgw::app {
namespace {

TEST(StorageConfig, DefaultsAndQueueDir) {
  Config c = default_config();
  EXPECT_EQ(c.local_retention_days, 30u);
  EXPECT_TRUE(c.s3_bucket.empty());
  EXPECT_EQ(c.s3_key_template, "{region}/{yyyy}/{mm}/{dd}/{conversation_id}/{recording_id}");
  EXPECT_EQ(c.s3_multipart_threshold_mb, 16u);
  EXPECT_EQ(c.s3_part_size_mb, 8u);
  EXPECT_EQ(c.s3_parallel_uploads, 4u);
  EXPECT_EQ(c.s3_max_backoff_s, 300u);
  EXPECT_EQ(delivery_queue_dir(c), "var/deliveries");
  c.spool_dir = "/var/lib/siprecd/spool/";
  EXPECT_EQ(delivery_queue_dir(c), "/var/lib/siprecd/deliveries");
  c.spool_dir = "spool";
  EXPECT_EQ(delivery_queue_dir(c), "deliveries");
  c.queue_dir = "/q";
  EXPECT_EQ(delivery_queue_dir(c), "/q");
}

TEST(StorageConfig, AllS3Keys) {
  auto r = load_config_text(R"yaml(
storage:
  queue_dir: /var/lib/siprecd/deliveries
  local_retention_days: 0
s3:
  bucket: recs
  endpoint: http://127.0.0.1:7480
  region: eu-central-1
  path_style: true
  prefix: tenant-a
  key_template: "{yyyy}/{recording_id}"
  retention_mode: COMPLIANCE
  retention_years: 7
  legal_hold: true
  sse: aws:kms
  kms_key_id: arn:aws:kms:eu-central-1:111122223333:key/abc
  tags: {source: siprec, env: prod}
  multipart_threshold_mb: 64
  part_size_mb: 16
  parallel_uploads: 8
  max_backoff_s: 60
  access_key: AK
  secret_key: SK
  session_token: TOK
  profile: rec
  ca_file: /etc/ssl/ca.pem
)yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->queue_dir, "/var/lib/siprecd/deliveries");
  EXPECT_EQ(r->local_retention_days, 0u);
  EXPECT_EQ(r->s3_bucket, "recs");
  EXPECT_TRUE(r->s3_path_style);
  EXPECT_EQ(r->s3_retention_mode, "COMPLIANCE");
  EXPECT_EQ(r->s3_retention_years, 7u);
  EXPECT_TRUE(r->s3_legal_hold);
  EXPECT_EQ(r->s3_sse, "aws:kms");
  EXPECT_EQ(r->s3_tags.at("env"), "prod");
  EXPECT_EQ(r->s3_part_size_mb, 16u);
  EXPECT_EQ(r->s3_profile, "rec");
}

TEST(StorageConfig, ErrorsNameTheKey) {
  auto err = [](const std::string& yaml) {
    auto r = load_config_text(yaml, "f.yaml");
    EXPECT_FALSE(r.ok()) << yaml;
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_THAT(err("s3:\n  bucket: b\n  retention_mode: COMPLIANCE\n"), HasSubstr("s3.retention_days: required"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  retention_mode: STRICT\n"), HasSubstr("f.yaml:3: s3.retention_mode:"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  retention_mode: GOVERNANCE\n  retention_days: 1\n  retention_years: 1\n"),
              HasSubstr("s3.retention_years: give s3.retention_days or s3.retention_years, not both"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  retention_days: 3\n"), HasSubstr("s3.retention_mode: required"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  part_size_mb: 4\n"), HasSubstr("s3.part_size_mb: expected 5-5120"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  multipart_threshold_mb: 0\n"), HasSubstr("s3.multipart_threshold_mb"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  parallel_uploads: 0\n"), HasSubstr("s3.parallel_uploads"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  endpoint: ftp://x\n"), HasSubstr("s3.endpoint: expected http://"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  sse: yes-please\n"), HasSubstr("s3.sse:"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  kms_key_id: k\n"), HasSubstr("s3.kms_key_id: needs s3.sse: aws:kms"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  access_key: AK\n"), HasSubstr("s3.secret_key"));
  EXPECT_THAT(err("s3:\n  endpoint: http://x\n"), HasSubstr("s3.bucket: required"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  tags: [a, b]\n"), HasSubstr("s3.tags: expected a map"));
  EXPECT_THAT(err("s3:\n  bucket: b\n  prefix: /abs\n"), HasSubstr("s3.prefix"));
  EXPECT_THAT(err("s3:\n  buckett: b\n"), HasSubstr("did you mean 's3.bucket'?"));
  EXPECT_THAT(err("storage:\n  local_retention_days: -1\n"), HasSubstr("storage.local_retention_days"));
}

TEST(StorageConfig, QuickStartFlags) {
  CliOverrides o;
  o.s3_bucket = "recs";
  o.s3_endpoint = "http://127.0.0.1:9000";
  o.s3_region = "eu-west-1";
  o.s3_path_style = true;
  o.s3_prefix = "p";
  o.retention_mode = "compliance";
  o.retention_days = "2555";
  auto r = apply_overrides(default_config(), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->s3_bucket, "recs");
  EXPECT_EQ(r->s3_region, "eu-west-1");
  EXPECT_TRUE(r->s3_path_style);
  EXPECT_EQ(r->s3_retention_mode, "COMPLIANCE");
  EXPECT_EQ(r->s3_retention_days, 2555u);
  o.retention_days = "x";
  EXPECT_THAT(apply_overrides(default_config(), o).error().message, HasSubstr("--retention-days"));
  o.retention_days = "";
  auto need_days = apply_overrides(default_config(), o);
  ASSERT_FALSE(need_days.ok());
  EXPECT_THAT(need_days.error().message, HasSubstr("s3.retention_days: required"));
  o.retention_mode = "soft";
  EXPECT_THAT(apply_overrides(default_config(), o).error().message, HasSubstr("--retention-mode"));
}

}  // namespace
}  // namespace sgw::app

namespace sgw::app {
namespace {
using ::testing::HasSubstr;

TEST(LoadConfig, TlsSectionAndItsRules) {
  auto r = load_config_text(
      "sip:\n  listen: [tls:127.0.0.1:5061, udp:127.0.0.1:5060]\n"
      "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  ca_file: /ca.pem\n  verify_client: true\n"
      "  allowed_subjects: ['*.sbc.test']\n  ciphers: ECDHE+AESGCM\n  min_version: '1.3'\n"
      "  handshake_timeout_ms: 5000\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->listen[0].transport, Transport::kTls);
  EXPECT_EQ(r->listen[0].to_string(), "tls:127.0.0.1:5061");
  EXPECT_TRUE(r->tls_verify_client);
  EXPECT_EQ(r->tls_allowed_subjects, std::vector<std::string>{"*.sbc.test"});
  EXPECT_EQ(r->tls_min_version, "1.3");
  EXPECT_EQ(r->tls_handshake_timeout_ms, 5000u);

  EXPECT_THAT(error_of("sip:\n  listen: [tls:127.0.0.1:5061]\n"), HasSubstr("tls.cert_file: required"));
  EXPECT_THAT(error_of("sip:\n  listen: [tls:127.0.0.1:5061]\ntls:\n  cert_file: /c.pem\n"),
              HasSubstr("tls.key_file: required"));
  EXPECT_THAT(error_of("tls:\n  verify_client: true\n"), HasSubstr("tls.ca_file: required"));
  EXPECT_THAT(error_of("tls:\n  allowed_subjects: [a]\n"), HasSubstr("tls.allowed_subjects: needs"));
  EXPECT_THAT(error_of("tls:\n  min_version: '1.1'\n"), HasSubstr("tls.min_version"));
  EXPECT_THAT(error_of("tls:\n  handshake_timeout_ms: 5\n"), HasSubstr("tls.handshake_timeout_ms"));
  EXPECT_THAT(error_of("sip:\n  listen: [tcp:127.0.0.1:5061, tls:127.0.0.1:5061]\n"),
              HasSubstr("share a TCP port"));
  EXPECT_THAT(error_of("sip:\n  listen: [dtls:127.0.0.1:5061]\n"), HasSubstr("udp, tcp or tls"));
}

TEST(LoadConfig, EventsSection) {
  auto r = load_config_text("events:\n  url: https://h.example/e\n  secret: 0123456789abcdef\n  timeout_ms: 800\n"
                            "  max_backoff_s: 5\n",
                            "e.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->events_url, "https://h.example/e");
  EXPECT_EQ(r->events_secret, "0123456789abcdef");
  EXPECT_EQ(r->events_timeout_ms, 800u);
  EXPECT_EQ(r->events_max_backoff_s, 5u);
  auto d = load_config_text("", "d.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->events_url.empty());
  EXPECT_EQ(d->events_timeout_ms, 5000u);
  EXPECT_EQ(d->events_max_backoff_s, 60u);
  for (const char* bad : {"events:\n  url: http://h/e\n", "events:\n  url: http://h/e\n  secret: short\n",
                          "events:\n  url: ftp://h/e\n  secret: 0123456789abcdef\n",
                          "events:\n  timeout_ms: 5\n", "events:\n  max_backoff_s: 0\n", "events:\n  urll: x\n"}) {
    auto e = load_config_text(bad, "b.yaml");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_THAT(e.error().message, ::testing::HasSubstr("events.")) << e.error().message;
  }
}

TEST(LoadConfig, HooksSection) {
  auto r = load_config_text("hooks:\n  invite_url: http://127.0.0.1:9000/i\n  timeout_ms: 250\n  on_error: reject\n",
                            "h.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->hooks_invite_url, "http://127.0.0.1:9000/i");
  EXPECT_EQ(r->hooks_timeout_ms, 250u);
  EXPECT_EQ(r->hooks_on_error, "reject");
  auto d = load_config_text("", "d.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->hooks_timeout_ms, 300u);
  EXPECT_EQ(d->hooks_on_error, "record");
  EXPECT_TRUE(d->hooks_invite_url.empty());
  for (const char* bad : {"hooks:\n  on_error: maybe\n", "hooks:\n  invite_url: ftp://x\n",
                          "hooks:\n  timeout_ms: 0\n", "hooks:\n  update_url: localhost:80\n"}) {
    auto e = load_config_text(bad, "b.yaml");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_THAT(e.error().message, ::testing::HasSubstr("hooks.")) << e.error().message;
  }
}

TEST(LoadConfig, ResidencyFallbackBucketsStayInTheirZone) {
  const std::string base = "s3:\n  bucket: recs-a\n";
  auto r = load_config_text(base + "  zone: uk\n  fallback_after_s: 30\n  fallback_buckets:\n"
                                   "    - {bucket: recs-b, zone: uk}\n    - {bucket: recs-c, zone: uk}\n",
                            "test.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->s3_zone, "uk");
  EXPECT_EQ(r->s3_fallback_after_s, 30u);
  ASSERT_EQ(r->s3_fallback_buckets.size(), 2u);
  EXPECT_EQ(r->s3_fallback_buckets[1].bucket, "recs-c");
  EXPECT_EQ(r->s3_fallback_buckets[1].zone, "uk");
  EXPECT_EQ(Config{}.s3_fallback_after_s, 300u);

  const std::string cross = error_of(base + "  zone: uk\n  fallback_buckets:\n    - {bucket: recs-b, zone: uk}\n"
                                            "    - {bucket: recs-fra, zone: eu}\n");
  EXPECT_THAT(cross, HasSubstr("s3.fallback_buckets[1].zone"));
  EXPECT_THAT(cross, HasSubstr("recs-fra is in zone 'eu'"));
  EXPECT_THAT(error_of(base + "  fallback_buckets:\n    - {bucket: recs-b, zone: uk}\n"), HasSubstr("s3.zone: required"));
  EXPECT_THAT(error_of(base + "  zone: uk\n  fallback_buckets:\n    - {bucket: recs-b}\n"),
              HasSubstr("s3.fallback_buckets[0].zone: required"));
  EXPECT_THAT(error_of(base + "  zone: uk\n  fallback_buckets:\n    - {bucket: recs-a, zone: uk}\n"),
              HasSubstr("s3.fallback_buckets[0].bucket: is s3.bucket"));
  EXPECT_THAT(error_of(base + "  zone: uk\n  fallback_buckets:\n    - {bucket: recs-b, zone: uk, region: x}\n"),
              HasSubstr("s3.fallback_buckets[0].region"));
  EXPECT_THAT(error_of(base + "  zone: uk\n  fallback_buckets: recs-b\n"), HasSubstr("s3.fallback_buckets"));
  EXPECT_THAT(error_of(base + "  fallback_after_s: 0\n"), HasSubstr("s3.fallback_after_s"));
}

}  // namespace
}  // namespace sgw::app
