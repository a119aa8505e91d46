#include "siprec_src/tone.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sgw::siprec_src {
namespace {

std::vector<float> to_float(const std::vector<std::int16_t>& v) {
  std::vector<float> out;
  for (auto s : v) out.push_back(static_cast<float>(s) / 32768.0f);
  return out;
}

TEST(Tone, MakeToneHasTheAmplitudeAsked) {
  auto t = make_tone(1000, 8000, 800, 0.5);
  auto f = to_float(t);
  EXPECT_NEAR(mean_square(f), 0.125, 0.002);  // (0.5)^2 / 2
  EXPECT_EQ(t[0], 0);
}

TEST(Tone, GoertzelFindsTheToneAndNotTheOther) {
  auto f = to_float(make_tone(440, 8000, 800));
  EXPECT_TRUE(check_tone(f, 440, 8000).present);
  EXPECT_GT(check_tone(f, 440, 8000).ratio, 0.9);
  EXPECT_FALSE(check_tone(f, 1000, 8000).present);
  EXPECT_LT(check_tone(f, 1000, 8000).ratio, 0.05);
  auto g = to_float(make_tone(1000, 16000, 1600));
  EXPECT_TRUE(check_tone(g, 1000, 16000).present);
  EXPECT_FALSE(check_tone(g, 440, 16000).present);
}

TEST(Tone, SilenceIsNoTone) {
  std::vector<float> z(800, 0.0f);
  auto c = check_tone(z, 440, 8000);
  EXPECT_FALSE(c.present);
  EXPECT_EQ(c.rms, 0);
}

TEST(Tone, MixtureIsNotDominatedByEither) {
  auto a = make_tone(440, 8000, 800);
  auto b = make_tone(1000, 8000, 800);
  std::vector<float> m;
  for (std::size_t i = 0; i < a.size(); ++i) m.push_back((a[i] + b[i]) / 65536.0f);
  EXPECT_FALSE(check_tone(m, 440, 8000, 0.6).present);
  EXPECT_FALSE(check_tone(m, 1000, 8000, 0.6).present);
  EXPECT_NEAR(check_tone(m, 440, 8000).ratio, 0.5, 0.05);
}

}  // namespace
}  // namespace sgw::siprec_src
