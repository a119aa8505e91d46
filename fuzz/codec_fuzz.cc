// Fuzz target: every decoder must decode or refuse any payload without
// touching memory outside the output span. The first byte picks the codec.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "media/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using sgw::media::CodecId;
  if (size < 1) return 0;
  static const CodecId kIds[] = {CodecId::kPcmu, CodecId::kPcma, CodecId::kG722, CodecId::kG729,
                                 CodecId::kOpus};
  CodecId id = kIds[data[0] % 5];
  if (!sgw::media::codec_available(id)) return 0;
  auto dec = sgw::media::make_decoder(id);
  if (!dec) return 0;
  std::vector<std::int16_t> out(sgw::media::Decoder::kMaxSamplesPerPacket);
  // Split the rest into packets of (second byte) bytes to exercise decoder state.
  std::size_t chunk = size > 1 ? (data[1] % 200) + 1 : 1;
  for (std::size_t off = 2; off < size; off += chunk) {
    std::size_t n = std::min(chunk, size - off);
    (void)(*dec)->decode({data + off, n}, out);
    (void)(*dec)->conceal(160, out);
  }
  return 0;
}
