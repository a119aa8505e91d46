// libFuzzer target for the metadata layer: parse -> to_json -> dump, merge with itself,
// conversation-id rules over the model; and the input's lines as Cisco participant headers
// (an INVITE's, then a re-INVITE's merged as an update).
// Any crash, sanitizer report, uncaught exception or non-error-returning misbehaviour is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "metadata/cisco_headers.h"
#include "metadata/conversation_id.h"
#include "metadata/metadata_json.h"
#include "metadata/metadata_merge.h"
#include "metadata/metadata_parser.h"

namespace {

void cisco_headers(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start <= text.size() && lines.size() < 64) {
    const std::size_t nl = text.find('\n', start);
    const std::size_t end = nl == std::string_view::npos ? text.size() : nl;
    lines.emplace_back(text.substr(start, end - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  const std::size_t half = lines.size() / 2;
  const std::vector<std::string> invite(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(half));
  const std::vector<std::string> reinvite(lines.begin() + static_cast<std::ptrdiff_t>(half), lines.end());
  const sgw::metadata::RecordingMetadata base = sgw::metadata::from_cisco_headers(invite, "call@fuzz");
  (void)sgw::metadata::to_json(base).dump();
  if (auto md = sgw::metadata::merge_cisco_headers(&base, reinvite, "call@fuzz", "2024-01-01T00:00:00Z"))
    (void)sgw::metadata::to_json(*md).dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  if (size <= 4096) cisco_headers(xml);
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
  static const auto rules = sgw::metadata::parse_rules(
      {"extension:session:GenesysConversationID", "extension:any:ConversationID", "metadata:session_id"});
  if (rules.ok()) (void)sgw::metadata::find_conversation_id(*rules, &md, {}, "call@fuzz");
  return 0;
}
