// libFuzzer target: SDP offer -> parse_sdp -> plan_answer -> build_answer, and the answer must
// parse back with the same number of m= lines (RFC 3264 §6). Seed corpus: fuzz/corpus/fuzz_sdp.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "siprec/offer_answer.h"
#include "siprec/sdp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto offer = sgw::siprec::parse_sdp(text);
  if (!offer) return 0;
  using Srtp = sgw::siprec::CodecPolicy::Srtp;
  for (Srtp mode : {Srtp::kOff, Srtp::kAllow, Srtp::kRequire}) {
    const bool srtp = mode != Srtp::kOff;
    sgw::siprec::CodecPolicy policy;
    policy.srtp = mode;
    auto plan = sgw::siprec::plan_answer(*offer, policy);
    if (!plan) continue;
    if (plan->streams.size() != offer->media.size()) std::abort();
    sgw::siprec::AnswerParams params;
    params.media_address = srtp ? "2001:db8::1" : "192.0.2.1";
    for (std::size_t i = 0; i < offer->media.size(); ++i) {
      params.ports.push_back(static_cast<std::uint16_t>(40000 + 2 * i));
      params.srtp_key_params.push_back("inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    }
    const std::string answer = sgw::siprec::build_answer(*offer, *plan, params);
    auto reparsed = sgw::siprec::parse_sdp(answer);
    if (!reparsed || reparsed->media.size() != offer->media.size()) std::abort();
    for (std::size_t i = 0; i < reparsed->media.size(); ++i) {
      const bool accepted = plan->streams[i].accepted;
      if ((reparsed->media[i].port != 0) != accepted) std::abort();
    }
  }
  return 0;
}
