// siprecd: the SIPREC recording gateway daemon. Wiring only: configuration,
// threads, signals (SIGTERM/SIGINT drain; a second signal stops at once).

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include <systemd/sd-daemon.h>

#include "app/cli.h"
#include "app/config.h"
#include "app/reload.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/thread_name.h"
#include "control/control_server.h"
#include "control/events.h"
#include "control/hooks.h"
#include "media/codec.h"
#include "media/media_engine.h"
#include "recording/conversation.h"
#include "recording/finalizer.h"
#include "recording/spool_sink.h"
#include "stream/stream_tap.h"
#include "stream/streamer.h"
#include "storage/delivery_queue.h"
#include "storage/fallback_sink.h"
#include "storage/key_template.h"
#include "storage/orphan_recovery.h"
#include "storage/partials.h"
#include "storage/segment_shipper.h"
#include "storage/s3_fragment_store.h"
#include "storage/s3_sink.h"
#include "recording/spool_syncer.h"
#include "metadata/conversation_id.h"
#include "sip/endpoint.h"
#include "sip/source_policy.h"
#include "siprec/session_manager.h"

namespace {

using sgw::app::Config;

// Storage health, disk space and delivery backlog are checked this often.
constexpr std::uint32_t kHealthCheckMs = 2000;

int fail(const std::string& line) {
  std::cerr << "siprecd: " << line << std::endl;
  return 1;
}

// Raises the soft RLIMIT_NOFILE to what the configuration needs (at most the
// hard limit). An error when even the RTP range cannot be opened; a warning
// when sessions near sip.max_sessions would run out of descriptors.
bool raise_descriptor_limit(const Config& config, std::string* error) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    *error = std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
    return false;
  }
  const std::uint64_t need = sgw::app::descriptors_needed(config);
  const std::uint64_t required = sgw::app::descriptors_required(config);
  const std::uint64_t hard = lim.rlim_max == RLIM_INFINITY ? need : lim.rlim_max;
  const std::uint64_t want = std::min(need, hard);
  if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur < want) {
    lim.rlim_cur = static_cast<rlim_t>(want);
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      *error = "setrlimit(RLIMIT_NOFILE, " + std::to_string(want) + "): " + std::strerror(errno);
      return false;
    }
  }
  auto log = sgw::common::logger("main");
  if (hard < required) {
    *error = "RLIMIT_NOFILE: the hard limit on open files is " + std::to_string(hard) +
             "; media.rtp_ports needs " + std::to_string(required) +
             " (one per port plus " + std::to_string(sgw::app::kDescriptorHeadroom) +
             " for connections and files): raise it (systemd LimitNOFILE=, ulimit -Hn) or narrow media.rtp_ports";
    return false;
  }
  if (hard < need)
    log->warn("RLIMIT_NOFILE hard limit {} is below the {} descriptors that media.rtp_ports and "
              "sip.max_sessions {} can use: raise it (systemd LimitNOFILE=) or lower sip.max_sessions",
              hard, need, config.max_sessions);
  log->info("open-file limit (RLIMIT_NOFILE) {}", static_cast<std::uint64_t>(lim.rlim_cur));
  return true;
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

// A sink that cannot be built (no credentials, bad endpoint): every attempt
// fails with the reason, loudly, and the recordings stay queued and local.
class BrokenSink : public sgw::storage::DeliverySink {
 public:
  BrokenSink(std::string code, std::string message) : code_(std::move(code)), message_(std::move(message)) {}
  sgw::storage::DeliveryOutcome check() override { return outcome(); }
  sgw::storage::DeliveryOutcome deliver(sgw::storage::DeliveryEntry&,
                                        const std::function<void(const sgw::storage::DeliveryEntry&)>&) override {
    return outcome();
  }

 private:
  sgw::storage::DeliveryOutcome outcome() const {
    sgw::storage::DeliveryOutcome o;
    o.kind = sgw::storage::DeliveryOutcome::Kind::kPermanent;
    o.code = code_;
    o.message = message_;
    return o;
  }
  std::string code_, message_;
};

std::string content_type_of(const std::string& path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0; };
  if (ends(".json")) return "application/json";
  if (ends(".wav")) return "audio/wav";
  if (ends(".flac")) return "audio/flac";
  if (ends(".ogg") || ends(".opus")) return "audio/ogg";
  return "application/octet-stream";
}

std::string iso_ms(std::int64_t unix_ms) {
  return unix_ms ? sgw::common::iso8601_from_unix_us(unix_ms * 1000) : std::string("-");
}

// `siprecd deliveries [list | retry ID]`: reads (and for retry, rewrites one
// entry of) the queue folder; a running daemon picks a retried entry up on its
// next rescan.
int deliveries_command(const sgw::app::CliOptions& cli) {
  std::string dir = cli.queue_dir;
  if (dir.empty()) {
    auto resolved = sgw::app::resolve_config(cli);
    if (!resolved) return fail(resolved.error().message);
    dir = sgw::app::delivery_queue_dir(*resolved);
  }
  if (cli.deliveries_action == "retry") {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
    auto st = sgw::storage::DeliveryQueue::retry(dir, cli.deliveries_id, cli.deliveries_sink, now);
    if (!st) return fail("deliveries retry: " + st.error().message);
    std::cout << "requeued " << cli.deliveries_id << " (" << cli.deliveries_sink << ") in " << dir << std::endl;
    return 0;
  }
  if (::access(dir.c_str(), R_OK) != 0) return fail("deliveries: cannot read queue folder " + dir);
  std::vector<std::string> problems;
  auto entries = sgw::storage::DeliveryQueue::read_all(dir, &problems);
  if (cli.deliveries_json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : entries) {
      nlohmann::json keys = nlohmann::json::array();
      for (const auto& o : e.objects) keys.push_back({{"key", o.key}, {"path", o.path}, {"delivered", o.delivered},
                                                      {"version_id", o.version_id}, {"etag", o.etag}, {"sha256", o.sha256},
                                                      {"upload_id", o.upload_id}, {"parts", o.parts.size()},
                                                      {"verified", o.verified}});
      out.push_back({{"recording_id", e.recording_id}, {"sink", e.sink}, {"bucket", e.bucket},
                     {"state", std::string(sgw::storage::to_string(e.state))}, {"attempts", e.attempts},
                     {"last_error", e.last_error}, {"last_error_code", e.last_error_code},
                     {"next_attempt", iso_ms(e.next_attempt_unix_ms)}, {"delivered", iso_ms(e.delivered_unix_ms)},
                     {"local_deleted", e.local_deleted_unix_ms != 0}, {"objects", keys}});
      if (!e.overrides.empty())
        out.back()["overrides"] = {{"retention_mode", e.overrides.retention_mode},
                                   {"retention_days", e.overrides.retention_days}, {"tags", e.overrides.tags}};
    }
    for (const auto& p : problems) out.push_back({{"corrupt", p}});
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return 0;
  }
  std::size_t counts[4] = {0, 0, 0, 0};
  std::cout << std::left << std::setw(38) << "RECORDING" << std::setw(7) << "SINK" << std::setw(10) << "STATE"
            << std::setw(9) << "ATTEMPTS" << "KEY / LAST ERROR" << "\n";
  for (const auto& e : entries) {
    ++counts[static_cast<int>(e.state)];
    std::cout << std::setw(38) << e.recording_id << std::setw(7) << e.sink << std::setw(10)
              << sgw::storage::to_string(e.state) << std::setw(9) << e.attempts
              << (e.objects.empty() ? std::string("-") : e.objects.front().key) << "\n";
    if (!e.last_error.empty())
      std::cout << std::string(64, ' ') << "error " << e.last_error_code << ": " << e.last_error
                << " (next attempt " << iso_ms(e.next_attempt_unix_ms) << ")\n";
  }
  for (const auto& p : problems) std::cout << "CORRUPT " << p << "\n";
  std::cout << entries.size() << " entries: " << counts[0] << " queued, " << counts[1] << " uploading, "
            << counts[2] << " delivered, " << counts[3] << " failed; " << problems.size() << " corrupt" << std::endl;
  return 0;
}

