// libFuzzer target: first input line is the Content-Type value, the rest is the body ->
// split_recording_body; every SDP it yields goes through parse_sdp. Seed corpus:
// fuzz/corpus/fuzz_multipart.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "siprec/multipart.h"
#include "siprec/sdp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = input.find('\n');
  const std::string_view content_type = nl == std::string_view::npos ? input : input.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
  std::vector<std::string> warnings;
  (void)sgw::siprec::parse_multipart(content_type, body, &warnings);
  auto split = sgw::siprec::split_recording_body(content_type, body);
  if (split && split->sdp) (void)sgw::siprec::parse_sdp(*split->sdp);
  return 0;
}
