// libFuzzer target: ProtocolSession::on_text (what an AudioHook or plain-mode server sends the
// gateway: opened, pong, pause, resume, disconnect, closed, error, anything) must take any text
// without throwing or reading outside it, and the messages the client builds afterwards must
// stay valid JSON. Seed corpus: fuzz/corpus/fuzz_stream_protocol. Input: server messages
// separated by a NUL byte; the first byte picks the protocol.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "stream/frame_builder.h"
#include "stream/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  using sgw::stream::Protocol;
  sgw::stream::CallInfo call;
  call.recording_id = "rec";
  call.conversation_id = "conv";
  sgw::stream::ProtocolSession p(data[0] % 2 ? Protocol::kPlain : Protocol::kAudioHook, "sess", call);
  (void)p.open_message(0);
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  sgw::stream::Frame frame;
  while (true) {
    const auto end = rest.find('\0');
    auto in = p.on_text(rest.substr(0, end));
    if (in.detail.size() > 64 * 1024) std::abort();
    // What the client says next is still JSON, whatever the server said.
    for (const auto& m : {p.ping_message(), p.paused_message(), p.resumed_message(20),
                          p.discarded_message(0, 20), p.close_message("disconnect")})
      if (!nlohmann::json::accept(m)) std::abort();
    (void)p.frame_message(frame);
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return 0;
}
