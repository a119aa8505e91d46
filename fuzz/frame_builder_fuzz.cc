// libFuzzer target: FrameBuilder (the live stream's frames) must take any packets - timestamps,
// SSRCs, payload types, arrival times and payloads from the network - and any clock, without
// reading or writing outside its ring, and emit frames in order. Seed corpus:
// fuzz/corpus/fuzz_frame_builder. Input: records of one op byte, then
//   op & 1 == 0: a packet: stream, payload type, timestamp (4), ssrc, arrival step (2), length, payload
//   op & 1 == 1: the clock moves on by a step (1) x 1 ms and frames are emitted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "stream/frame_builder.h"

namespace {

const char* kStreams =
    R"({"streams":[{"index":0,"recorded":true,"payloads":[{"pt":0,"encoding":"PCMU","clock_rate":8000},)"
    R"({"pt":9,"encoding":"G722","clock_rate":8000}]},{"index":1,"recorded":true,"payloads":[)"
    R"({"pt":8,"encoding":"PCMA","clock_rate":8000},{"pt":111,"encoding":"opus","clock_rate":48000}]}]})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sgw::stream::FrameBuilder b(size > 0 && data[0] % 2 ? 20 : 60);
  b.apply_streams_event(0, kStreams);
  b.set_channels(0, 1);
  std::int64_t now = 0;
  std::int64_t arrival = 0;
  std::int64_t next_index = 0;
  std::size_t i = 0;
  auto take = [&](std::size_t n) -> const std::uint8_t* {
    if (size - i < n) return nullptr;
    const auto* p = data + i;
    i += n;
    return p;
  };
  while (i < size) {
    const std::uint8_t op = data[i++];
    if (op & 1) {
      const auto* s = take(1);
      if (!s) break;
      now += static_cast<std::int64_t>(s[0]) * 1000;
      b.advance(now, [&](const sgw::stream::Frame& f) {
        if (f.index != next_index) std::abort();  // in order, none skipped
        ++next_index;
      });
      continue;
    }
    const auto* h = take(10);
    if (!h) break;
    sgw::stream::PacketSlot p;
    p.stream = h[0] % 3;
    p.payload_type = h[1] & 0x7f;
    std::memcpy(&p.timestamp, h + 2, 4);
    p.ssrc = h[6];
    arrival += static_cast<std::int64_t>(h[7] | (h[8] << 8)) * 10 - 100'000;  // may go back
    p.arrival_us = arrival;
    const std::size_t len = std::min<std::size_t>(h[9], size - i);
    p.length = static_cast<std::uint16_t>(len);
    std::memcpy(p.payload.data(), data + i, len);
    i += len;
    b.add_packet(p);
  }
  return 0;
}