// `siprecd drain [--resume] [--url URL]`: asks a running node (its control
// server) to drain without stopping, or to take sessions again.
int drain_command(const sgw::app::CliOptions& cli) {
  std::string url = cli.drain_url;
  if (url.empty()) {
    auto resolved = sgw::app::resolve_config(cli);
    if (!resolved) return fail(resolved.error().message);
    url = resolved->http_listen;
    if (url.empty()) return fail("drain: http.listen is not set in the configuration: give --url");
  }
  auto reply = sgw::control::control_post(url, cli.drain_resume ? "/resume" : "/drain");
  if (!reply) return fail("drain: " + reply.error().message);
  std::cout << reply->body;
  if (reply->status != 202) return fail("drain: HTTP " + std::to_string(reply->status));
  return 0;
}

// The process's S3 credentials (docs/s3.md "Credentials"): the AWS SDK chain,
// resolved once and shared by every S3 client (temporary ones refresh themselves).
sgw::common::Result<std::shared_ptr<sgw::storage::CredentialProvider>> s3_credentials(const Config& config) {
  static std::mutex mu;
  static std::shared_ptr<sgw::storage::CredentialProvider> provider;
  std::lock_guard lock(mu);
  if (provider) return provider;
  sgw::storage::CredentialSources sources;
  if (!config.s3_access_key.empty())
    sources.configured = sgw::storage::SigV4Credentials{config.s3_access_key, config.s3_secret_key,
                                                        config.s3_session_token};
  sources.profile = config.s3_profile;
  sources.region = config.s3_region;
  auto made = sgw::storage::make_credential_provider(sources);
  if (!made) return made.error();
  provider = *made;
  return provider;
}

// The S3 client settings of the partials bucket (docs/failover.md), with
// credentials resolved; an error names what is missing.
sgw::common::Result<sgw::storage::S3ClientConfig> partials_client(const Config& config) {
  sgw::storage::S3ClientConfig c;
  c.endpoint = config.s3_endpoint;
  c.region = config.s3_region;
  c.bucket = sgw::app::partials_bucket(config);
  c.path_style = config.s3_path_style;
  c.ca_file = config.s3_ca_file;
  if (c.bucket.empty())
    return sgw::common::make_error("config.invalid", "no partials bucket: set s3.partials_bucket (a bucket without Object Lock)");
  auto creds = s3_credentials(config);
  if (!creds) return creds.error();
  c.credential_provider = *creds;
  return c;
}

// `siprecd recover [--older-than S] [--json]`: adopts orphaned partials into
// this node's spool folder; a gateway running on that folder finalises and
// delivers them (its rescan finds them).
int recover_command(const sgw::app::CliOptions& cli) {
  auto resolved = sgw::app::resolve_config(cli);
  if (!resolved) return fail(resolved.error().message);
  const Config& config = *resolved;
  sgw::common::init_logging(config.log_level);
  auto cc = partials_client(config);
  if (!cc) return fail("recover: " + cc.error().message);
  auto client = sgw::storage::S3Client::create(*cc);
  if (!client) return fail("recover: " + client.error().message);
  std::string why;
  if (!usable_dir(config.spool_dir, &why)) return fail("recording.spool_dir " + config.spool_dir + ": " + why);
  sgw::storage::RecoveryOptions ro;
  ro.node = config.node_name;
  ro.region = config.region;  // no current run: this node's own runs too only once older than S
  ro.spool_dir = config.spool_dir;
  ro.older_than_ms = (cli.recover_older_than_s >= 0 ? cli.recover_older_than_s
                                                    : static_cast<long long>(config.recovery_orphan_after_s)) * 1000;
  auto r = sgw::storage::recover_orphans(**client, ro);
  if (cli.recover_json) {
    nlohmann::json adopted = nlohmann::json::array();
    for (const auto& a : r.adopted)
      adopted.push_back({{"recording_id", a.recording_id}, {"node", a.node}, {"region", a.region},
                         {"spool", a.spool_path}, {"partials", a.partials}, {"skipped", a.skipped}});
    std::cout << nlohmann::json{{"adopted", adopted}, {"local", r.local}, {"busy", r.busy}, {"problems", r.problems},
                                {"cleaned", r.cleaned}, {"live", r.live}}
                     .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
  } else {
    for (const auto& a : r.adopted)
      std::cout << "adopted " << a.recording_id << " from " << a.node << " (" << a.region << "): " << a.partials
                << " partial(s), " << a.skipped << " skipped -> " << a.spool_path << "\n";
    for (const auto& l : r.local) std::cout << "local " << l << " (this node still has it)\n";
    for (const auto& b : r.busy) std::cout << "busy " << b << "\n";
    for (const auto& p : r.problems) std::cout << "PROBLEM " << p << "\n";
    std::cout << r.adopted.size() << " adopted, " << r.busy.size() << " busy, " << r.live << " live, "
              << r.problems.size() << " problem(s)" << std::endl;
  }
  return 0;
}

