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
// A new connection after one whose open went out is a new AudioHook session that continues the
// earlier ones (AudioHook v2 open parameter `continuedSessions`: id, serverseq and clientseq of
// each earlier session): a fresh session id, seq from 1, serverseq from 0, and a position that
// goes on from where the audio written to the earlier connection ended.
//
// Plain: one JSON text message {"type":"start", ...ids, metadata, format} then binary messages
// of 20 ms, 16-bit signed little-endian PCM, 8 kHz, 2 channels interleaved (external, internal);
// {"type":"paused"}/{"type":"resumed"} text messages; {"type":"end"} at the end. Every
// connection starts with "start" ("connection": 1, 2, ...; "position_ms").
//
// Thread: one instance per connection, streaming thread only.
#pragma once

#include <cstddef>
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

// An earlier AudioHook session of the same stream (open's `continuedSessions`).
struct ContinuedSession {
  std::string id;
  std::uint64_t serverseq = 0;  // the last seq the server sent in it
  std::uint64_t clientseq = 0;  // the last seq we wrote in it
};

class ProtocolSession {
 public:
  static constexpr std::size_t kMaxContinuedSessions = 64;  // the most recent, in the open

  ProtocolSession(Protocol protocol, std::string session_id, CallInfo call);

  Protocol protocol() const { return protocol_; }
  const std::string& session_id() const { return session_id_; }
  // Headers of the WebSocket handshake (name with the colon, value).
  std::vector<std::pair<std::string, std::string>> handshake_headers(const std::string& api_key) const;

  // The first message of a connection (AudioHook "open", plain "start"), built before the
  // connection is made (the handshake carries its session id). `position_ms`: the stream position
  // of the audio that follows (where the audio written so far ended; 0 on the first connection).
  // If a message of the current session was written (sent()), AudioHook starts a new session
  // that continues it (continued()); otherwise the current session starts over (seq from 1).
  // Either way audio waits for "opened" again.
  std::string open_message(std::int64_t position_ms = 0);
  // A message built by this session (its `seq`, or 0 for audio and plain) was written.
  void sent(std::uint64_t seq);
  // The seq of the last message built (0 before any; plain: always 0).
  std::uint64_t last_seq() const { return protocol_ == Protocol::kAudioHook ? seq_ : 0; }
  const std::vector<ContinuedSession>& continued() const { return continued_; }
  // Connections this stream has been opened on (open_message() calls).
  std::uint64_t connections() const { return connections_; }
  // AudioHook: audio may flow only after "opened"; plain: at once.
  bool ready() const { return ready_; }
  std::string ping_message();
  std::string paused_message();
  std::string resumed_message(std::int64_t paused_ms);
  std::string discarded_message(std::int64_t start_ms, std::int64_t discarded_ms);
  // AudioHook close: reason "end" (the call ended) or "disconnect" (the server asked for it).
  std::string close_message(const std::string& reason = "end");

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
  std::string audiohook(std::string_view type, nlohmann::json parameters,
                        std::optional<std::int64_t> position_ms = std::nullopt);

  Protocol protocol_;
  std::string session_id_;
  CallInfo call_;
  std::uint64_t seq_ = 0;
  std::uint64_t server_seq_ = 0;
  std::uint64_t sent_seq_ = 0;  // the last seq written in the current session
  bool any_sent_ = false;       // something of the current session was written
  std::vector<ContinuedSession> continued_;
  std::uint64_t connections_ = 0;
  std::int64_t position_ms_ = 0;
  bool ready_ = false;
};

}  // namespace sgw::stream
