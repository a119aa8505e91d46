// siprecd: the SIPREC recording gateway daemon. Wiring only: configuration,
// threads, signals (SIGTERM/SIGINT drain; a second signal stops at once).

#include <pthread.h>
#include <sys/statvfs.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "app/cli.h"
#include "app/config.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "control/control_server.h"
#include "media/media_engine.h"
#include "recording/finalizer.h"
#include "recording/spool_sink.h"
#include "storage/key_template.h"
#include "recording/spool_syncer.h"
#include "metadata/conversation_id.h"
#include "sip/endpoint.h"
#include "siprec/session_manager.h"

namespace {

using sgw::app::Config;

int fail(const std::string& line) {
  std::cerr << "siprecd: " << line << std::endl;
  return 1;
}

// Creates DIR (and parents) and checks we can write there.
bool usable_dir(const std::string& dir, std::string* why) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *why = ec.message();
    return false;
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    *why = "not writable";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  auto cli = sgw::app::parse_cli(argc, argv);
  if (!cli) {
    std::cerr << "siprecd: " << cli.error().message << std::endl;
    return 2;
  }
  if (cli->help_shown) {
    std::cout << cli->help_text;
    return 0;
  }
  if (cli->show_version) {
    std::cout << "siprecd 0.1.0" << std::endl;
    return 0;
  }
  if (!cli->check_config_file.empty()) {
    auto cfg = sgw::app::load_config_file(cli->check_config_file);
    if (cfg) {
      auto rules = sgw::metadata::parse_rules(cfg->conversation_id_rules);
      if (!rules) return fail("metadata.conversation_id_rules: " + rules.error().message);
      auto st = sgw::app::validate(*cfg);
      if (!st) return fail(st.error().message);
      std::cout << "config OK: " << cli->check_config_file << std::endl;
      return 0;
    }
    return fail(cfg.error().message);
  }
  auto resolved = sgw::app::resolve_config(*cli);
  if (!resolved) return fail(resolved.error().message);
  const Config config = std::move(resolved).value();
  sgw::common::init_logging(config.log_level);
  auto log = sgw::common::logger("main");

  auto rules = sgw::metadata::parse_rules(config.conversation_id_rules);
  if (!rules) return fail("metadata.conversation_id_rules: " + rules.error().message);
  std::string why;
  if (!usable_dir(config.recordings_dir, &why))
    return fail("recording.dir " + config.recordings_dir + ": " + why);
  if (!usable_dir(config.spool_dir, &why))
    return fail("recording.spool_dir " + config.spool_dir + ": " + why);

  auto key_template = sgw::storage::KeyTemplate::parse(config.key_template);
  if (!key_template) return fail("recording.key_template: " + key_template.error().message);
  auto format = sgw::recording::parse_audio_format(config.recording_format);
  if (!format) return fail("recording.format: " + format.error().message);
  sgw::recording::LayoutConfig layout = sgw::recording::default_layout_config();
  if (auto cc = sgw::recording::parse_caller_channel(config.caller_channel)) layout.caller_channel = *cc;
  if (auto ms = sgw::recording::parse_multi_stream_mode(config.multi_stream_mode))
    layout.multi_stream_mode = *ms;

  // Signals are taken by sigwait() in main; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Metrics, declared once.
  sgw::common::MetricsRegistry registry;
  sgw::media::MediaMetrics media_metrics{
      &registry.counter("sgw_rtp_packets_received_total", "RTP packets received on recorded streams"),
      &registry.counter("sgw_rtp_packets_lost_total", "RTP packets missing by sequence number"),
      &registry.counter("sgw_rtp_packets_invalid_total", "Datagrams on RTP ports that are not RTP"),
      &registry.gauge("sgw_media_streams", "Open recorded RTP streams"),
      &registry.counter("sgw_rtp_packets_wrong_source_total", "RTP dropped: not from the SRC's address"),
      &registry.counter("sgw_media_posts_dropped_total", "Work for media workers dropped: queue full")};
  sgw::siprec::SessionMetrics session_metrics{
      &registry.gauge("sgw_active_sessions", "Active recording sessions"),
      &registry.labelled_counter("sgw_invites_total", "Initial INVITEs by final response code", "code"),
      &registry.labelled_counter("sgw_sip_requests_total", "SIP requests received by method", "method"),
      &registry.counter("sgw_metadata_errors_total", "Metadata documents that could not be parsed")};

