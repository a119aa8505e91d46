#include "app/cli.h"

#include <CLI/CLI.hpp>

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
  app.add_flag("--version", opts.show_version, "Print the version and exit");

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
