// siprec-src: a SIPREC Session Recording Client for trying, testing, load-testing and
// benchmarking a recording server. Usage and behaviour: docs/siprec-src.md.
#include <cstdio>
#include <fstream>

#include "common/logging.h"
#include "siprec_src/call_engine.h"
#include "siprec_src/options.h"
#include "siprec_src/rtp_only.h"
#include "siprec_src/verify.h"

namespace {

int run(int argc, char** argv) {
  using namespace sgw::siprec_src;
  auto opt = parse_options(argc, argv);
  if (!opt) {
    std::fprintf(stderr, "siprec-src: %s\n", opt.error().message.c_str());
    return 2;
  }
  if (opt->exit_now) return opt->exit_code;
  if (!sgw::common::init_logging(opt->log_level)) {
    std::fprintf(stderr, "siprec-src: --log-level: unknown level '%s'\n", opt->log_level.c_str());
    return 2;
  }
  if (!opt->rtp_only.empty()) {
    auto r = run_rtp_only(*opt);
    if (!r) {
      std::fprintf(stderr, "siprec-src: %s\n", r.error().message.c_str());
      return 2;
    }
    std::printf("rtp-only: calls %llu  wall: %.1f s%s\n", static_cast<unsigned long long>(r->calls),
                r->wall_s, r->wall_limit_hit ? "  (wall-clock limit reached)" : "");
    std::printf("rtp packets sent: %llu  (sender: %zu thread(s), late ticks %llu, packets sent >2 ms late %llu, "
                "worst %llu ms)\n",
                static_cast<unsigned long long>(r->rtp_packets), r->sender_threads,
                static_cast<unsigned long long>(r->late_ticks), static_cast<unsigned long long>(r->late_packets),
                static_cast<unsigned long long>(r->max_late_ms));
    if (!opt->json_file.empty()) {
      nlohmann::json j = {{"mode", "rtp-only"}, {"calls", r->calls}, {"rtp_packets_sent", r->rtp_packets},
                          {"sender_late_ticks", r->late_ticks}, {"sender_late_packets", r->late_packets},
                          {"sender_max_late_ms", r->max_late_ms}, {"sender_threads", r->sender_threads},
                          {"wall_s", r->wall_s},
                          {"wall_limit_hit", r->wall_limit_hit}};
      std::ofstream out(opt->json_file + ".tmp");
      out << j.dump(2) << "\n";
      out.close();
      if (!out || std::rename((opt->json_file + ".tmp").c_str(), opt->json_file.c_str()) != 0) {
        std::fprintf(stderr, "siprec-src: cannot write %s\n", opt->json_file.c_str());
        return 2;
      }
    }
    return r->wall_limit_hit ? 1 : 0;
  }
  auto engine = CallEngine::create(*opt);
  if (!engine) {
    std::fprintf(stderr, "siprec-src: %s\n", engine.error().message.c_str());
    return 2;
  }
  auto st = engine.value()->run();
  if (!st) {
    std::fprintf(stderr, "siprec-src: %s\n", st.error().message.c_str());
    return 2;
  }
  const auto& records = engine.value()->records();
  RunSummary s = engine.value()->summary();
  std::printf("calls: %llu ok: %llu failed: %llu  wall: %.1f s%s\n",
              static_cast<unsigned long long>(s.calls), static_cast<unsigned long long>(s.ok),
              static_cast<unsigned long long>(s.failed), s.wall_s,
              s.wall_limit_hit ? "  (wall-clock limit reached)" : "");
  std::printf("setup latency (INVITE -> 200 OK, %zu calls): p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
              s.setup.count, s.setup.p50, s.setup.p99, s.setup.max);
  if (!s.failures.empty()) {
    std::printf("failures:");
    for (const auto& [k, v] : s.failures) std::printf(" %s=%llu", k.c_str(), static_cast<unsigned long long>(v));
    std::printf("\n");
  }
  std::printf("rtp packets sent: %llu  (sender: %zu thread(s), late ticks %llu, packets sent >2 ms late %llu, "
              "worst %llu ms)\n",
              static_cast<unsigned long long>(s.rtp_packets), s.sender_threads,
              static_cast<unsigned long long>(s.late_ticks), static_cast<unsigned long long>(s.late_packets),
              static_cast<unsigned long long>(s.max_late_ms));
  std::fflush(stdout);

  bool all_ok = s.failed == 0 && s.ok == s.calls;
  nlohmann::json j = engine.value()->to_json(s);
  if (!opt->verify_dirs.empty()) {
    std::vector<VerifyExpectation> ex;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < records.size(); ++i) {
      const auto& r = records[i];
      if (r.status != "ok") continue;
      VerifyExpectation e;
      e.call_id = r.call_id;
      e.conversation_id = r.id.conversation_id;
      e.caller_aor = r.id.caller.aor;
      e.agent_aor = r.id.agent.aor;
      e.caller_hz = opt->wav_caller.empty() ? opt->tone_caller : 0;
      e.agent_hz = opt->wav_caller.empty() && opt->wav_agent.empty() ? opt->tone_agent : 0;
      e.duration_ms = r.duration_ms;
      e.silent_ms = r.silent_ms;
      e.call_min_ms = r.call_min_ms;
      e.call_max_ms = r.call_max_ms;
      e.setup_ms = r.setup_ms;
      e.fragments_allowed = r.fragments > 1;
      ex.push_back(e);
      which.push_back(i);
    }
    auto results = verify_all(opt->verify_dirs, ex, opt->verify_timeout_s);
    std::size_t pass = 0;
    for (std::size_t k = 0; k < results.size(); ++k) {
      std::printf("%s\n", results[k].line.c_str());
      j["records"][which[k]]["verify"] = results[k].line;
      if (results[k].pass) ++pass;
    }
    std::printf("verify: %zu of %zu passed\n", pass, results.size());
    j["verify"] = {{"checked", results.size()}, {"passed", pass}};
    if (pass != results.size()) all_ok = false;
  }
  if (!opt->json_file.empty()) {
    std::ofstream out(opt->json_file + ".tmp");
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    out.close();
    if (!out || std::rename((opt->json_file + ".tmp").c_str(), opt->json_file.c_str()) != 0) {
      std::fprintf(stderr, "siprec-src: cannot write %s\n", opt->json_file.c_str());
      return 2;
    }
  }
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
