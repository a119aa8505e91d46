#include "recording/spool_format.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <climits>

namespace sgw::recording::spool {

std::uint32_t crc32c_extend(std::uint32_t state, std::span<const std::uint8_t> data) {
  // crc32_iscsi takes and returns the raw (uninverted) state, like this
  // function; its length is an int, so very large spans go in slices.
  while (!data.empty()) {
    const std::size_t n = std::min<std::size_t>(data.size(), INT_MAX);
    // ISA-L only reads the buffer; its prototype lacks the const.
    state = crc32_iscsi(const_cast<unsigned char*>(data.data()), static_cast<int>(n), state);
    data = data.subspan(n);
  }
  return state;
}

}  // namespace sgw::recording::spool
