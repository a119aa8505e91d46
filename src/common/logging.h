// Per-component loggers (spdlog). Lines about a call carry its Call-ID or recording id.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace sgw::common {

// Sets the global level ("trace", "debug", "info", "warn", "error", "off").
// Returns false for an unknown level name. Call once at start-up.
bool init_logging(std::string_view level);

// Returns the logger for a component ("sip", "siprec", "media", ...), creating it once.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

bool valid_log_level(std::string_view level);

}  // namespace sgw::common
