// The two live-audio protocols (docs/integrations.md "Live audio"): the messages the gateway
// sends and how it reads the server's. Pure, no I/O: the Streamer moves the bytes.
//
// AudioHook (Genesys AudioHook Monitor protocol, version "2"): JSON text messages
//   {"version":"2","type":...,"seq":N,"serverseq":M,"id":<session uuid>,"position":"PT1.24S",
//    "parameters":{...}}
// open -> opened, ping -> pong, paused / resumed (the SRC paused or resumed the recording),
// discarded (audio we could not send), close -> closed; the server may send disconnect, pause,
// resume. Audio: binary messages of 20 ms, stereo PCMU 8 kHz, samples interleaved, channel 0
// "external" (the caller), channel 1 "internal" (the agent). `position` is the stream position:
// 20 ms per frame sent or discarded while not paused.
//
// Plain: one JSON text message {"type":"start", ...ids, metadata, format} then binary messages
// of 20 ms, 16-bit signed little-endian PCM, 8 kHz, 2 channels interleaved (external, internal);
// {"type":"paused"}/{"type":"resumed"} text messages; {"type":"end"} at the end.
//
// Thread: one instance per connection, streaming thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "stream/frame_builder.h"
#include "stream/live_stream.h"

namespace sgw::stream {

// What the first message says about the call.
struct CallInfo {
  std::string recording_id;
  std::string call_id;
  std::string conversation_id;
  std::string organization_id;     // stream.organization_id (AudioHook)
  std::string caller_aor, caller_name, agent_aor;
  nlohmann::json metadata;         // metadata::to_json of the merged model, or null
};

// ISO 8601 duration of `ms` milliseconds: "PT0S", "PT1.24S", "PT62.5S".
std::string iso_duration(std::int64_t ms);
// Parses what iso_duration writes (and "PTnS"/"PTn.nS"); nullopt otherwise.
std::optional<std::int64_t> parse_iso_duration(std::string_view text);

class ProtocolSession {
 public:
  ProtocolSession(Protocol protocol, std::string session_id, CallInfo call);

  Protocol protocol() const { return protocol_; }
  const std::string& session_id() const { return session_id_; }
  // Headers of the WebSocket handshake (name with the colon, value).
  std::vector<std::pair<std::string, std::string>> handshake_headers(const std::string& api_key) const;

  std::string open_message();
  // AudioHook: audio may flow only after "opened"; plain: at once.
  bool ready() const { return ready_; }
  std::string ping_message();
  std::string paused_message();
  std::string resumed_message(std::int64_t paused_ms);
  std::string discarded_message(std::int64_t start_ms, std::int64_t discarded_ms);
  std::string close_message();

  // One frame as the binary message. Advances the position by 20 ms.
  std::vector<std::uint8_t> frame_message(const Frame& f);
  // A frame that was produced and could not be sent (the server is slow): position + 20 ms.
  void skip_frame() { position_ms_ += 20; }
  std::int64_t position_ms() const { return position_ms_; }

  // A text message from the server. What the connection must do about it:
  enum class Action { kNone, kOpened, kPong, kClosed, kDisconnect, kPauseRequested, kResumeRequested, kError };
  struct Incoming {
    Action action = Action::kNone;
    std::string detail;  // type or reason, for the log
  };
  Incoming on_text(std::string_view text);

 private:
  std::string audiohook(std::string_view type, nlohmann::json parameters);

  Protocol protocol_;
  std::string session_id_;
  CallInfo call_;
  std::uint64_t seq_ = 0;
  std::uint64_t server_seq_ = 0;
  std::int64_t position_ms_ = 0;
  bool ready_ = false;
};

}  // namespace sgw::stream
