// Parser for SIPREC recording metadata (RFC 7865 and the older dialects real SRCs send).
//
// Contract: `parse` never throws and never asserts on input; any document it cannot use comes
// back as a common::Error with one of these codes:
//   metadata.too_large      xml.size() > limits.max_bytes (checked before any parsing)
//   metadata.doctype        the document has a DOCTYPE (never processed, never expanded)
//   metadata.xml            not well-formed XML (message names the offset)
//   metadata.depth          element nesting deeper than limits.max_depth
//   metadata.attributes     an element with more than limits.max_attributes attributes
//   metadata.not_recording  the root is not <recording> / <recording_metadata>
// Oddities that do not stop us (unknown namespace, unknown datamode, empty ids, references to
// undeclared participants) are tolerated and listed in RecordingMetadata::warnings.
//
// Thread-safety: a pure function; call from any thread. The result owns all its strings.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/result.h"
#include "metadata/recording_metadata.h"

namespace sgw::metadata {

struct ParseLimits {
  std::size_t max_bytes = 256 * 1024;
  unsigned max_depth = 32;  // the root element is depth 1
  // Per element. Real metadata uses a handful; the bound keeps namespace resolution (which
  // scans the attributes of an element's ancestors) linear in the document size.
  unsigned max_attributes = 64;
};

common::Result<RecordingMetadata> parse(std::string_view xml, const ParseLimits& limits = {});

}  // namespace sgw::metadata
