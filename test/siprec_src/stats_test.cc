#include "siprec_src/stats.h"

#include <gtest/gtest.h>

namespace sgw::siprec_src {
namespace {

TEST(Percentile, NearestRank) {
  EXPECT_EQ(percentile({}, 50), 0);
  EXPECT_EQ(percentile({7}, 99), 7);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 50), 2);  // rank ceil(0.5*4) = 2
  EXPECT_EQ(percentile({4, 1, 3, 2}, 75), 3);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 100), 4);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 0), 1);
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  EXPECT_EQ(percentile(v, 99), 99);
  EXPECT_EQ(percentile(v, 50), 50);
  EXPECT_EQ(percentile(v, 99.5), 100);
}

TEST(Percentile, OutliersShowOnlyAtTheTop) {
  std::vector<double> v(1000, 2.0);
  v[10] = 500;  // one slow call in a thousand
  auto s = summarize(v);
  EXPECT_EQ(s.count, 1000u);
  EXPECT_EQ(s.p50, 2);
  EXPECT_EQ(s.p99, 2);
  EXPECT_EQ(s.max, 500);
  EXPECT_NEAR(s.mean, 2.498, 1e-9);
}

}  // namespace
}  // namespace sgw::siprec_src
