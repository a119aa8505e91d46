#include "app/cli.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sgw::app {
namespace {

using ::testing::HasSubstr;

// Owns argv storage for one parse_cli call.
common::Result<CliOptions> parse(std::initializer_list<std::string> args) {
  std::vector<std::string> storage{"siprecd"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  return parse_cli(static_cast<int>(storage.size()), argv.data());
}

TEST(ParseCli, NoArguments) {
  auto r = parse({});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->config_file.empty());
  EXPECT_TRUE(r->check_config_file.empty());
  EXPECT_TRUE(r->overrides.listen.empty());
  EXPECT_FALSE(r->show_version);
  EXPECT_FALSE(r->help_shown);
}

TEST(ParseCli, AllFlags) {
  auto r = parse({"--config", "/etc/siprecd.yaml", "--listen", "udp:0.0.0.0:5060", "--listen=tcp:[::1]:5060",
                  "--media-address", "10.1.2.3", "--rtp-ports", "30000-31000", "--recordings-dir", "/rec",
                  "--spool-dir", "/spool", "--http", "127.0.0.1:8080", "--log-level", "debug"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->config_file, "/etc/siprecd.yaml");
  EXPECT_EQ(r->overrides.listen, (std::vector<std::string>{"udp:0.0.0.0:5060", "tcp:[::1]:5060"}));
  EXPECT_EQ(r->overrides.media_address, "10.1.2.3");
  EXPECT_EQ(r->overrides.rtp_ports, "30000-31000");
  EXPECT_EQ(r->overrides.recordings_dir, "/rec");
  EXPECT_EQ(r->overrides.spool_dir, "/spool");
  EXPECT_EQ(r->overrides.http_listen, "127.0.0.1:8080");
  EXPECT_EQ(r->overrides.log_level, "debug");
}

TEST(ParseCli, ListenTakesOneValuePerFlag) {
  // A second bare word after --listen is not swallowed as another listen address.
  auto r = parse({"--listen", "udp:127.0.0.1:5060", "stray"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "cli.usage");
}

TEST(ParseCli, UnknownFlagIsAnError) {
  auto r = parse({"--lisen", "udp:127.0.0.1:5060"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "cli.usage");
  EXPECT_THAT(r.error().message, HasSubstr("--lisen"));
}

TEST(ParseCli, MissingValueIsAnError) {
  auto r = parse({"--config"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "cli.usage");
  EXPECT_THAT(r.error().message, HasSubstr("--config"));
}

TEST(ParseCli, ConfigAndCheckConfigExclude) {
  auto r = parse({"--config", "a.yaml", "--check-config", "b.yaml"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "cli.usage");
}

TEST(ParseCli, HelpAndVersion) {
  auto h = parse({"--help"});
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_TRUE(h->help_shown);
  for (const char* flag : {"--config", "--check-config", "--listen", "--media-address", "--rtp-ports",
                           "--recordings-dir", "--spool-dir", "--http", "--log-level", "--version"})
    EXPECT_THAT(h->help_text, HasSubstr(flag));
  auto short_help = parse({"-h"});
  ASSERT_TRUE(short_help.ok());
  EXPECT_TRUE(short_help->help_shown);
  auto v = parse({"--version"});
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_TRUE(v->show_version);
  EXPECT_FALSE(v->help_shown);
}

class ResolveConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sgw_cli_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ResolveConfig, DefaultsOnly) {
  auto r = resolve_config(CliOptions{});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->listen.size(), 2u);
  EXPECT_EQ(r->log_level, "info");
}

TEST_F(ResolveConfig, DefaultsThenFileThenFlags) {
  auto path = write("s.yaml",
                    "sip:\n  listen: [udp:0.0.0.0:5060, tcp:0.0.0.0:5060]\n  max_sessions: 50\n"
                    "log:\n  level: warn\n");
  auto opts = parse({"--config", path, "--listen", "udp:127.0.0.1:6060", "--log-level", "error"});
  ASSERT_TRUE(opts.ok()) << opts.error().message;
  auto r = resolve_config(*opts);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->listen.size(), 1u);                    // flag replaced the file's list
  EXPECT_EQ(r->listen[0].to_string(), "udp:127.0.0.1:6060");
  EXPECT_EQ(r->log_level, "error");                   // flag beats file
  EXPECT_EQ(r->max_sessions, 50u);                    // file beats default
  EXPECT_EQ(r->media_timeout_s, 60u);                 // default
}

TEST_F(ResolveConfig, CheckConfigUsesThatFile) {
  auto path = write("c.yaml", "node:\n  region: us-east-1\n");
  auto opts = parse({"--check-config", path});
  ASSERT_TRUE(opts.ok()) << opts.error().message;
  EXPECT_EQ(opts->check_config_file, path);
  auto r = resolve_config(*opts);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->region, "us-east-1");
}

TEST_F(ResolveConfig, FileErrorsNameFileAndKey) {
  auto path = write("bad.yaml", "media:\n  rtp_ports: 9-8\n");
  auto opts = parse({"--config", path});
  ASSERT_TRUE(opts.ok());
  auto r = resolve_config(*opts);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr(path + ":2: media.rtp_ports: expected MIN-MAX"));
}

TEST_F(ResolveConfig, MissingFile) {
  auto opts = parse({"--config", (dir_ / "missing.yaml").string()});
  ASSERT_TRUE(opts.ok());
  auto r = resolve_config(*opts);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("missing.yaml: cannot open config file"));
}

TEST_F(ResolveConfig, FlagErrorsNameTheFlag) {
  auto opts = parse({"--rtp-ports", "5-4"});
  ASSERT_TRUE(opts.ok());
  auto r = resolve_config(*opts);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("--rtp-ports: expected MIN-MAX"));
}

}  // namespace
}  // namespace sgw::app

namespace sgw::app {
namespace {

TEST(ParseCli, S3QuickStartFlags) {
  auto r = parse({"--s3-bucket", "recs", "--s3-endpoint", "http://127.0.0.1:7480", "--s3-region", "us-east-1",
                  "--s3-path-style", "--s3-prefix", "gw", "--retention-mode", "COMPLIANCE", "--retention-days", "7"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->overrides.s3_bucket, "recs");
  EXPECT_TRUE(r->overrides.s3_path_style);
  EXPECT_EQ(r->overrides.retention_days, "7");
  EXPECT_FALSE(r->deliveries);
}

TEST(ParseCli, DeliveriesSubcommand) {
  auto l = parse({"deliveries"});
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_TRUE(l->deliveries);
  EXPECT_EQ(l->deliveries_action, "list");
  auto j = parse({"deliveries", "--config", "/etc/s.yaml", "--json", "list"});
  ASSERT_TRUE(j.ok()) << j.error().message;
  EXPECT_EQ(j->config_file, "/etc/s.yaml");
  EXPECT_TRUE(j->deliveries_json);
  auto rt = parse({"deliveries", "--spool-dir", "/s", "retry", "rec-1", "--sink", "s3"});
  ASSERT_TRUE(rt.ok()) << rt.error().message;
  EXPECT_EQ(rt->deliveries_action, "retry");
  EXPECT_EQ(rt->deliveries_id, "rec-1");
  EXPECT_EQ(rt->overrides.spool_dir, "/s");
  EXPECT_FALSE(parse({"deliveries", "retry"}).ok());
  EXPECT_FALSE(parse({"deliveries", "purge"}).ok());
  EXPECT_FALSE(parse({"deliveries", "list", "x"}).ok());
}

}  // namespace
}  // namespace sgw::app