  sgw::recording::SpoolSinkMetrics spool_metrics{
      &registry.counter("sgw_spool_write_errors_total", "Spool files that could not be created or written"),
      &registry.counter("sgw_spool_dropped_records_total", "Spool records dropped: buffer full")};
  sgw::recording::SpoolSyncer syncer(
      std::chrono::milliseconds(config.fsync_interval_ms),
      {&registry.counter("sgw_spool_fsyncs_total", "Spool fdatasync calls"),
       &registry.counter("sgw_spool_fsync_errors_total", "Spool fdatasync failures")});
  syncer.start();

  sgw::recording::FinalizerOptions fin_options;
  fin_options.spool_dir = config.spool_dir;
  fin_options.recordings_dir = config.recordings_dir;
  fin_options.format = *format;
  fin_options.layout = layout;
  fin_options.reorder_window_ms = config.reorder_window_ms;
  fin_options.keep_spool = config.keep_spool;
  fin_options.metadata_limits.max_bytes = config.metadata_max_bytes;
  fin_options.metadata_limits.max_depth = config.metadata_max_depth;
  fin_options.relative_path = [tpl = *key_template](const sgw::recording::PathFields& f) {
    sgw::storage::KeyFields k;
    k.start_time = std::chrono::system_clock::time_point(std::chrono::microseconds(f.start_unix_us));
    k.conversation_id = f.conversation_id.empty() ? "no-conversation-id" : f.conversation_id;
    k.recording_id = f.recording_id;
    k.region = f.region;
    k.node = f.node;
    k.call_id = f.call_id;
    return tpl.render(k);
  };
  sgw::recording::Finalizer finalizer(
      fin_options,
      {&registry.counter("sgw_recordings_published_total", "Recordings published (audio + JSON)"),
       &registry.counter("sgw_recordings_recovered_total", "Recordings recovered from spool at start-up"),
       &registry.counter("sgw_recordings_failed_total", "Recordings whose finalisation failed (spool kept)"),
       &registry.counter("sgw_finalize_queue_full_total", "Finalisations deferred: queue full")});
  // Spools left by a crash or power loss are finished before new calls arrive.
  if (std::size_t n = finalizer.recover(); n > 0) log->warn("recovered {} recording(s) from the spool", n);
  finalizer.start(1);

  sgw::media::MediaOptions media_options;
  media_options.address = config.media_address;
  media_options.port_min = config.rtp_port_min;
  media_options.port_max = config.rtp_port_max;
  media_options.workers = config.media_workers;
  media_options.media_timeout_ms = config.media_timeout_s * 1000;
  // Set once the SIP side exists; media timeouts are handled on the SIP thread.
  std::atomic<sgw::sip::Endpoint*> sip_for_timeouts{nullptr};
  sgw::siprec::SessionManager* sessions_for_timeouts = nullptr;
  auto media = sgw::media::MediaEngine::create(
      media_options, media_metrics, [&](sgw::media::SessionHandle h) {
        if (auto* ep = sip_for_timeouts.load())
          ep->post([&sessions_for_timeouts, h] { sessions_for_timeouts->on_media_timeout(h); });
      });
  if (!media) return fail(media.error().message);

  sgw::siprec::Policy policy;
  policy.node_name = config.node_name;
  policy.region = config.region;
  policy.max_sessions = config.max_sessions;
  policy.retry_after_s = config.retry_after_s;
  policy.answer_delay_ms = config.answer_delay_ms;
  policy.media_address = config.media_address;
  policy.codecs.preference = config.codecs;
  policy.codecs.srtp_supported = config.srtp;
  policy.metadata_limits.max_bytes = config.metadata_max_bytes;
  policy.metadata_limits.max_depth = config.metadata_max_depth;
  policy.conversation_id_rules = std::move(rules).value();
  policy.recordings_dir = config.recordings_dir;
  sgw::siprec::SessionManager sessions(
      policy, media->get(), session_metrics,
      [&](const std::string& recording_id, const std::string& start_json)
          -> std::unique_ptr<sgw::media::SessionSink> {
        return std::make_unique<sgw::recording::SpoolSink>(config.spool_dir, recording_id, start_json,
                                                           &syncer, spool_metrics);
      },
      [&finalizer](const std::string& recording_id) {
        if (!finalizer.submit(recording_id))
          sgw::common::logger("finalize")->warn("{}: queue full; finished at next start", recording_id);
      });
  sessions_for_timeouts = &sessions;

