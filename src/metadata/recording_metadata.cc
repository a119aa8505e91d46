#include "metadata/recording_metadata.h"

namespace sgw::metadata {

std::string_view dialect_name(Dialect d) {
  switch (d) {
    case Dialect::kRfc7865:
      return "rfc7865";
    case Dialect::kDraft:
      return "draft";
    case Dialect::kLegacySiprec:
      return "siprec-legacy";
    case Dialect::kCiscoHeaders:
      return "cisco-headers";
  }
  return "unknown";
}

std::string_view data_mode_name(DataMode m) {
  return m == DataMode::kPartial ? "partial" : "complete";
}

}  // namespace sgw::metadata
