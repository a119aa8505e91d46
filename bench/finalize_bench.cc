// sgw-finalize-bench: what the finaliser costs per RTP packet, away from the network
// (docs/performance.md "Finalisation"). Writes --calls synthetic spools (two G.711 streams of
// --seconds each, 20 ms packets with a little arrival jitter, as siprecd spools a call), then
// finalises them one after the other with the real Finalizer and prints the finaliser's CPU
// time per packet (thread CPU clock: other programs on the machine do not count, but they do
// slow the caches), the wall time, and the process's peak RSS growth.
//
//   sgw-finalize-bench [--calls N] [--seconds S] [--format wav|wav-ulaw|wav-alaw|flac|ogg-opus]
//                      [--codec PCMA|PCMU] [--dir DIR] [--keep]
//
// Figures only; nothing here passes or fails. Run it under `perf record -g` to see where the
// finaliser's time goes.
#include <sys/resource.h>
#include <time.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include "common/logging.h"
#include "media/codec.h"
#include "recording/finalizer.h"
#include "recording/spool_writer.h"

namespace {

using namespace sgw;

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double wall_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

long max_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "sgw-finalize-bench: %s\nusage: sgw-finalize-bench [--calls N] [--seconds S] "
               "[--format wav|wav-ulaw|wav-alaw|flac|ogg-opus] [--codec PCMA|PCMU] [--dir DIR] [--keep]\n",
               why);
  std::exit(2);
}

// One call's spool: two streams of `seconds` of a tone (440 Hz and 1 kHz), 20 ms packets arriving
// 0-3 ms late (deterministic pseudo-jitter), session start and end records as siprecd writes them.
bool write_spool(const std::string& dir, const std::string& id, int seconds, media::CodecId codec, std::uint64_t* packets) {
  auto w = recording::SpoolWriter::create(dir, id);
  if (!w) {
    std::fprintf(stderr, "spool %s: %s\n", id.c_str(), w.error().message.c_str());
    return false;
  }
  auto& sw = **w;
  const bool alaw = codec == media::CodecId::kPcma;
  const int pt = alaw ? 8 : 0;
  const std::string name = alaw ? "PCMA" : "PCMU";
  sw.append_json(recording::RecordType::kSessionStart, 0,
                 R"({"recording_id":")" + id + R"(","start_unix_us":1700000000000000,"call_id":")" + id + R"("})");
  const std::string payloads = R"([{"pt":)" + std::to_string(pt) + R"(,"encoding":")" + name +
                               R"(","clock_rate":8000,"channels":1,"fmtp":""}])";
  sw.append_json(recording::RecordType::kEvent, 0,
                 R"({"event":"streams","why":"answer","streams":[{"index":0,"label":"1","recorded":true,"paused":false,"codec":")" +
                     name + R"(/8000","payloads":)" + payloads +
                     R"(},{"index":1,"label":"2","recorded":true,"paused":false,"codec":")" + name +
                     R"(/8000","payloads":)" + payloads + "}]}");
  auto enc = media::make_encoder(codec);
  if (!enc) return false;
  std::vector<std::int16_t> pcm(160);
  std::vector<std::uint8_t> payload[2] = {std::vector<std::uint8_t>(160), std::vector<std::uint8_t>(160)};
  const int n = seconds * 50;
  std::uint32_t jitter = 12345;
  for (int k = 0; k < n; ++k) {
    for (int s = 0; s < 2; ++s) {
      const double hz = s == 0 ? 440.0 : 1000.0;
      for (int i = 0; i < 160; ++i)
        pcm[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(
            std::lround(6000 * std::sin(2 * std::numbers::pi * hz * static_cast<double>(k * 160 + i) / 8000)));
      if (!(*enc)->encode(pcm, payload[s])) return false;
      jitter = jitter * 1103515245u + 12345u;
      const std::int64_t at = std::int64_t{k} * 20'000 + (jitter >> 16) % 3000;
      sw.append_rtp(static_cast<std::uint8_t>(s), at, static_cast<std::uint16_t>(1000 + k),
                    static_cast<std::uint32_t>(k * 160), s == 0 ? 0x1111u : 0x2222u, static_cast<std::uint8_t>(pt),
                    k == 0, payload[s]);
      ++*packets;
    }
    if (k % 25 == 24) {  // siprecd flushes every 500 ms
      if (auto st = sw.flush(); !st) return false;
    }
  }
  sw.append_json(recording::RecordType::kSessionEnd, std::int64_t{n} * 20'000 + 5000,
                 R"({"answered":true,"complete":true,"cause":"BYE from the SRC"})");
  return sw.close().ok();
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 20, seconds = 60;
  std::string format = "wav", codec_name = "PCMA", dir;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--calls") calls = std::atoi(next().c_str());
    else if (a == "--seconds") seconds = std::atoi(next().c_str());
    else if (a == "--format") format = next();
    else if (a == "--codec") codec_name = next();
    else if (a == "--dir") dir = next();
    else if (a == "--keep") keep = true;
    else usage(("unknown argument " + a).c_str());
  }
  if (calls <= 0 || seconds <= 0) usage("--calls and --seconds must be positive");
  common::init_logging("warn");
  auto fmt = recording::parse_audio_format(format);
  if (!fmt) usage(fmt.error().message.c_str());
  media::CodecId codec;
  if (codec_name == "PCMA") codec = media::CodecId::kPcma;
  else if (codec_name == "PCMU") codec = media::CodecId::kPcmu;
  else usage("--codec must be PCMA or PCMU");

  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sgw-finalize-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) usage("cannot create a temporary folder");
    dir = tmpl;
  }
  const std::string spool_dir = dir + "/spool", rec_dir = dir + "/rec";
  std::filesystem::create_directories(spool_dir);
  std::filesystem::create_directories(rec_dir);

  std::uint64_t packets = 0;
  for (int c = 0; c < calls; ++c)
    if (!write_spool(spool_dir, "call-" + std::to_string(c), seconds, codec, &packets)) return 1;

  recording::FinalizerOptions o;
  o.spool_dir = spool_dir;
  o.recordings_dir = rec_dir;
  o.format = *fmt;
  recording::Finalizer f(o, recording::FinalizerMetrics{});
  const long rss0 = max_rss_kib();
  const double cpu0 = thread_cpu_s(), wall0 = wall_s();
  for (int c = 0; c < calls; ++c) {
    auto r = f.finalize_file(spool_dir + "/call-" + std::to_string(c) + ".spool");
    if (!r || !r->published) {
      std::fprintf(stderr, "finalise call-%d: %s\n", c, r ? "not published" : r.error().message.c_str());
      return 1;
    }
  }
  const double cpu = thread_cpu_s() - cpu0, wall = wall_s() - wall0;
  const long rss_growth = max_rss_kib() - rss0;
  std::printf("finalise: %d calls x %d s, %s -> %s, %llu packets: %.3f CPU-us/pkt, %.3f wall-us/pkt, "
              "%.1f ms CPU per call, peak RSS growth %ld KiB\n",
              calls, seconds, codec_name.c_str(), format.c_str(), static_cast<unsigned long long>(packets),
              cpu * 1e6 / static_cast<double>(packets), wall * 1e6 / static_cast<double>(packets),
              cpu * 1e3 / calls, rss_growth);
  if (!keep) std::filesystem::remove_all(dir);
  else std::printf("kept %s\n", dir.c_str());
  return 0;
}
