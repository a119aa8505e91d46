// libFuzzer target: SRTP unprotect + RTP parse, as the media worker runs them on a received
// datagram. Byte 0 picks the suite and the mode: unprotect the rest as received (almost always
// an authentication failure, which must be reported, never crash), or first protect it with the
// same keys (so the decrypt path and RtpPacketView::parse see attacker-chosen plaintext).
// Seed corpus: fuzz/corpus/fuzz_srtp.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "media/rtp_packet_view.h"
#include "media/srtp_session.h"

namespace {

using namespace sgw::media;

struct Pair {
  std::unique_ptr<SrtpSession> tx, rx;
};

// Fixed keys per suite (a fuzz run must be reproducible), made once.
Pair& sessions(SrtpSuite suite) {
  static std::vector<Pair> all = [] {
    std::vector<Pair> v;
    for (SrtpSuite s : srtp_suites()) {
      SrtpKeys k;
      k.suite = s;
      SrtpMasterKey m;
      m.key_salt.resize(srtp_key_salt_bytes(s));
      for (std::size_t i = 0; i < m.key_salt.size(); ++i) m.key_salt[i] = static_cast<std::uint8_t>(i * 7 + 1);
      k.keys.push_back(m);
      auto tx = SrtpSession::create(k, SrtpSession::Direction::kSend);
      auto rx = SrtpSession::create(k, SrtpSession::Direction::kReceive);
      if (!tx || !rx) std::abort();
      v.push_back({std::move(tx).value(), std::move(rx).value()});
    }
    return v;
  }();
  return all[static_cast<std::size_t>(suite)];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 4096) return 0;
  const auto suites = srtp_suites();
  const SrtpSuite suite = suites[(data[0] & 0x7f) % suites.size()];
  const bool protect_first = (data[0] & 0x80) != 0;
  Pair& p = sessions(suite);
  std::vector<std::uint8_t> buf(data + 1, data + size);
  std::size_t len = buf.size();
  buf.resize(len + kSrtpMaxTrailer);
  if (protect_first) {
    // The sessions live for the whole run (a context per input would be slow): an input whose
    // sequence number was protected before is refused as a replay, which is fine.
    if (p.tx->protect_rtp(buf.data(), &len, buf.size()) != SrtpStatus::kOk) return 0;
  }
  const SrtpStatus st = p.rx->unprotect_rtp(buf.data(), &len);
  if (st == SrtpStatus::kOk) {
    if (len > buf.size()) std::abort();
    auto v = RtpPacketView::parse({buf.data(), len});
    if (v) {
      volatile std::uint8_t sink = 0;
      for (auto b : v->payload) sink = static_cast<std::uint8_t>(sink ^ b);
    }
  }
  std::size_t rlen = size - 1;
  std::vector<std::uint8_t> rtcp(data + 1, data + size);
  (void)p.rx->unprotect_rtcp(rtcp.data(), &rlen);
  return 0;
}
