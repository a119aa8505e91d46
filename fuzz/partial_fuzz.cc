// libFuzzer target: decode_partial (storage/partials.h), the parser of a partial's body as
// an adopter reads it back from S3 (a damaged or hostile object must be refused, never read
// outside the body). What it accepts must encode back to the same index. Seed corpus:
// fuzz/corpus/fuzz_partial.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storage/partials.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto d = sgw::storage::decode_partial(body);
  if (!d) return 0;
  std::size_t total = 0;
  for (std::size_t i = 0; i < d->data.size(); ++i) {
    if (d->data[i].size() != d->index.chunks[i].length) std::abort();
    if (d->data[i].data() < body.data() || d->data[i].data() + d->data[i].size() > body.data() + body.size())
      std::abort();
    total += d->data[i].size();
  }
  if (total > size) std::abort();
  auto again = sgw::storage::decode_partial(sgw::storage::encode_partial_head(d->index) + std::string(total, 'x'));
  if (!again || !(again->index == d->index)) std::abort();
  return 0;
}
