// sgw-audio-probe FILE [--window-ms N] [--silence-dbfs X] [--freq-tolerance-hz N]
//                      [--min-segment-ms N]
//
// Describes the content of an audio file so integration tests can assert on
// it: per channel, the level, the dominant tone, how long it is active and
// where (contiguous non-silent stretches with their tone). Reads anything
// libsndfile reads (WAV PCM16/µ-law/A-law, FLAC, Ogg/Opus, ...). Prints one
// JSON object on stdout; exit 1 with a message on stderr for an unreadable
// file, 2 for bad arguments. See docs/codecs.md for the output format.
//
// Method: the file is cut into windows (20 ms by default). A window is active
// when its RMS is above the silence threshold (-50 dBFS by default, 0 dBFS =
// full-scale square wave). Each active window gets a Hann-windowed Goertzel
// scan over 50..4000 Hz in 10 Hz steps, refined to 1 Hz around the peak. A
// segment is a run of active windows whose tone does not jump by more than the
// frequency tolerance from one window to the next; its "hz" is the peak of the
// segment's summed spectrum, refined by the median of its windows' peaks.
// Segments shorter than --min-segment-ms (default 0) are not listed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <sndfile.h>

namespace {

constexpr double kMinHz = 50;
constexpr double kMaxHz = 4000;
constexpr double kCoarseStep = 10;

struct Options {
  std::string file;
  double window_ms = 20;
  double silence_dbfs = -50;
  double freq_tolerance_hz = 25;  // 0: never split a segment on a change of tone
  double min_segment_ms = 0;      // shorter segments are left out of "segments"
};

std::optional<double> parse_number(std::string_view s) {
  std::string str(s);
  char* end = nullptr;
  double v = std::strtod(str.c_str(), &end);
  if (str.empty() || end != str.c_str() + str.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<Options> parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::optional<double> {
      if (i + 1 >= argc) return std::nullopt;
      return parse_number(argv[++i]);
    };
    if (a == "--window-ms") {
      auto v = value();
      if (!v || *v < 1 || *v > 10000) return std::nullopt;
      o.window_ms = *v;
    } else if (a == "--silence-dbfs") {
      auto v = value();
      if (!v || *v > 0) return std::nullopt;
      o.silence_dbfs = *v;
    } else if (a == "--freq-tolerance-hz") {
      auto v = value();
      if (!v || *v < 0) return std::nullopt;
      o.freq_tolerance_hz = *v;
    } else if (a == "--min-segment-ms") {
      auto v = value();
      if (!v || *v < 0) return std::nullopt;
      o.min_segment_ms = *v;
    } else if (a.starts_with("--") || !o.file.empty()) {
      return std::nullopt;
    } else {
      o.file = std::string(a);
    }
  }
  if (o.file.empty()) return std::nullopt;
  return o;
}

double to_dbfs(double rms) { return rms > 0 ? std::max(-120.0, 20 * std::log10(rms)) : -120.0; }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

class Spectrum {
 public:
  explicit Spectrum(double rate) : rate_(rate) {
    const double top = std::min(kMaxHz, rate / 2 - kCoarseStep);
    for (double hz = kMinHz; hz <= top; hz += kCoarseStep) grid_.push_back(hz);
  }
  const std::vector<double>& grid() const { return grid_; }

  double power(const std::vector<double>& x, double hz) const {
    const double coeff = 2 * std::cos(2 * std::numbers::pi * hz / rate_);
    double s1 = 0, s2 = 0;
    for (double v : x) {
      const double s0 = v + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    return std::max(0.0, s1 * s1 + s2 * s2 - coeff * s1 * s2);
  }

  // Fills `coarse` (one power per grid point) and returns the refined peak.
  double scan(const std::vector<double>& x, std::vector<double>& coarse) const {
    coarse.assign(grid_.size(), 0);
    std::size_t best = 0;
    for (std::size_t i = 0; i < grid_.size(); ++i) {
      coarse[i] = power(x, grid_[i]);
      if (coarse[i] > coarse[best]) best = i;
    }
    if (grid_.empty()) return 0;
    double best_hz = grid_[best], best_p = coarse[best];
    for (double hz = grid_[best] - kCoarseStep + 1; hz < grid_[best] + kCoarseStep; hz += 1) {
      if (hz < kMinHz || hz > rate_ / 2) continue;
      const double p = power(x, hz);
      if (p > best_p) best_p = p, best_hz = hz;
    }
    return best_hz;
  }

  // Tone of a stretch: peak of its summed coarse spectrum, refined by the
  // median of the per-window peaks near it.
  double summarise(const std::vector<double>& summed, const std::vector<double>& peaks) const {
    if (summed.empty() || peaks.empty()) return 0;
    const auto best = static_cast<std::size_t>(std::max_element(summed.begin(), summed.end()) - summed.begin());
    const double coarse_hz = grid_[best];
    std::vector<double> near;
    for (double p : peaks) {
      if (std::abs(p - coarse_hz) <= 1.5 * kCoarseStep) near.push_back(p);
    }
    return near.empty() ? coarse_hz : median(std::move(near));
  }

 private:
  double rate_;
  std::vector<double> grid_;
};

struct Segment {
  std::size_t start = 0, end = 0;  // frames
  double sumsq = 0;
  std::vector<double> spectrum;
  std::vector<double> peaks;
};

struct ChannelState {
  double sumsq = 0;
  std::size_t active_frames = 0;
  std::vector<double> spectrum;  // summed over active windows
  std::vector<double> peaks;
  std::optional<Segment> open;
  double last_peak = 0;
  std::vector<Segment> closed;
};

// Rounds to `decimals` places so the JSON prints short numbers.
double round_to(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_args(argc, argv);
  if (!opts) {
    std::fprintf(stderr,
                 "usage: sgw-audio-probe FILE [--window-ms N] [--silence-dbfs X] [--freq-tolerance-hz N]\n                       [--min-segment-ms N]\n");
    return 2;
  }
  SF_INFO info{};
  SNDFILE* sf = sf_open(opts->file.c_str(), SFM_READ, &info);
  if (sf == nullptr) {
    std::fprintf(stderr, "sgw-audio-probe: cannot read %s: %s\n", opts->file.c_str(), sf_strerror(nullptr));
    return 1;
  }
  if (info.channels <= 0 || info.samplerate <= 0) {
    std::fprintf(stderr, "sgw-audio-probe: %s: bad format (channels %d, rate %d)\n", opts->file.c_str(),
                 info.channels, info.samplerate);
    sf_close(sf);
    return 1;
  }

  const auto channels = static_cast<std::size_t>(info.channels);
  const double rate = info.samplerate;
  const auto window = std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(rate * opts->window_ms / 1000)));
  const double threshold = std::pow(10.0, opts->silence_dbfs / 20);
  const Spectrum spectrum(rate);
  auto ms = [&](std::size_t frames) { return round_to(static_cast<double>(frames) * 1000 / rate, 3); };

