#include "app/cli.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace sgw::app {

using common::make_error;
using common::Result;

Result<CliOptions> parse_cli(int argc, char** argv) {
  CliOptions opts;
  CLI::App app{"siprecd: SIPREC Session Recording Server (RFC 7866).\n"
               "Settings come from the built-in defaults, then --config FILE, then the flags below.",
               "siprecd"};
  app.get_formatter()->column_width(34);

  app.add_option("--config", opts.config_file, "YAML configuration file")->type_name("FILE");
  app.add_option("--check-config", opts.check_config_file,
                 "Validate FILE and exit (not with --config)")
      ->type_name("FILE");
  app.add_option("--listen", opts.overrides.listen,
                 "SIP listen address; repeat for several; replaces sip.listen")
      ->type_name("udp|tcp:ADDR:PORT")
      ->allow_extra_args(false);
  app.add_option("--media-address", opts.overrides.media_address,
                 "Local address for RTP, also put in SDP (media.address)")
      ->type_name("ADDR");
  app.add_option("--rtp-ports", opts.overrides.rtp_ports, "RTP port range (media.rtp_ports)")
      ->type_name("MIN-MAX");
  app.add_option("--recordings-dir", opts.overrides.recordings_dir,
                 "Finished recordings (recording.dir)")
      ->type_name("DIR");
  app.add_option("--spool-dir", opts.overrides.spool_dir,
                 "Recordings in progress (recording.spool_dir)")
      ->type_name("DIR");
  app.add_option("--http", opts.overrides.http_listen,
                 "Health/metrics HTTP listen address (http.listen)")
      ->type_name("ADDR:PORT");
  app.add_option("--log-level", opts.overrides.log_level,
                 "trace|debug|info|warn|error|critical|off (log.level)")
      ->type_name("LEVEL");
  app.add_option("--s3-bucket", opts.overrides.s3_bucket, "Deliver recordings to this S3 bucket (s3.bucket)")
      ->type_name("NAME");
  app.add_option("--s3-endpoint", opts.overrides.s3_endpoint, "S3 endpoint URL (s3.endpoint)")->type_name("URL");
  app.add_option("--s3-region", opts.overrides.s3_region, "S3 region (s3.region)")->type_name("REGION");
  app.add_flag("--s3-path-style", opts.overrides.s3_path_style, "Path-style S3 URLs (s3.path_style)");
  app.add_option("--s3-prefix", opts.overrides.s3_prefix, "Key prefix in the bucket (s3.prefix)")->type_name("P");
  app.add_option("--retention-mode", opts.overrides.retention_mode,
                 "Object Lock mode (s3.retention_mode)")
      ->type_name("COMPLIANCE|GOVERNANCE");
  app.add_option("--retention-days", opts.overrides.retention_days,
                 "Object Lock retention from the recording's start (s3.retention_days)")
      ->type_name("N");
  app.add_flag("--version", opts.show_version, "Print the version and exit");

  // `siprecd deliveries`: the delivery queue, read from disk (docs/storage.md).
  CLI::App* dq = app.add_subcommand("deliveries", "List the delivery queue, or requeue a failed delivery");
  dq->fallthrough();  // --config, --spool-dir ... given after the subcommand still count
  dq->add_option("--queue-dir", opts.queue_dir, "Queue folder (storage.queue_dir)")->type_name("DIR");
  dq->add_flag("--json", opts.deliveries_json, "Print JSON (one object per entry, in an array)");
  dq->add_option("--sink", opts.deliveries_sink, "retry: the sink (default s3)")->type_name("SINK");
  std::vector<std::string> dq_args;
  dq->add_option("action", dq_args, "list (default) | retry RECORDING_ID")->expected(0, 2);

  // `siprecd drain`: drain a running node without stopping it (docs/failover.md).
  CLI::App* dr = app.add_subcommand("drain", "Drain a running siprecd (POST /drain to its http.listen)");
  dr->fallthrough();
  dr->add_flag("--resume", opts.drain_resume, "Cancel the drain: take new sessions again (POST /resume)");
  dr->add_option("--url", opts.drain_url, "Control server (default http://<http.listen>)")->type_name("URL");

  // `siprecd conversation ID`: fragments of one conversation joined (docs/failover.md).
  CLI::App* cv = app.add_subcommand("conversation", "List a conversation's fragments, coverage and gaps; stitch them");
  cv->fallthrough();
  cv->add_option("id", opts.conversation_id, "Conversation id")->required();
  cv->add_option("--dir", opts.conversation_dirs,
                 "Recordings folder to read; repeat for several gateways' folders (default recording.dir)")
      ->type_name("DIR");
  cv->add_flag("--s3", opts.conversation_s3, "Read the configured S3 bucket instead of a folder");
  cv->add_option("--bucket", opts.conversation_buckets,
                 "With --s3: read this bucket instead (repeat for each region's; s3.* credentials)")
      ->type_name("NAME");
  cv->add_option("--stitch", opts.conversation_stitch,
                 "Write the whole conversation as one WAV (and OUT.json stating gaps and sources)")
      ->type_name("OUT.wav");
  cv->add_flag("--json", opts.conversation_json, "Print JSON");

  // `siprecd recover`: adopt other nodes' orphaned partials (docs/failover.md).
  CLI::App* rc = app.add_subcommand("recover", "Rebuild recordings from partials whose node stopped shipping");
  rc->fallthrough();
  rc->add_option("--older-than", opts.recover_older_than_s,
                 "Orphaned when the newest partial is older than S seconds (default recovery.orphan_after_s)")
      ->type_name("S")
      ->check(CLI::NonNegativeNumber);
  rc->add_flag("--json", opts.recover_json, "Print the result as JSON");

  opts.help_text = app.help();
  // Start-up plane: CLI11 reports through exceptions; they stop here.
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    opts.help_shown = true;
  } catch (const CLI::CallForAllHelp&) {
    opts.help_shown = true;
  } catch (const CLI::ParseError& e) {
    return make_error("cli.usage", e.what());
  }
  if (!opts.help_shown && rc->parsed()) opts.recover = true;
  if (!opts.help_shown && dq->parsed()) {
    opts.deliveries = true;
    if (!dq_args.empty()) opts.deliveries_action = dq_args[0];
    if (opts.deliveries_action == "list") {
      if (dq_args.size() > 1) return make_error("cli.usage", "deliveries list: takes no argument");
    } else if (opts.deliveries_action == "retry") {
      if (dq_args.size() != 2) return make_error("cli.usage", "deliveries retry: expected a RECORDING_ID");
      opts.deliveries_id = dq_args[1];
    } else {
      return make_error("cli.usage", "deliveries: unknown action '" + opts.deliveries_action +
                                         "' (expected list or retry ID)");
    }
  }
  if (!opts.help_shown && dr->parsed()) opts.drain = true;
  if (!opts.help_shown && cv->parsed()) {
    opts.conversation = true;
    if (!opts.conversation_buckets.empty()) opts.conversation_s3 = true;
    if (opts.conversation_s3 && !opts.conversation_dirs.empty())
      return make_error("cli.usage", "conversation: give --dir or --s3, not both");
  }
  // Checked here rather than with CLI11's excludes(), which clutters --help.
  if (!opts.help_shown && !opts.config_file.empty() && !opts.check_config_file.empty())
    return make_error("cli.usage", "--config and --check-config cannot be used together");
  return opts;
}

Result<Config> resolve_config(const CliOptions& options) {
  const std::string& file =
      options.check_config_file.empty() ? options.config_file : options.check_config_file;
  Config config = default_config();
  if (!file.empty()) {
    auto loaded = load_config_file(file);
    if (!loaded) return loaded.error();
    config = std::move(*loaded);
  }
  return apply_overrides(std::move(config), options.overrides);
}

}  // namespace sgw::app
