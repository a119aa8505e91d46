// libFuzzer target: decode_partial (storage/partials.h), the parser of a partial's body as
// an adopter reads it back from S3 (a damaged or hostile object must be refused, never read
// outside the body). What it accepts must encode back to the same index. Seed corpus:
// fuzz/corpus/fuzz_partial.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "storage/partials.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto d = sgw::storage::decode_partial(body);
  if (!d) return 0;
  std::size_t total = 0;
  if (d->data.size() != d->index.chunks.size() || d->damaged.size() != d->index.chunks.size()) std::abort();
  std::vector<std::string> bytes;
  for (std::size_t i = 0; i < d->data.size(); ++i) {
    if (d->damaged[i] ? !d->data[i].empty() : d->data[i].size() != d->index.chunks[i].length) std::abort();
    if (!d->data[i].empty() &&
        (d->data[i].data() < body.data() || d->data[i].data() + d->data[i].size() > body.data() + body.size()))
      std::abort();
    total += d->index.chunks[i].length;
    bytes.emplace_back(d->damaged[i] ? std::string(d->index.chunks[i].length, 'x') : std::string(d->data[i]));
  }
  if (total > size) std::abort();
  // Encoded again (the CRCs recomputed), it decodes to the same index with nothing damaged.
  std::vector<std::string_view> views(bytes.begin(), bytes.end());
  auto again = sgw::storage::decode_partial(sgw::storage::encode_partial(d->index, views));
  if (!again) std::abort();
  auto a = again->index, b = d->index;
  for (auto& c : a.chunks) c.crc32c = 0;
  for (auto& c : b.chunks) c.crc32c = 0;
  if (!(a == b)) std::abort();
  for (bool damaged : again->damaged)
    if (damaged) std::abort();
  return 0;
}