  std::vector<ChannelState> ch(channels);
  std::vector<float> interleaved(window * channels);
  std::vector<double> x, coarse;
  std::vector<double> hann;
  std::size_t pos = 0;  // frames read so far
  bool read_error = false;

  auto close_segment = [&](ChannelState& c) {
    if (c.open) {
      c.closed.push_back(std::move(*c.open));
      c.open.reset();
    }
  };

  while (true) {
    const sf_count_t got = sf_readf_float(sf, interleaved.data(), static_cast<sf_count_t>(window));
    if (got < 0) {
      read_error = true;
      break;
    }
    if (got == 0) break;
    const auto n = static_cast<std::size_t>(got);
    if (hann.size() != n) {
      hann.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        hann[i] = n > 1 ? 0.5 - 0.5 * std::cos(2 * std::numbers::pi * static_cast<double>(i) /
                                                static_cast<double>(n - 1))
                        : 1.0;
      }
    }
    for (std::size_t c = 0; c < channels; ++c) {
      auto& st = ch[c];
      double sumsq = 0;
      x.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        const double v = interleaved[i * channels + c];
        sumsq += v * v;
        x[i] = v * hann[i];
      }
      st.sumsq += sumsq;
      const double window_rms = std::sqrt(sumsq / static_cast<double>(n));
      if (window_rms <= threshold) {
        close_segment(st);
        continue;
      }
      st.active_frames += n;
      const double peak = spectrum.scan(x, coarse);
      if (st.open && opts->freq_tolerance_hz > 0 && std::abs(peak - st.last_peak) > opts->freq_tolerance_hz) {
        close_segment(st);
      }
      if (!st.open) {
        st.open.emplace();
        st.open->start = pos;
        st.open->spectrum.assign(coarse.size(), 0);
      }
      st.open->end = pos + n;
      st.open->sumsq += sumsq;
      st.open->peaks.push_back(peak);
      for (std::size_t i = 0; i < coarse.size(); ++i) st.open->spectrum[i] += coarse[i];
      if (st.spectrum.empty()) st.spectrum.assign(coarse.size(), 0);
      for (std::size_t i = 0; i < coarse.size(); ++i) st.spectrum[i] += coarse[i];
      st.peaks.push_back(peak);
      st.last_peak = peak;
    }
    pos += n;
    if (n < window) break;
  }
  sf_close(sf);
  if (read_error) {
    std::fprintf(stderr, "sgw-audio-probe: read error in %s\n", opts->file.c_str());
    return 1;
  }

  nlohmann::json out;
  out["file"] = opts->file;
  out["sample_rate"] = info.samplerate;
  out["channels"] = info.channels;
  out["frames"] = pos;
  out["duration_ms"] = ms(pos);
  out["window_ms"] = opts->window_ms;
  out["silence_dbfs"] = opts->silence_dbfs;
  auto stats = nlohmann::json::array();
  for (auto& st : ch) {
    close_segment(st);
    const double rms = pos > 0 ? std::sqrt(st.sumsq / static_cast<double>(pos)) : 0;
    nlohmann::json j;
    j["rms"] = round_to(rms, 6);
    j["rms_dbfs"] = round_to(to_dbfs(rms), 2);
    j["dominant_hz"] = spectrum.summarise(st.spectrum, st.peaks);
    j["active_ms"] = ms(st.active_frames);
    auto segs = nlohmann::json::array();
    for (const auto& s : st.closed) {
      if (ms(s.end - s.start) < opts->min_segment_ms) continue;  // e.g. codec ringing after a tone
      const double srms = std::sqrt(s.sumsq / static_cast<double>(s.end - s.start));
      segs.push_back({{"start_ms", ms(s.start)},
                      {"end_ms", ms(s.end)},
                      {"hz", spectrum.summarise(s.spectrum, s.peaks)},
                      {"rms", round_to(srms, 6)}});
    }
    j["segments"] = std::move(segs);
    stats.push_back(std::move(j));
  }
  out["channel_stats"] = std::move(stats);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
