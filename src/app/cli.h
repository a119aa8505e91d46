// The `siprecd` command line (CLI11): flags are collected into CliOptions, then
// resolve_config() layers defaults, the YAML file and the flags into one
// validated Config. Start-up plane; nothing here throws.
#pragma once

#include <string>
#include <vector>

#include "app/config.h"
#include "common/result.h"

namespace sgw::app {

struct CliOptions {
  std::string config_file;        // --config FILE
  std::string check_config_file;  // --check-config FILE: validate FILE and exit
  CliOverrides overrides;         // --listen, --media-address, --rtp-ports, ...
  bool show_version = false;      // --version: print the version and exit 0
  // `siprecd deliveries [--queue-dir DIR] [--json] [list | retry ID [--sink S]]`
  bool deliveries = false;
  std::string deliveries_action = "list";  // list | retry
  std::string deliveries_id;               // retry: recording id
  std::string deliveries_sink = "s3";
  std::string queue_dir;                   // --queue-dir (else from the config)
  bool deliveries_json = false;
  // `siprecd drain [--resume] [--url http://ADDR:PORT]`: POST /drain (or
  // /resume) to a running node's control server (default: http.listen).
  bool drain = false;
  bool drain_resume = false;
  std::string drain_url;
  // `siprecd conversation ID [--dir DIR | --s3] [--stitch OUT.wav] [--json]`
  // (docs/failover.md): a conversation's fragments, coverage and gaps.
  bool conversation = false;
  std::string conversation_id;
  std::vector<std::string> conversation_dirs;  // --dir, repeatable (else recording.dir)
  bool conversation_s3 = false;   // --s3: read the configured bucket
  std::vector<std::string> conversation_buckets;  // --bucket, repeatable (implies --s3)
  std::string conversation_stitch;  // --stitch OUT.wav
  bool conversation_json = false;
  // `siprecd recover [--older-than S] [--json]`: adopt orphaned partials (docs/failover.md)
  bool recover = false;
  long long recover_older_than_s = -1;  // -1: recovery.orphan_after_s
  bool recover_json = false;
  bool help_shown = false;        // --help/-h: print help_text and exit 0
  std::string help_text;          // the usage text (always filled)
};

// Parses argv. An unknown flag, a missing value or a stray argument is an
// error carrying CLI11's message (code "cli.usage"). Values are not validated
// here; resolve_config() does that and names the flag.
common::Result<CliOptions> parse_cli(int argc, char** argv);

// Defaults, then the file (check_config_file if given, else config_file, if
// any), then the flag overrides, then validate(). Errors name the file and key,
// or the flag.
common::Result<Config> resolve_config(const CliOptions& options);

}  // namespace sgw::app
