#include "app/reload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sgw::app {
namespace {

using ::testing::ElementsAre;

TEST(Reloader, AppliesOwnedKeysAndNamesTheRest) {
  Config running = default_config();
  Config fresh = running;
  fresh.log_level = "debug";
  fresh.max_sessions = 5;
  fresh.rtp_port_min = 30000;
  fresh.http_listen = "127.0.0.1:9999";
  Reloader r;
  int log_calls = 0;
  r.add("log", {"log."}, [&](const Config&, const Config& f, ReloadReport& rep) {
    ++log_calls;
    rep.applied.push_back("log.level " + f.log_level);
  });
  r.add("limits", {"sip.max_sessions"}, [](const Config&, const Config&, ReloadReport&) {});
  auto rep = r.reload(running, fresh);
  EXPECT_EQ(log_calls, 1);
  EXPECT_THAT(rep.applied, ElementsAre("log.level debug"));
  EXPECT_THAT(rep.not_reloadable, ElementsAre("media.rtp_ports", "http.listen"));
}

TEST(Reloader, NothingChangedNothingReported) {
  Config c = default_config();
  EXPECT_TRUE(changed_keys(c, c).empty());
  EXPECT_TRUE(Reloader().reload(c, c).not_reloadable.empty());
}

}  // namespace
}  // namespace sgw::app