// `siprecd conversation ID [--dir DIR | --s3] [--stitch OUT.wav] [--json]`:
// the fragments of one conversation, their coverage and gaps (docs/failover.md).
int conversation_command(const sgw::app::CliOptions& cli) {
  auto resolved = sgw::app::resolve_config(cli);
  if (!resolved) return fail(resolved.error().message);
  const Config& config = *resolved;
  std::unique_ptr<sgw::recording::FragmentStore> store;
  if (cli.conversation_s3) {
    std::vector<std::string> names = cli.conversation_buckets;
    if (names.empty()) names.push_back(config.s3_bucket);
    if (names.front().empty()) return fail("conversation --s3: s3.bucket is not configured (or give --bucket)");
    sgw::storage::S3ClientConfig client;
    client.endpoint = config.s3_endpoint;
    client.region = config.s3_region;
    client.path_style = config.s3_path_style;
    client.ca_file = config.s3_ca_file;
    auto creds = s3_credentials(config);
    if (!creds) return fail("conversation --s3: " + creds.error().message);
    client.credential_provider = *creds;
    std::vector<sgw::storage::S3FragmentStore::Bucket> buckets;
    for (const auto& name : names) {
      client.bucket = name;
      auto s3 = sgw::storage::S3Client::create(client);
      if (!s3) return fail("conversation --s3: " + s3.error().message);
      buckets.push_back({name, std::move(s3).value()});
    }
    store = std::make_unique<sgw::storage::S3FragmentStore>(std::move(buckets), config.s3_prefix);
  } else {
    store = std::make_unique<sgw::recording::DirFragmentStore>(
        cli.conversation_dirs.empty() ? std::vector<std::string>{config.recordings_dir} : cli.conversation_dirs,
        [](std::string_view v) { return sgw::storage::KeyTemplate::sanitize(v); });
  }
  std::string scratch = (std::filesystem::temp_directory_path() / "siprecd-conversation-XXXXXX").string();
  if (::mkdtemp(scratch.data()) == nullptr) return fail("conversation: mkdtemp " + scratch + ": " + std::strerror(errno));
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{scratch};
  auto conv = sgw::recording::load_conversation(*store, cli.conversation_id, scratch);
  if (!conv) return fail("conversation: " + conv.error().message);
  nlohmann::json out = sgw::recording::to_json(*conv);
  int rc = conv->fragments.empty() ? 1 : 0;
  if (!cli.conversation_stitch.empty() && !conv->fragments.empty()) {
    auto st = sgw::recording::stitch_conversation(*conv, cli.conversation_stitch);
    if (!st) return fail("conversation --stitch: " + st.error().message);
    out["stitched"] = {{"file", st->path}, {"frames", st->frames}, {"sample_rate", st->sample_rate},
                       {"sha256", st->sha256}, {"segments", st->segments.size()}};
    for (const auto& s : st->skipped) out["skipped"].push_back({{"json", s.ref}, {"reason", "stitch: " + s.reason}});
    if (!cli.conversation_json)
      std::cout << "stitched " << st->path << " (" << st->frames << " frames at " << st->sample_rate
                << " Hz, " << st->segments.size() << " segment(s); sources and gaps in its .json)\n";
  }
  if (cli.conversation_json)
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  else
    std::cout << sgw::recording::to_text(*conv) << std::flush;
  return rc;
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
  if (cli->deliveries) return deliveries_command(*cli);
  if (cli->drain) return drain_command(*cli);
  if (cli->recover) return recover_command(*cli);
  if (cli->conversation) return conversation_command(*cli);
  auto resolved = sgw::app::resolve_config(*cli);
  if (!resolved) return fail(resolved.error().message);
  const Config config = std::move(resolved).value();
  auto log_options = [](const Config& c) {
    return sgw::common::LogOptions{c.log_level, c.log_format, c.redact_personal_data, c.node_name, c.region};
  };
  sgw::common::init_logging(log_options(config));
  auto log = sgw::common::logger("main");

  auto rules = sgw::metadata::parse_rules(config.conversation_id_rules);
  if (!rules) return fail("metadata.conversation_id_rules: " + rules.error().message);
  std::string why;
  if (!raise_descriptor_limit(config, &why)) return fail(why);
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
  sigaddset(&signals, SIGHUP);  // reload (systemctl reload); also re-reads the TLS certificate files
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
      &registry.counter("sgw_media_admissions_refused_total", "New sessions refused (503): a media worker queue was full"),
      &registry.counter("sgw_rtp_packets_dropped_kernel_total",
                        "RTP dropped by the kernel: a stream's socket buffer was full (SO_RXQ_OVFL)"),
      &registry.counter("sgw_srtp_auth_failures_total", "SRTP packets that failed authentication: dropped, not recorded"),
      &registry.counter("sgw_srtp_replays_total", "SRTP packets refused as replays: dropped, not recorded"),
      &registry.counter("sgw_rtcp_packets_total", "RTCP/SRTCP packets on muxed RTP ports (not recorded)")};
  sgw::siprec::SessionMetrics session_metrics{
      &registry.gauge("sgw_active_sessions", "Active recording sessions"),
      &registry.labelled_counter("sgw_invites_total", "Initial INVITEs by final response code", "code"),
      &registry.labelled_counter("sgw_sip_requests_total", "SIP requests received by method", "method"),
      &registry.counter("sgw_metadata_errors_total", "Metadata documents that could not be parsed"),
      &registry.counter("sgw_recording_storage_failures_total",
                        "Calls refused (503) or ended (BYE) because their spool could not be created, synced or written")};
  session_metrics.delayed_offer_failures = &registry.counter(
      "sgw_delayed_offer_failures_total",
      "Delayed-offer sessions ended (BYE, recording complete:false) because the ACK had no usable SDP answer");
  session_metrics.limits_hit = &registry.labelled_counter(
      "sgw_limits_hit_total",
      "Requests refused (or metadata documents not parsed) by a per-source or size limit, by cap "
      "(allowed_sources, invite_rate, sessions_per_source, sessions_total, streams_per_session, metadata_bytes)",
      "cap");
  session_metrics.unfit_refusals = &registry.labelled_counter(
      "sgw_unfit_refusals_total",
      "OPTIONS and new INVITEs answered 503 because the node is unfit, by reason "
      "(draining, max_sessions, storage, spool_disk_low, delivery_backlog)",
      "reason");
  // Operator metrics (docs/operations.md): setup latency, readiness, storage, delivery backlog.
  session_metrics.setup_latency_s = &registry.histogram(
      "sgw_setup_latency_seconds", "INVITE taken -> 200 OK sent (ports bound, spool durable)",
      {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
  auto& ready_gauge = registry.gauge("sgw_ready", "1 when /readyz is 200 (accepting calls), else 0");
  auto& spool_free = registry.gauge("sgw_spool_free_bytes", "Free bytes (for unprivileged users) in recording.spool_dir's file system");
  auto& recordings_free = registry.gauge("sgw_recordings_free_bytes", "Free bytes in recording.dir's file system");
  auto& spool_bytes = registry.gauge("sgw_spool_bytes", "Bytes in recording.spool_dir (open and unfinished spools)");
  auto& oldest_pending = registry.gauge("sgw_deliveries_oldest_pending_age_seconds",
                                        "Age of the oldest queued or uploading delivery (0: none)");

  sgw::recording::SpoolSinkMetrics spool_metrics{
      &registry.counter("sgw_spool_write_errors_total", "Spool files that could not be created or written"),
      &registry.counter("sgw_spool_dropped_records_total", "Spool records dropped: buffer full")};
  sgw::recording::SpoolSyncMode sync_mode;
  if (config.spool_sync == "filesystem") sync_mode.filesystem_of = config.spool_dir;
  sgw::recording::SpoolSyncer syncer(
      std::chrono::milliseconds(config.fsync_interval_ms),
      {&registry.counter("sgw_spool_fsyncs_total", "Spool files made durable (fdatasync, or covered by a syncfs)"),
       &registry.counter("sgw_spool_fsync_errors_total", "Spool files whose sync failed")},
      sync_mode);
  syncer.start();

  sgw::recording::FinalizerOptions fin_options;
  fin_options.spool_dir = config.spool_dir;
  fin_options.recordings_dir = config.recordings_dir;
  fin_options.format = *format;
  fin_options.layout = layout;
  fin_options.reorder_window_ms = config.reorder_window_ms;
  fin_options.keep_spool = config.keep_spool;
  fin_options.silence_warning_ms = static_cast<std::int64_t>(config.silence_warning_s) * 1000;
  fin_options.queue_capacity = config.finalize_queue;
  fin_options.rescan_interval = std::chrono::seconds(config.finalize_rescan_s);
  fin_options.open_spools = [&syncer] { return syncer.open_paths(); };
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
  // The delivery queue and its sinks (docs/storage.md). A finished recording
  // is queued (entry files fsync'd) before its spool is removed.
  auto s3_template = sgw::storage::KeyTemplate::parse(config.s3_key_template);
  if (!s3_template) return fail("s3.key_template: " + s3_template.error().message);
  const bool s3_on = !config.s3_bucket.empty();
  sgw::storage::DeliveryQueueOptions dq_options;
  dq_options.dir = sgw::app::delivery_queue_dir(config);
  dq_options.threads = config.s3_parallel_uploads;
  dq_options.ephemeral_sinks = {std::string(sgw::storage::kPartialSink),
                               std::string(sgw::storage::kPartialsDeleteSink)};
  dq_options.backoff.max_ms = static_cast<std::int64_t>(config.s3_max_backoff_s) * 1000;
  dq_options.backoff.initial_ms = std::min<std::int64_t>(1000, dq_options.backoff.max_ms);
  if (s3_on) dq_options.local_retention_ms = static_cast<std::int64_t>(config.local_retention_days) * 86'400'000;
  // Event webhooks (docs/integrations.md): a delivery queue of their own in
  // <queue_dir>/events, its webhook sink, and the publisher every event goes through.
  std::unique_ptr<sgw::storage::DeliveryQueue> event_queue;
  std::unique_ptr<sgw::control::EventPublisher> events;
  if (!config.events_url.empty()) {
    sgw::storage::DeliveryQueueOptions eo;
    eo.dir = sgw::app::delivery_queue_dir(config) + "/events";
    eo.threads = 2;
    eo.backoff.max_ms = static_cast<std::int64_t>(config.events_max_backoff_s) * 1000;
    eo.backoff.initial_ms = std::min<std::int64_t>(1000, eo.backoff.max_ms);
    auto eq = sgw::storage::DeliveryQueue::open(
        eo, {&registry.counter("sgw_events_delivered_total", "Webhook events delivered (2xx from events.url)"),
             &registry.counter("sgw_event_attempt_failures_total", "Webhook event POSTs that failed (retried)"),
             nullptr,
             &registry.counter("sgw_event_corrupt_entries_total", "Event queue entry files that were torn or corrupt (skipped)"),
             nullptr, &registry.gauge("sgw_events_pending", "Webhook events queued, not yet delivered"), nullptr});
    if (!eq) return fail("events: " + eq.error().message);
    event_queue = std::move(eq).value();
    sgw::control::WebhookOptions wo{config.events_url, config.events_secret, config.events_timeout_ms};
    event_queue->add_sink(std::string(sgw::storage::kWebhookSink),
                          [wo] { return std::make_unique<sgw::control::WebhookSink>(wo); });
    events = std::make_unique<sgw::control::EventPublisher>(
        event_queue.get(), config.node_name, config.region,
        sgw::control::EventPublisherMetrics{
            &registry.counter("sgw_events_published_total", "Webhook events published (on disk, staged for the event queue)"),
            &registry.counter("sgw_events_dropped_total", "Webhook events lost: invalid, or could not be written to disk")});
    for (const auto& p : event_queue->problems()) log->error("event queue: {}", p);
    event_queue->start();
    log->info("events: POSTed to {} from queue {}", config.events_url, eo.dir);
  }
  sgw::control::EventPublisher* ev = events.get();
  // Partials (docs/failover.md): shipped while calls run, deleted once the final recording is verified.
  const bool partials_on = s3_on && !sgw::app::partials_bucket(config).empty();
  // The partials cut and not uploaded yet: the shipper adds, the "partial" sinks upload and remove.
  auto partial_bodies = std::make_shared<sgw::storage::PartialBodies>();
  // This process's shipping run (docs/failover.md): partials go under {region}/partial/{node}/{run}/.
  const auto run = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count());
  // The shipper learns from the queue which partials are uploaded and which recordings delivered.
  std::atomic<sgw::storage::SegmentShipper*> shipper_for_hook{nullptr};
  if (ev)
    dq_options.on_failed = [ev, bucket = config.s3_bucket](const sgw::storage::DeliveryEntry& e) {
      if (e.sink == "s3") ev->publish(sgw::storage::failed_event(e, bucket));
    };
  if (partials_on || ev)
    dq_options.on_delivered = [&shipper_for_hook, ev](const sgw::storage::DeliveryEntry& e) {
      if (ev && e.sink == "s3") ev->publish(sgw::storage::delivered_event(e));
      auto* shipper = shipper_for_hook.load();
      if (!shipper) return;
      if (e.sink == "s3") shipper->recording_delivered(e.recording_id);
      else if (e.sink == sgw::storage::kPartialSink) shipper->partial_uploaded(e.recording_id);
    };
  auto queue = sgw::storage::DeliveryQueue::open(
      dq_options,
      {&registry.counter("sgw_deliveries_delivered_total", "Deliveries verified and complete (per recording and sink)"),
       &registry.counter("sgw_delivery_attempt_failures_total", "Failed delivery attempts (retried)"),
       &registry.counter("sgw_delivery_permanent_failures_total", "Delivery attempts that failed permanently (403, no bucket, lock misconfiguration)"),
       &registry.counter("sgw_delivery_corrupt_entries_total", "Delivery queue entry files that were torn or corrupt (skipped)"),
       &registry.counter("sgw_local_copies_deleted_total", "Local recordings deleted after verified delivery and retention"),
       &registry.gauge("sgw_deliveries_pending", "Deliveries queued or uploading"),
       &registry.gauge("sgw_deliveries_failed", "Deliveries in state failed"),
       &registry.histogram("sgw_delivery_lag_seconds", "Recording finished (queued) -> delivered and verified",
                           {0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400})});
  if (!queue) return fail(queue.error().message);
  if (s3_on) {
    sgw::storage::S3SinkOptions s3;
    s3.client.endpoint = config.s3_endpoint;
    s3.client.region = config.s3_region;
    s3.client.bucket = config.s3_bucket;
    s3.client.path_style = config.s3_path_style;
    s3.client.ca_file = config.s3_ca_file;
    if (config.s3_retention_mode == "COMPLIANCE") s3.lock_mode = sgw::storage::LockMode::kCompliance;
    if (config.s3_retention_mode == "GOVERNANCE") s3.lock_mode = sgw::storage::LockMode::kGovernance;
    s3.retention_days = config.s3_retention_days;
    s3.retention_years = config.s3_retention_years;
    s3.legal_hold = config.s3_legal_hold;
    if (config.s3_sse == "AES256") s3.sse.kind = sgw::storage::ServerSideEncryption::Kind::kS3;
    if (config.s3_sse == "aws:kms") s3.sse.kind = sgw::storage::ServerSideEncryption::Kind::kKms;
    s3.sse.kms_key_id = config.s3_kms_key_id;
    s3.tags = config.s3_tags;
    s3.multipart_threshold = static_cast<std::uint64_t>(config.s3_multipart_threshold_mb) << 20;
    s3.part_size = static_cast<std::uint64_t>(config.s3_part_size_mb) << 20;
    auto creds = s3_credentials(config);
    std::string broken_code, broken;
    if (creds) {
      s3.client.credential_provider = *creds;
      auto probe = sgw::storage::S3Client::create(s3.client);
      if (!probe) {
        broken_code = probe.error().code;
        broken = "s3 sink for bucket " + config.s3_bucket + ": " + probe.error().message;
      }
    } else {
      broken_code = creds.error().code;
      broken = "s3 sink for bucket " + config.s3_bucket + ": " + creds.error().message;
    }
    if (!broken.empty()) {
      log->error("{}; recordings are kept locally and queued for S3", broken);
      (*queue)->add_sink("s3", [broken_code, broken] { return std::make_unique<BrokenSink>(broken_code, broken); });
    } else {
      if (config.s3_zone.empty()) {
        (*queue)->add_sink("s3", [s3]() -> std::unique_ptr<sgw::storage::DeliverySink> {
          auto sink = sgw::storage::S3Sink::create(s3);
          if (!sink) return std::make_unique<BrokenSink>(sink.error().code, sink.error().message);
          return std::move(sink).value();
        });
      } else {
        // Residency (docs/failover.md): the primary and its same-zone fallbacks, one S3 sink each.
        std::vector<std::pair<std::string, std::string>> buckets{{config.s3_bucket, config.s3_zone}};
        for (const auto& fb : config.s3_fallback_buckets) buckets.emplace_back(fb.bucket, fb.zone);
        sgw::storage::FallbackSinkOptions fo;
        fo.fallback_after_ms = static_cast<std::int64_t>(config.s3_fallback_after_s) * 1000;
        fo.probe_interval_ms = std::min<std::int64_t>(60'000, fo.fallback_after_ms);
        fo.fallback_deliveries = &registry.counter("sgw_deliveries_fallback_total",
                                                   "Recordings delivered to a fallback bucket (s3.fallback_buckets)");
        auto state = std::make_shared<sgw::storage::ResidencyState>();
        (*queue)->add_sink("s3", [s3, buckets, fo, state]() -> std::unique_ptr<sgw::storage::DeliverySink> {
          std::vector<sgw::storage::ResidencyBucket> sinks;
          for (const auto& [bucket, zone] : buckets) {
            auto o = s3;
            o.client.bucket = bucket;
            o.extra_metadata = sgw::storage::residency_metadata(zone, bucket, buckets.front().first);
            auto sink = sgw::storage::S3Sink::create(o);
            if (!sink) return std::make_unique<BrokenSink>(sink.error().code, sink.error().message);
            sinks.push_back({bucket, zone, std::move(sink).value()});
          }
          return std::make_unique<sgw::storage::FallbackSink>(fo, state, std::move(sinks));
        });
        std::string list;
        for (const auto& fb : config.s3_fallback_buckets) list += (list.empty() ? "" : ", ") + fb.bucket;
        log->info("s3 residency: zone {}, fallback bucket(s) {} after {} s of failure of {}", config.s3_zone,
                  list.empty() ? "none" : list, config.s3_fallback_after_s, config.s3_bucket);
      }
      log->info("s3 sink: bucket {} at {} ({}), key template {}{}{}, retention {}", config.s3_bucket,
                config.s3_endpoint.empty() ? "AWS" : config.s3_endpoint, config.s3_region,
                config.s3_prefix, config.s3_prefix.empty() ? "" : "/", config.s3_key_template,
                config.s3_retention_mode.empty() ? std::string("none")
                                                 : config.s3_retention_mode + " " +
                                                       (config.s3_retention_years
                                                            ? std::to_string(config.s3_retention_years) + " year(s)"
                                                            : std::to_string(config.s3_retention_days) + " day(s)"));
    }
  }
  if (partials_on) {
    auto pc = partials_client(config);
    if (!pc) {
      log->error("partials: {}; recordings are not shipped during calls", pc.error().message);
    } else {
      sgw::storage::PartialSinkOptions po{*pc, config.node_name, config.region,
                                          static_cast<std::int64_t>(config.segment_s) * 1000, run, partial_bodies};
      (*queue)->add_sink(std::string(sgw::storage::kPartialSink), [po]() -> std::unique_ptr<sgw::storage::DeliverySink> {
        auto sink = sgw::storage::PartialSink::create(po);
        if (!sink) return std::make_unique<BrokenSink>(sink.error().code, sink.error().message);
        return std::move(sink).value();
      });
      (*queue)->add_sink(std::string(sgw::storage::kPartialsDeleteSink),
                         [c = *pc]() -> std::unique_ptr<sgw::storage::DeliverySink> {
                           auto sink = sgw::storage::PartialsDeleteSink::create(c);
                           if (!sink) return std::make_unique<BrokenSink>(sink.error().code, sink.error().message);
                           return std::move(sink).value();
                         });
    }
  } else if (s3_on && config.segment_s > 0) {
    log->warn("recording.segment_s: s3.bucket has Object Lock and no s3.partials_bucket is set: recordings are "
              "not shipped during calls (a node lost with its disk loses its calls in progress)");
  }
  fin_options.enqueue = [&config, q = queue->get(), s3_on, tpl = *s3_template, ev](
                            const sgw::recording::PublishedRecording& pub) -> sgw::common::Status {
    // Before the S3 entry exists, so it goes out before recording.delivered (a
    // second finalisation after a crash raises the same event id: queued once).
    if (ev)
      ev->publish(sgw::storage::published_event(pub.recording_id, pub.fields.conversation_id, pub.fields.call_id,
                                                pub.json_path));
    std::vector<std::string> files = pub.audio_paths;
    files.push_back(pub.json_path);
    std::int64_t start_ms = pub.fields.start_unix_us / 1000;
    std::string rel_base = pub.base_path.substr(std::min(pub.base_path.size(), config.recordings_dir.size()));
    while (!rel_base.empty() && rel_base.front() == '/') rel_base.erase(0, 1);
    // The local copy is a sink delivered when published (the catalogue of what is on disk).
    sgw::storage::DeliveryEntry local;
    local.recording_id = pub.recording_id;
    local.sink = "local";
    local.state = sgw::storage::DeliveryState::kDelivered;
    local.start_unix_ms = start_ms;
    local.end_unix_ms = pub.fields.end_unix_us / 1000;
    local.conversation_id = pub.fields.conversation_id;
    for (const auto& f : files) {
      sgw::storage::DeliveryObject o;
      o.path = f;
      o.key = rel_base + f.substr(std::min(f.size(), pub.base_path.size()));
      o.content_type = content_type_of(f);
      o.delivered = true;
      std::error_code ec;
      o.size = std::filesystem::file_size(f, ec);
      o.verified = "published";
      local.objects.push_back(std::move(o));
    }
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    local.delivered_unix_ms = now_ms;
    if (s3_on) {
      // Write the S3 entry first: the local entry is what retention reads.
      sgw::storage::DeliveryEntry remote;
      remote.recording_id = pub.recording_id;
      remote.sink = "s3";
      remote.start_unix_ms = start_ms;
      remote.end_unix_ms = local.end_unix_ms;
      remote.conversation_id = local.conversation_id;
      remote.call_id = pub.fields.call_id;  // for its recording.delivered/failed events
      // The call-control hook's retention and tags (docs/integrations.md), kept in the entry.
      if (pub.decision) remote.overrides = sgw::storage::object_overrides(*pub.decision);
      sgw::storage::KeyFields k;
      k.start_time = std::chrono::system_clock::time_point(std::chrono::microseconds(pub.fields.start_unix_us));
      k.conversation_id = pub.fields.conversation_id.empty() ? "no-conversation-id" : pub.fields.conversation_id;
      k.recording_id = pub.recording_id;
      k.region = pub.fields.region;
      k.node = pub.fields.node;
      k.call_id = pub.fields.call_id;
      std::string key_base = tpl.render(k);
      // The call-control hook's key_prefix (docs/integrations.md), under s3.prefix.
      if (!pub.fields.key_prefix.empty()) key_base = pub.fields.key_prefix + "/" + key_base;
      if (!config.s3_prefix.empty()) {
        std::string prefix = config.s3_prefix;
        while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
        key_base = prefix + "/" + key_base;
      }

      for (const auto& f : files) {
        sgw::storage::DeliveryObject o;
        o.path = f;
        o.key = key_base + f.substr(std::min(f.size(), pub.base_path.size()));
        o.content_type = content_type_of(f);
        remote.objects.push_back(std::move(o));
      }
      auto r = q->enqueue(std::move(remote));
      if (!r) return r.error();
    }
    auto r = q->enqueue(std::move(local));
    if (!r) return r.error();
    return sgw::common::Ok{};
  };

  fin_options.previous_fragment = [q = queue->get()](const std::string& fragment_of, std::int64_t start_unix_us) {
    return q->previous_recording(fragment_of, start_unix_us / 1000);
  };
  sgw::recording::Finalizer finalizer(
      fin_options,
      {&registry.counter("sgw_recordings_published_total", "Recordings published (audio + JSON)"),
       &registry.counter("sgw_recordings_recovered_total", "Recordings recovered from spool at start-up"),
       &registry.counter("sgw_recordings_failed_total", "Finalisation attempts that failed (spool kept)"),
       &registry.counter("sgw_finalize_queue_full_total", "Finalisations deferred: queue full (a rescan queues them)"),
       &registry.counter("sgw_finalize_retries_total", "Failed finalisations scheduled for a retry"),
       &registry.counter("sgw_recordings_incomplete_total", "Recordings published with complete=false"),
       &registry.counter("sgw_finalize_rescanned_total", "Spools queued by a rescan of the spool folder"),
       &registry.gauge("sgw_finalize_pending", "Finalisations queued, running or waiting for a retry"),
       &registry.gauge("sgw_recovery_pending", "Spools left by a previous run not yet finalised"),
       &registry.labelled_counter("sgw_recording_warnings_total", "Recordings published with a warning, by kind",
                                  "kind"),
       {&registry.counter("sgw_recorded_packets_expected_total", "Published recordings: RTP packets expected (sequence numbers)"),
        &registry.counter("sgw_recorded_packets_received_total", "Published recordings: RTP packets received"),
        &registry.counter("sgw_recorded_packets_lost_total", "Published recordings: RTP packets never received"),
        &registry.counter("sgw_recorded_packets_late_total", "Published recordings: RTP packets too late for the audio"),
        &registry.counter("sgw_recorded_packets_duplicated_total", "Published recordings: duplicate RTP packets"),
        &registry.histogram("sgw_recorded_stream_loss_ratio", "Published recordings: lost/expected per stream",
                            {0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1}),
        &registry.labelled_counter("sgw_recorded_gap_milliseconds_total",
                                   "Published recordings: gap milliseconds by cause (loss, no_media, timestamp_jump, late_start, end, ...)", "cause"),
        &registry.counter("sgw_recorded_ssrc_changes_total", "Published recordings: SSRC changes (SSRCs seen per stream beyond the first)")}});
  // Spools left by a crash or power loss are finalised in the background
  // while new calls are taken (listed now, before any session exists).
  if (std::size_t n = finalizer.recover_in_background(); n > 0)
    log->warn("recovering {} recording(s) from the spool in the background", n);
  finalizer.start(config.finalize_workers);
  for (const auto& p : (*queue)->problems()) log->error("delivery queue: {}", p);
  (*queue)->start();

  // In-call shipping and orphan adoption (docs/failover.md), off the packet path.
  std::unique_ptr<sgw::storage::SegmentShipper> shipper;
  if (std::error_code ec; std::filesystem::remove_all(sgw::app::delivery_queue_dir(config) + "/partials", ec) > 0)
    log->info("removed the local partial files of an earlier version (partials are now streamed from the spools)");
  if (partials_on && config.segment_s > 0) {
    sgw::storage::SegmentShipperOptions so;
    so.interval = std::chrono::seconds(config.segment_s);
    so.bodies = partial_bodies;
    so.max_in_flight = sgw::app::kPartialsInFlight;
    so.node = config.node_name;
    so.region = config.region;
    so.run = run;
    so.open_spools = [&syncer] { return syncer.open_paths(); };
    so.queue = queue->get();
    so.shipped = &registry.counter("sgw_partials_shipped_total", "Spool partials queued for S3 during calls");
    so.bytes = &registry.counter("sgw_partials_shipped_bytes_total", "Spool bytes queued as partials");
    so.errors = &registry.counter("sgw_partials_errors_total",
                                  "Spools that could not be opened for shipping, partials not queued (retried)");
    so.deferred = &registry.counter("sgw_partials_deferred_total",
                                    "Intervals with no partial cut: earlier partials still uploading");
    shipper = std::make_unique<sgw::storage::SegmentShipper>(std::move(so));
    shipper_for_hook.store(shipper.get());
    shipper->start();
    log->info("shipping partials every {} s to bucket {}", config.segment_s, sgw::app::partials_bucket(config));
  }
  // Adoption (docs/failover.md): this node's own earlier runs at once (a restart), other nodes'
  // orphaned runs when recovery.adopt is on, and the clean-up of the runs it adopted.
  std::atomic<bool> adopt_stop{false};
  std::thread adopter;
  if (partials_on) {
    auto& adopted_total = registry.counter("sgw_recordings_adopted_total", "Orphaned recordings adopted from partials");
    adopter = std::thread([&config, &finalizer, &adopt_stop, &adopted_total, run, q = queue->get()] {
      sgw::common::set_thread_name("sgw-adopt");
      auto alog = sgw::common::logger("recover");
      auto cc = partials_client(config);
      if (!cc) return alog->error("partials adoption: {}", cc.error().message);
      auto client = sgw::storage::S3Client::create(*cc);
      if (!client) return alog->error("partials adoption: {}", client.error().message);
      auto next = std::chrono::steady_clock::now();  // the first pass at once: this node's earlier runs
      while (!adopt_stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if (std::chrono::steady_clock::now() < next) continue;
        next = std::chrono::steady_clock::now() + std::chrono::seconds(config.recovery_interval_s);
        sgw::storage::RecoveryOptions ro;
        ro.node = config.node_name;
        ro.region = config.region;
        ro.current_run = run;
        ro.own_over_after_ms = 2 * static_cast<std::int64_t>(config.segment_s) * 1000 + 2000;
        ro.spool_dir = config.spool_dir;
        ro.older_than_ms = static_cast<std::int64_t>(config.recovery_orphan_after_s) * 1000;
        ro.adopt_others = config.recovery_adopt;
        ro.known_locally = [q](const std::string& id) {
          return q->known(id, "s3") != sgw::storage::DeliveryQueue::Known::kNo;
        };
        ro.delivered = [q](const std::string& id) {
          return q->known(id, "s3") == sgw::storage::DeliveryQueue::Known::kDelivered;
        };
        auto r = sgw::storage::recover_orphans(**client, ro);
        for (const auto& a : r.adopted) {
          adopted_total.inc();
          (void)finalizer.submit(a.recording_id);
        }
        for (const auto& p : r.problems) alog->error("adoption: {}", p);
      }
    });
  }

  sgw::media::MediaOptions media_options;
  media_options.address = config.media_address;
  media_options.port_min = config.rtp_port_min;
  media_options.port_max = config.rtp_port_max;
  media_options.workers = config.media_workers;
  media_options.media_timeout_ms = config.media_timeout_s * 1000;
  media_options.latch_port = config.latch == "address_port";
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
  policy.min_session_expires_s = config.min_session_expires_s;
  policy.max_paused_s = config.max_paused_s;
  policy.media_address = config.media_address;
  // A codec that is not built in (G.729 without SGW_WITH_G729) is never
  // answered: its packets could not be decoded, and the recording would be
  // silent while saying it was recorded.
  for (const auto& name : config.codecs) {
    auto info = sgw::media::codec_from_sdp(name, name == "opus" ? 48000 : 8000);
    if (info && !sgw::media::codec_available(info->id)) {
      log->warn("codecs: {} is not built in (SGW_WITH_G729=OFF): it is not answered", name);
      continue;
    }
    policy.codecs.preference.push_back(name);
  }
  if (config.srtp != "off")
    if (auto st = sgw::media::srtp_library_init(); !st) return fail("media.srtp: " + st.error().message);
  policy.codecs.srtp = config.srtp == "require" ? sgw::siprec::CodecPolicy::Srtp::kRequire
                      : config.srtp == "allow"   ? sgw::siprec::CodecPolicy::Srtp::kAllow
                                                 : sgw::siprec::CodecPolicy::Srtp::kOff;
  policy.metadata_limits.max_bytes = config.metadata_max_bytes;
  policy.metadata_limits.max_depth = config.metadata_max_depth;
  policy.conversation_id_rules = std::move(rules).value();
  policy.recordings_dir = config.recordings_dir;
  if (auto allowed = sgw::sip::SourceAllowList::parse(config.allowed_sources)) {
    policy.admission.allowed_sources = std::move(allowed).value();
  } else {
    return fail("sip.allowed_sources: " + allowed.error().message);
  }
  policy.admission.invite_rate_per_source = config.invite_rate_per_source;
  policy.admission.invite_burst_per_source = config.invite_burst_per_source;
  policy.admission.max_sessions_per_source = config.max_sessions_per_source;
  policy.admission.max_streams_per_session = config.max_streams_per_session;
  // Live audio (docs/integrations.md "Live audio"): one streaming thread; each recording's spool
  // sink is wrapped in a tap that copies its packets off the durability path.
  std::unique_ptr<sgw::stream::Streamer> streamer;
  sgw::common::Counter* stream_packets_dropped = nullptr;
  // The configured target; the call-control hook may give each call its own (or none), so
  // with an invite hook the streaming thread runs even without stream.url.
  const sgw::stream::StreamTarget configured_stream{
      config.stream_url,
      config.stream_protocol == "plain" ? sgw::stream::Protocol::kPlain : sgw::stream::Protocol::kAudioHook,
      config.stream_api_key, config.stream_organization_id};
  if (!config.stream_url.empty() || !config.hooks_invite_url.empty()) {
    sgw::stream::StreamerOptions so;
    so.ca_file = config.stream_ca_file;
    so.delay_ms = config.stream_delay_ms;
    so.max_queued_frames = config.stream_max_queued_frames;
    so.ping_interval_s = config.stream_ping_interval_s;
    so.layout = layout;
    so.metadata_limits.max_bytes = config.metadata_max_bytes;
    so.metadata_limits.max_depth = config.metadata_max_depth;
    so.metrics = {&registry.counter("sgw_stream_frames_sent_total", "Live-audio 20 ms frames written to WebSocket servers"),
                  &registry.counter("sgw_stream_frames_dropped_total",
                                    "Live-audio frames dropped: the server was slow or unreachable (never the recording)"),
                  &registry.counter("sgw_stream_connect_failures_total", "Live-audio WebSocket connections that failed"),
                  &registry.gauge("sgw_stream_active", "Recordings being streamed live")};
    so.metrics.connections_lost = &registry.counter(
        "sgw_stream_connections_lost_total", "Live-audio WebSocket connections lost mid-call (retried)");
    so.metrics.reconnects = &registry.counter(
        "sgw_stream_reconnects_total", "Live-audio WebSocket connections made again after one was lost");
    stream_packets_dropped = &registry.counter(
        "sgw_stream_packets_dropped_total", "RTP packets the live-audio queue had no room for (never the recording)");
    if (!config.stream_url.empty() && !sgw::stream::valid_stream_url(config.stream_url))
      return fail("stream.url: not a ws:// or wss:// URL");
    auto started = sgw::stream::Streamer::start(std::move(so));
    if (!started) return fail(started.error().message);
    streamer = std::move(started).value();
    if (!config.stream_url.empty())
      log->info("live audio: every recording streamed to {} ({}){}", sgw::stream::redact_url(config.stream_url),
                config.stream_protocol,
                config.hooks_invite_url.empty() ? "" : " unless the call-control hook answers another stream");
    else
      log->info("live audio: to the stream the call-control hook answers, per call");
  }
  // Call-control hook (docs/integrations.md): its own thread; stopped below
  // before the session manager whose callbacks it holds.
  std::unique_ptr<sgw::control::HookClient> hooks;
  if (!config.hooks_invite_url.empty() || !config.hooks_update_url.empty()) {
    hooks = std::make_unique<sgw::control::HookClient>(
        sgw::control::HookOptions{config.hooks_timeout_ms, config.hooks_on_error == "reject", 4096,
                                  {config.s3_tags, !config.s3_bucket.empty() && config.s3_retention_mode.empty()}},
        sgw::control::HookMetrics{&registry.labelled_counter(
            "sgw_hook_requests_total", "Call-control hook requests by outcome", "outcome")});
    auto bind = [&hooks](const std::string& url) -> sgw::siprec::Policy::HookCall {
      if (url.empty()) return nullptr;
      return [client = hooks.get(), url](std::string body, std::function<void(sgw::recording::CallDecision)> done) {
        client->call(url, std::move(body), std::move(done));
      };
    };
    policy.invite_hook = bind(config.hooks_invite_url);
    policy.update_hook = bind(config.hooks_update_url);
  }
  if (ev) policy.on_event = [ev](sgw::storage::WebhookEvent e) { ev->publish(std::move(e)); };
  // A new session's spool is created on the manager's own thread, not the SIP thread
  // (docs/performance.md "The SIP thread"): the factory below must stay callable from there.
  policy.sink_thread = true;
  policy.metadata_thread = true;  // and its metadata parsed on another: metadata::parse is pure
  sgw::siprec::SessionManager sessions(
      policy, media->get(), session_metrics,
      [&](sgw::siprec::SinkRequest r) -> sgw::common::Result<std::unique_ptr<sgw::media::SessionSink>> {
        // docs/integrations.md "Live audio": the hook's stream for this call, else stream.*.
        std::optional<sgw::stream::StreamTarget> target;
        if (streamer) target = sgw::stream::stream_target_for(configured_stream, r.stream);
        if (target && !sgw::stream::valid_stream_url(target->url)) {
          sgw::common::logger("stream")->warn("{}: the call-control hook's stream url {} is not usable; not streamed",
                                              r.recording_id, sgw::stream::redact_url(target->url));
          target.reset();
        }
        sgw::stream::StreamSetup setup;
        if (target) setup = {r.recording_id, r.start_json, r.metadata_docs, r.streams_event_json};
        auto sink = sgw::recording::SpoolSink::create(
            {config.spool_dir, &syncer, spool_metrics, nullptr},
            {std::move(r.recording_id), std::move(r.start_json), std::move(r.metadata_docs),
             std::move(r.streams_event_json), std::move(r.on_durable), std::move(r.on_failure)});
        if (!sink) return sink.error();
        if (!target) return std::unique_ptr<sgw::media::SessionSink>(std::move(sink).value());
        auto live = std::make_shared<sgw::stream::LiveStream>(std::move(*target), std::move(setup),
                                                              config.stream_queue_packets);
        streamer->attach(live);
        return std::unique_ptr<sgw::media::SessionSink>(std::make_unique<sgw::stream::StreamTap>(
            std::move(sink).value(), std::move(live), stream_packets_dropped));
      },
      [&finalizer](const std::string& recording_id) {
        if (!finalizer.submit(recording_id))
          sgw::common::logger("finalize")->warn("{}: finaliser queue full; the next spool rescan queues it",
                                                recording_id);
      });
  sessions_for_timeouts = &sessions;

  sgw::sip::EndpointOptions sip_options;
  sip_options.max_message_bytes = config.max_message_bytes;
  sip_options.udp_receive_buffer_bytes = config.udp_receive_buffer_bytes;
  sip_options.tcp_idle_timeout_ms = config.tcp_idle_timeout_s * 1000;
  sip_options.tcp_message_timeout_ms = config.tcp_message_timeout_s * 1000;
  sip_options.max_connections_per_source = config.max_connections_per_source;
  sip_options.connections_closed = &registry.counter(
      "sgw_sip_tcp_connections_closed_total",
      "SIP TCP connections closed: silent since accepted, or over sip.max_connections_per_source");
  sip_options.malformed_requests = &registry.counter(
      "sgw_sip_malformed_requests_total",
      "SIP requests with a header they depend on that did not parse (answered 400, or an ACK dropped)");
  for (const auto& l : config.listen)
    sip_options.listen.push_back({l.transport == sgw::app::Transport::kUdp   ? "udp"
                                  : l.transport == sgw::app::Transport::kTcp ? "tcp"
                                                                             : "tls",
                                  l.address, l.port});
  sip_options.tls.cert_file = config.tls_cert_file;
  sip_options.tls.key_file = config.tls_key_file;
  sip_options.tls.ca_file = config.tls_ca_file;
  sip_options.tls.verify_client = config.tls_verify_client;
  sip_options.tls.allowed_subjects = config.tls_allowed_subjects;
  sip_options.tls.ciphers = config.tls_ciphers;
  sip_options.tls.min_version = config.tls_min_version;
  sip_options.tls.handshake_timeout_ms = config.tls_handshake_timeout_ms;
  sip_options.tls_counters.handshake_failures = &registry.counter(
      "sgw_sip_tls_handshake_failures_total",
      "TLS handshakes on tls: listeners that failed or did not finish within tls.handshake_timeout_ms");
  sip_options.tls_counters.accepted = &registry.counter(
      "sgw_sip_tls_connections_total", "TLS connections accepted on tls: listeners (handshake completed)");
  sip_options.tls.allowed_sources = policy.admission.allowed_sources;
  sip_options.tls_counters.refused_sources = &session_metrics.limits_hit->with("allowed_sources");
  sip_options.tls_forbidden = &registry.counter(
      "sgw_sip_tls_forbidden_total",
      "SIP requests over TLS answered 403: client certificate subject outside tls.allowed_subjects");
  auto endpoint = sgw::sip::Endpoint::create(sip_options, &sessions);
  if (!endpoint) return fail(endpoint.error().message);
  sessions.attach(endpoint->get());
  sip_for_timeouts.store(endpoint->get());

  sgw::sip::Endpoint* ep = endpoint->get();
  // A drain from `siprecd drain` / POST /drain: the node keeps running (and
  // answers 503) once every session has ended; SIGTERM's drain stops it.
  auto http_drain = [ep, &sessions, &config, log]() -> std::string {
    ep->post([&sessions, &config, log] {
      log->info("drain requested over HTTP (drain.max_s {})", config.drain_max_s);
      sessions.drain([log] { log->info("drained: no session left (still running)"); }, config.drain_max_s);
    });
    return nlohmann::json{{"draining", true}, {"active_sessions", sessions.active_sessions()},
                          {"max_s", config.drain_max_s}}.dump();
  };
  auto http_resume = [ep, &sessions]() -> std::string {
    ep->post([&sessions] { sessions.resume(); });
    return nlohmann::json{{"draining", false}, {"active_sessions", sessions.active_sessions()}}.dump();
  };
  sgw::control::ControlServer control(
      &registry, {[&sessions, q = queue->get()] {
                    std::vector<sgw::control::NotReady> out;
                    for (auto& [r, detail] : sessions.unfit_reasons())
                      out.push_back({sgw::siprec::unfit_label(r), detail});
                    // Degraded, not refusing calls: recordings are kept locally meanwhile.
                    if (auto h = q->health(); !h.empty()) out.push_back({"delivery_failing", h});
                    return out;
                  },
                  [&sessions] { return sessions.snapshot_json().dump(); }, http_drain, http_resume});
  if (!config.http_listen.empty()) {
    auto st = control.start(config.http_listen);
    if (!st) return fail(st.error().message);
  }

  // Storage health, every kHealthCheckMs on the SIP thread: both folders
  // writable, recording.min_free_mb free, the delivery backlog younger than
  // storage.max_backlog_age_s. While one fails, OPTIONS and new INVITEs get
  // 503 (SRCs move on) and /readyz says why (docs/failover.md). A failed spool write turns it bad at once
  // (SessionManager::storage_failed); it turns good again only once a probe
  // file can be written and synced in the spool folder.
  auto probe_write = [&] {
    std::string path = config.spool_dir + "/.storage-probe";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    char block[4096] = {};
    bool ok = ::write(fd, block, sizeof block) == static_cast<ssize_t>(sizeof block) && ::fdatasync(fd) == 0;
    ::close(fd);
    ::unlink(path.c_str());
    return ok;
  };
  std::function<void()> check_storage = [&] {
    auto writable = [&](const std::string& dir) { return ::access(dir.c_str(), W_OK) == 0; };
    auto free_bytes = [&](const std::string& dir) -> std::optional<unsigned long long> {
      struct statvfs vfs{};
      if (::statvfs(dir.c_str(), &vfs) != 0) return std::nullopt;
      return static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize;
    };
    auto free_mb = [&](const std::string& dir) -> std::optional<unsigned long long> {
      if (auto b = free_bytes(dir)) return *b / (1024 * 1024);
      return std::nullopt;
    };
    // Age of the oldest queued or uploading delivery (0: none).
    auto oldest = (*queue)->oldest_undelivered_unix_ms();
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    std::int64_t age_s = oldest && now_ms > *oldest ? (now_ms - *oldest) / 1000 : 0;
    bool ok = writable(config.recordings_dir) && writable(config.spool_dir) &&
              (sessions.storage_ok() || probe_write());
    if (ok != sessions.storage_ok())
      (ok ? log->info("storage usable again") : log->error("storage unusable: {} or {} not writable",
                                                            config.recordings_dir, config.spool_dir));
    sessions.set_storage_ok(ok);
    // recording.min_free_mb: the spool's filesystem (and the recordings
    // folder's, where the finished files go) must keep that much free.
    if (config.min_free_mb > 0) {
      std::string low;
      for (const auto* dir : {&config.spool_dir, &config.recordings_dir})
        if (auto mb = free_mb(*dir); !mb || *mb < config.min_free_mb)
          low = *dir + " has " + (mb ? std::to_string(*mb) : std::string("unknown")) +
                " MB free, recording.min_free_mb " + std::to_string(config.min_free_mb);
      bool was = false;
      for (auto& [r, d] : sessions.unfit_reasons()) was = was || r == sgw::siprec::Unfit::kSpoolDiskLow;
      if (!low.empty() && !was) log->error("refusing new sessions: {}", low);
      if (low.empty() && was) log->info("spool disk space above recording.min_free_mb again");
      sessions.set_unfit(sgw::siprec::Unfit::kSpoolDiskLow, !low.empty(), low);
    }
    // storage.max_backlog_age_s: a recording not delivered for that long.
    if (config.max_backlog_age_s > 0) {
      bool late = oldest && age_s >= static_cast<std::int64_t>(config.max_backlog_age_s);
      std::string detail = late ? "oldest undelivered recording queued " + std::to_string(age_s) +
                                      " s ago, storage.max_backlog_age_s " + std::to_string(config.max_backlog_age_s)
                                : std::string();
      bool was = false;
      for (auto& [r, d] : sessions.unfit_reasons()) was = was || r == sgw::siprec::Unfit::kBacklog;
      if (late && !was) log->error("refusing new sessions: {}", detail);
      if (!late && was) log->info("delivery backlog below storage.max_backlog_age_s again");
      sessions.set_unfit(sgw::siprec::Unfit::kBacklog, late, detail);
    }
    ready_gauge.set(sessions.unfit_reasons().empty() ? 1 : 0);
    spool_free.set(static_cast<std::int64_t>(free_bytes(config.spool_dir).value_or(0)));
    recordings_free.set(static_cast<std::int64_t>(free_bytes(config.recordings_dir).value_or(0)));
    std::int64_t bytes = 0;
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(config.spool_dir, ec))
      if (std::error_code fe; f.is_regular_file(fe)) {
        auto size = f.file_size(fe);
        if (!fe) bytes += static_cast<std::int64_t>(size);
      }
    spool_bytes.set(bytes);
    oldest_pending.set(age_s);
    (*endpoint)->after(kHealthCheckMs, check_storage);
  };
  (*endpoint)->post(check_storage);

  std::thread sip_thread([&] {
    sgw::common::set_thread_name("sgw-sip");
    (*endpoint)->run();
  });

  std::string sip_list;
  for (const auto& a : (*endpoint)->bound_addresses()) sip_list += (sip_list.empty() ? "" : " ") + a;
  std::cout << "siprecd ready: sip " << sip_list << "; http "
            << (config.http_listen.empty() ? "off" : config.http_listen) << "; media "
            << config.media_address << " " << config.rtp_port_min << "-" << config.rtp_port_max
            << "; recordings " << config.recordings_dir << std::endl;
  log->info("node {} region {} ready", config.node_name, config.region);
  // systemd Type=notify (no-ops without NOTIFY_SOCKET). The watchdog is fed
  // from the SIP thread, so a stuck signalling loop stops feeding it.
  sd_notifyf(0, "READY=1\nSTATUS=recording; sip %s\nMAINPID=%lu", sip_list.c_str(),
             static_cast<unsigned long>(getpid()));
  std::uint64_t watchdog_us = 0;
  std::function<void()> feed;  // outlives the SIP thread (joined below)
  if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0) {
    auto period_ms = static_cast<std::uint32_t>(std::max<std::uint64_t>(watchdog_us / 2000, 1));
    feed = [&feed, ep = endpoint->get(), period_ms] {
      sd_notify(0, "WATCHDOG=1");
      ep->after(period_ms, feed);
    };
    (*endpoint)->post(feed);
    log->info("systemd watchdog every {} ms", period_ms);
  }

  // SIGHUP: what can change live is applied; the rest is named (restart needed).
  sgw::app::Reloader reloader;
  reloader.add("log", {"log."}, [&](const Config& running, const Config& fresh, sgw::app::ReloadReport& r) {
    if (running.log_level == fresh.log_level && running.log_format == fresh.log_format &&
        running.redact_personal_data == fresh.redact_personal_data)
      return;
    sgw::common::init_logging(log_options(fresh));
    r.applied.push_back("log (level " + fresh.log_level + ", format " + fresh.log_format + ", redact " +
                        (fresh.redact_personal_data ? "true" : "false") + ")");
  });
  reloader.add("limits", {"sip.max_sessions", "sip.retry_after_s"},
               [&](const Config& running, const Config& fresh, sgw::app::ReloadReport& r) {
                 if (running.max_sessions == fresh.max_sessions && running.retry_after_s == fresh.retry_after_s)
                   return;
                 (*endpoint)->post([&sessions, m = fresh.max_sessions, ra = fresh.retry_after_s] {
                   sessions.set_limits(m, ra);
                 });
                 r.applied.push_back("sip.max_sessions " + std::to_string(fresh.max_sessions) +
                                     ", sip.retry_after_s " + std::to_string(fresh.retry_after_s));
               });
  Config running = config;

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
    if (sig == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      auto fresh = sgw::app::resolve_config(*cli);
      if (!fresh) {
        log->error("reload: configuration not reloaded: {}", fresh.error().message);
      } else {
        auto report = reloader.reload(running, *fresh);
        for (const auto& a : report.applied) log->info("reload: applied {}", a);
        for (const auto& e : report.errors) log->error("reload: {}", e);
        std::string keys;
        for (const auto& k : report.not_reloadable) keys += (keys.empty() ? "" : ", ") + k;
        if (!keys.empty()) log->warn("reload: changed but not reloadable (restart to apply): {}", keys);
        if (report.applied.empty() && keys.empty()) log->info("reload: nothing changed");
        running = std::move(fresh).value();
      }
      // The TLS certificate files are re-read even when the configuration is unchanged (rotation).
      if (auto st = ep->reload_tls(); !st)
        log->error("SIGHUP: TLS certificate not reloaded, the previous one stays in use: {}",
                   st.error().message);
      else
        log->info("SIGHUP: TLS certificate files reloaded (new connections use them)");
      sd_notify(0, "READY=1");
      continue;
    }
    if (draining) {
      log->warn("second signal: stopping without waiting for sessions to end");
      ep->stop();
      continue;
    }
    draining = true;
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    ready_gauge.set(0);
    log->info("signal {}: draining", sig);
    ep->post([ep, &sessions, &config, log] {
      sessions.drain(
          [ep, log] {
            log->info("drained: no session left");
            ep->stop();
          },
          config.drain_max_s);
      // After drain.max_s the rest get BYE; BYEs that get no answer end by
      // transaction timeout (32 s); do not wait longer.
      ep->after(config.drain_max_s * 1000 + 40000, [ep] { ep->stop(); });
    });
  }
  waiter.join();
  if (hooks) hooks->stop();  // pending decisions are posted to the stopped SIP thread and dropped
  // Shutdown order (docs/architecture.md): the SIP thread has stopped, so
  // nothing new reaches the sessions or the media engine. Every session
  // still open is closed (complete:false, "gateway stopped") while the
  // workers exist; stopping the media engine runs those closes and joins
  // the workers (the engine forgets its sessions, so nothing can reach a
  // freed worker); then the syncer makes every spool durable, and the
  // finaliser and delivery stop (spools they did not reach are finished
  // by recovery at the next start).
  control.stop();
  sessions.shutdown();
  (*media)->stop();
  if (streamer) streamer->stop();
  if (shipper) shipper->stop();
  adopt_stop.store(true);
  if (adopter.joinable()) adopter.join();
  syncer.stop();
  finalizer.stop();
  (*queue)->stop();
  // Last: every event raised above is written to the event queue (delivered at the next start if not now).
  if (events) events->stop();
  if (event_queue) event_queue->stop();
  log->info("stopped");
  sgw::common::flush_logging();
  return 0;
}
