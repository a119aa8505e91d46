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

// Prometheus histogram: cumulative le buckets (a value equal to a bound is in
// that bucket), +Inf, _sum and _count.
TEST(MetricsRegistryTest, RendersHistogramBuckets) {
  MetricsRegistry r;
  auto& h = r.histogram("sgw_setup_latency_seconds", "Setup latency", {0.01, 0.1, 1});
  h.observe(0.005);
  h.observe(0.1);
  h.observe(0.5);
  h.observe(7);
  std::string text = r.render();
  EXPECT_NE(text.find("# TYPE sgw_setup_latency_seconds histogram\n"
                      "sgw_setup_latency_seconds_bucket{le=\"0.01\"} 1\n"
                      "sgw_setup_latency_seconds_bucket{le=\"0.1\"} 2\n"
                      "sgw_setup_latency_seconds_bucket{le=\"1\"} 3\n"
                      "sgw_setup_latency_seconds_bucket{le=\"+Inf\"} 4\n"
                      "sgw_setup_latency_seconds_sum 7.605\n"
                      "sgw_setup_latency_seconds_count 4\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace sgw::common
