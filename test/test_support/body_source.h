// read_body: everything a storage::BodySource (an upload body streamed from the spools) gives,
// read from 0 in pieces of at most `step` bytes, as the S3 client reads it. Shared by the storage
// unit tests (include "test_support/body_source.h").
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "storage/s3_client.h"

namespace sgw::test_support {

// The body, or "read error <n>" for the first read that returned n <= 0.
inline std::string read_body(storage::BodySource& src, std::size_t step = 4096) {
  std::string out(src.size(), '\0');
  std::uint64_t pos = 0;
  while (pos < src.size()) {
    std::int64_t n = src.read(pos, out.data() + pos, std::min<std::uint64_t>(step, src.size() - pos));
    if (n <= 0) return "read error " + std::to_string(n);
    pos += static_cast<std::uint64_t>(n);
  }
  return out;
}

}  // namespace sgw::test_support