  sgw::sip::EndpointOptions sip_options;
  sip_options.max_message_bytes = config.max_message_bytes;
  for (const auto& l : config.listen)
    sip_options.listen.push_back({l.transport == sgw::app::Transport::kUdp ? "udp" : "tcp", l.address, l.port});
  auto endpoint = sgw::sip::Endpoint::create(sip_options, &sessions);
  if (!endpoint) return fail(endpoint.error().message);
  sessions.attach(endpoint->get());
  sip_for_timeouts.store(endpoint->get());

  sgw::control::ControlServer control(
      &registry, {[&sessions]() -> std::string {
                    if (sessions.draining()) return "draining";
                    if (!sessions.storage_ok()) return "storage unusable (see log)";
                    return "";
                  },
                  [&sessions] { return sessions.snapshot_json().dump(); }});
  if (!config.http_listen.empty()) {
    auto st = control.start(config.http_listen);
    if (!st) return fail(st.error().message);
  }

  // Storage health, every 5 s on the SIP thread: both folders writable and
  // not full. While unusable, OPTIONS and new INVITEs get 503 (SRCs move on)
  // and /readyz says why.
  std::function<void()> check_storage = [&] {
    auto usable = [&](const std::string& dir) {
      struct statvfs vfs{};
      if (::access(dir.c_str(), W_OK) != 0 || ::statvfs(dir.c_str(), &vfs) != 0) return false;
      return static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize >= 64ull * 1024 * 1024;
    };
    bool ok = usable(config.recordings_dir) && usable(config.spool_dir);
    if (ok != sessions.storage_ok())
      (ok ? log->info("storage usable again") : log->error("storage unusable: {} or {} not writable or under 64 MiB free",
                                                            config.recordings_dir, config.spool_dir));
    sessions.set_storage_ok(ok);
    (*endpoint)->after(5000, check_storage);
  };
  (*endpoint)->post(check_storage);

  std::thread sip_thread([&] { (*endpoint)->run(); });

  std::string sip_list;
  for (const auto& a : (*endpoint)->bound_addresses()) sip_list += (sip_list.empty() ? "" : " ") + a;
  std::cout << "siprecd ready: sip " << sip_list << "; http "
            << (config.http_listen.empty() ? "off" : config.http_listen) << "; media "
            << config.media_address << " " << config.rtp_port_min << "-" << config.rtp_port_max
            << "; recordings " << config.recordings_dir << std::endl;
  log->info("node {} region {} ready", config.node_name, config.region);

  sgw::sip::Endpoint* ep = endpoint->get();
  // First SIGTERM/SIGINT: drain (refuse new sessions, BYE the others, stop when
  // none is left). A second one: stop at once. SIGUSR2 is our own "SIP thread
  // finished" wake-up.
  std::thread waiter([&] {
    sip_thread.join();
    kill(getpid(), SIGUSR2);
  });
  bool draining = false;
  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGUSR2) break;
    if (draining) {
      log->warn("second signal: stopping without waiting for sessions to end");
      ep->stop();
      continue;
    }
    draining = true;
    log->info("signal {}: draining", sig);
    ep->post([ep, &sessions, log] {
      sessions.drain([ep, log] {
        log->info("drained: no session left");
        ep->stop();
      });
      // BYEs that get no answer end by transaction timeout (32 s); do not wait longer.
      ep->after(40000, [ep] { ep->stop(); });
    });
  }
  waiter.join();
  control.stop();
  (*media)->stop();
  syncer.stop();
  finalizer.stop();
  log->info("stopped");
  return 0;
}
