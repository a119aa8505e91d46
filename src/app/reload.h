// SIGHUP / `systemctl reload`: re-read the configuration file and apply what
// can change while calls run. Components register a hook; each hook applies
// its part of the fresh configuration and says what it applied. Keys that
// differ but no hook takes are reported as needing a restart.
// Thread: reload() runs on main's signal thread; hooks must post to their own
// thread if their state is not thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "app/config.h"

namespace sgw::app {

struct ReloadReport {
  std::vector<std::string> applied;          // "log.level info -> debug"
  std::vector<std::string> not_reloadable;   // dotted keys that changed but need a restart
  std::vector<std::string> errors;           // a hook that failed: "tls: cannot read key file ..."
};

class Reloader {
 public:
  // A hook gets the running and the fresh configuration; it applies what it
  // owns and appends to report.applied (or report.errors). KEYS are the dotted
  // config keys (or prefixes ending in '.', e.g. "tls.") it applies, so they
  // are not reported as needing a restart.
  using Hook = std::function<void(const Config& running, const Config& fresh, ReloadReport& report)>;
  void add(std::string name, std::vector<std::string> keys, Hook hook);

  // Runs every hook, then lists the changed keys no hook owns.
  ReloadReport reload(const Config& running, const Config& fresh) const;

 private:
  struct Entry {
    std::string name;
    std::vector<std::string> keys;
    Hook hook;
  };
  std::vector<Entry> hooks_;
};

// The dotted keys whose values differ between A and B (the sections that a
// restart is needed for are listed per key; TLS and other sections added
// later compare through their own hooks).
std::vector<std::string> changed_keys(const Config& a, const Config& b);

}  // namespace sgw::app
