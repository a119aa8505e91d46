// libFuzzer target for the metadata layer: parse -> to_json -> dump, merge with itself.
// Any crash, sanitizer report, uncaught exception or non-error-returning misbehaviour is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "metadata/metadata_json.h"
#include "metadata/metadata_merge.h"
#include "metadata/metadata_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  auto r = sgw::metadata::parse(xml);
  if (!r.ok()) return 0;
  const sgw::metadata::RecordingMetadata& md = *r;
  // dump() throws on invalid UTF-8: every string in the model must be valid.
  (void)sgw::metadata::to_json(md).dump();
  const sgw::metadata::RecordingMetadata replaced = sgw::metadata::merge(md, md);
  (void)sgw::metadata::to_json(replaced).dump();
  // Also exercise the partial path (match by id/label, unions) with the same content.
  sgw::metadata::RecordingMetadata update = md;
  update.data_mode = sgw::metadata::DataMode::kPartial;
  const sgw::metadata::RecordingMetadata merged = sgw::metadata::merge(md, update);
  (void)sgw::metadata::to_json(merged).dump();
  return 0;
}
