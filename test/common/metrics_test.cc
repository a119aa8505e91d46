#include "common/metrics.h"

#include <gtest/gtest.h>

namespace sgw::common {
namespace {

TEST(MetricsRegistryTest, RendersPrometheusText) {
  MetricsRegistry r;
  auto& c = r.counter("sgw_rtp_packets_received_total", "RTP packets received");
  auto& g = r.gauge("sgw_active_sessions", "Active recording sessions");
  auto& l = r.labelled_counter("sgw_invites_total", "INVITEs by final response code", "code");
  c.inc(3);
  g.set(2);
  l.with("200").inc();
  l.with("488").inc(2);
  std::string text = r.render();
  EXPECT_NE(text.find("# TYPE sgw_rtp_packets_received_total counter\nsgw_rtp_packets_received_total 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("sgw_active_sessions 2\n"), std::string::npos);
  EXPECT_NE(text.find("sgw_invites_total{code=\"488\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("sgw_invites_total{code=\"200\"} 1\n"), std::string::npos);
}

}  // namespace
}  // namespace sgw::common
