#include "stream/protocol.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "common/ids.h"
#include "media/codec.h"

namespace sgw::stream {

using nlohmann::json;

std::string iso_duration(std::int64_t ms) {
  if (ms <= 0) return "PT0S";
  std::string s = fmt::format("PT{}", ms / 1000);
  if (auto frac = ms % 1000; frac != 0) {
    std::string f = fmt::format("{:03}", frac);
    while (!f.empty() && f.back() == '0') f.pop_back();
    s += "." + f;
  }
  return s + "S";
}

std::optional<std::int64_t> parse_iso_duration(std::string_view t) {
  if (t.size() < 4 || t.substr(0, 2) != "PT" || t.back() != 'S') return std::nullopt;
  t = t.substr(2, t.size() - 3);
  auto dot = t.find('.');
  std::int64_t secs = 0;
  auto whole = t.substr(0, dot);
  if (whole.empty()) return std::nullopt;
  auto r = std::from_chars(whole.data(), whole.data() + whole.size(), secs);
  if (r.ec != std::errc() || r.ptr != whole.data() + whole.size() || secs < 0) return std::nullopt;
  std::int64_t ms = secs * 1000;
  if (dot != std::string_view::npos) {
    auto frac = t.substr(dot + 1);
    if (frac.empty() || frac.size() > 9) return std::nullopt;
    std::int64_t scale = 100;
    for (char c : frac) {
      if (c < '0' || c > '9') return std::nullopt;
      ms += (c - '0') * scale;
      scale /= 10;
    }
  }
  return ms;
}

ProtocolSession::ProtocolSession(Protocol protocol, std::string session_id, CallInfo call)
    : protocol_(protocol), session_id_(std::move(session_id)), call_(std::move(call)) {}

std::vector<std::pair<std::string, std::string>> ProtocolSession::handshake_headers(
    const std::string& api_key) const {
  std::vector<std::pair<std::string, std::string>> h;
  if (protocol_ == Protocol::kAudioHook) {
    // AudioHook's request headers (the signature headers are not sent: docs/integrations.md).
    h.emplace_back("Audiohook-Session-Id:", session_id_);
    h.emplace_back("Audiohook-Correlation-Id:", call_.conversation_id.empty() ? call_.recording_id
                                                                              : call_.conversation_id);
    if (!call_.organization_id.empty()) h.emplace_back("Audiohook-Organization-Id:", call_.organization_id);
  } else {
    h.emplace_back("X-Siprec-Recording-Id:", call_.recording_id);
  }
  if (!api_key.empty()) h.emplace_back("X-API-KEY:", api_key);
  return h;
}

std::string ProtocolSession::audiohook(std::string_view type, json parameters,
                                       std::optional<std::int64_t> position_ms) {
  json m = {{"version", "2"},
            {"type", type},
            {"seq", ++seq_},
            {"serverseq", server_seq_},
            {"id", session_id_},
            {"position", iso_duration(position_ms.value_or(position_ms_))},
            {"parameters", std::move(parameters)}};
  return m.dump(-1, ' ', false, json::error_handler_t::replace);
}

void ProtocolSession::sent(std::uint64_t seq) {
  any_sent_ = true;
  sent_seq_ = std::max(sent_seq_, seq);
}

std::string ProtocolSession::open_message(std::int64_t position_ms) {
  ++connections_;
  if (protocol_ == Protocol::kAudioHook && any_sent_) {
    // The server may have seen this session: continue it in a new one (AudioHook v2 open
    // parameter continuedSessions; a session's seq starts at 1 and its serverseq at 0).
    continued_.push_back({session_id_, server_seq_, sent_seq_});
    // A flapping server must not grow the open without bound (AudioHook text messages are
    // limited to 64 KiB): the most recent sessions are named.
    if (continued_.size() > kMaxContinuedSessions) continued_.erase(continued_.begin());
    session_id_ = common::uuid_v4();
  }
  // Nothing of the current session was written (first connection, or the last attempt never
  // got its open out): it starts over.
  seq_ = 0;
  server_seq_ = 0;
  sent_seq_ = 0;
  any_sent_ = false;
  if (protocol_ == Protocol::kPlain) {
    ready_ = true;
    json m = {{"type", "start"},
              {"connection", connections_},
              {"position_ms", position_ms},
              {"recording_id", call_.recording_id},
              {"call_id", call_.call_id},
              {"conversation_id", call_.conversation_id},
              {"format", {{"encoding", "s16le"}, {"rate", kStreamRate}, {"channels", 2},
                          {"channel_names", {"external", "internal"}}, {"frame_ms", 20}}},
              {"participants", {{"external", {{"aor", call_.caller_aor}, {"name", call_.caller_name}}},
                                {"internal", {{"aor", call_.agent_aor}}}}},
              {"metadata", call_.metadata}};
    return m.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  json params = {
      {"organizationId", call_.organization_id},
      {"conversationId", call_.conversation_id.empty() ? call_.recording_id : call_.conversation_id},
      {"participant", {{"id", call_.recording_id}, {"ani", call_.caller_aor}, {"aniName", call_.caller_name},
                       {"dnis", call_.agent_aor}}},
      {"media", json::array({{{"type", "audio"}, {"format", "PCMU"},
                              {"channels", {"external", "internal"}}, {"rate", kStreamRate}}})},
      {"language", "und"}};
  if (!continued_.empty()) {
    json cs = json::array();
    for (const auto& c : continued_)
      cs.push_back({{"id", c.id}, {"serverseq", c.serverseq}, {"clientseq", c.clientseq}});
    params["continuedSessions"] = std::move(cs);
  }
  ready_ = false;
  return audiohook("open", std::move(params), position_ms);
}

std::string ProtocolSession::ping_message() { return audiohook("ping", json::object()); }

std::string ProtocolSession::paused_message() {
  if (protocol_ == Protocol::kPlain) return json{{"type", "paused"}}.dump();
  return audiohook("paused", json::object());
}

std::string ProtocolSession::resumed_message(std::int64_t paused_ms) {
  if (protocol_ == Protocol::kPlain) return json{{"type", "resumed"}, {"paused_ms", paused_ms}}.dump();
  return audiohook("resumed", {{"start", iso_duration(position_ms_)}, {"discarded", iso_duration(paused_ms)}});
}

std::string ProtocolSession::discarded_message(std::int64_t start_ms, std::int64_t discarded_ms) {
  if (protocol_ == Protocol::kPlain)
    return json{{"type", "discarded"}, {"start_ms", start_ms}, {"discarded_ms", discarded_ms}}.dump();
  return audiohook("discarded", {{"start", iso_duration(start_ms)}, {"discarded", iso_duration(discarded_ms)}});
}

std::string ProtocolSession::close_message(const std::string& reason) {
  if (protocol_ == Protocol::kPlain) return json{{"type", "end"}}.dump();
  return audiohook("close", {{"reason", reason}});
}

std::vector<std::uint8_t> ProtocolSession::frame_message(const Frame& f) {
  position_ms_ += 20;
  std::vector<std::uint8_t> out;
  if (protocol_ == Protocol::kPlain) {
    out.resize(kFrameSamples * 4);
    std::size_t k = 0;
    for (std::size_t i = 0; i < kFrameSamples; ++i)
      for (const auto& ch : f.channels) {
        auto v = static_cast<std::uint16_t>(ch[i]);
        out[k++] = static_cast<std::uint8_t>(v & 0xff);
        out[k++] = static_cast<std::uint8_t>(v >> 8);
      }
    return out;
  }
  // µ-law, ITU-T G.711 (the project's encoder).
  static thread_local std::unique_ptr<media::Encoder> pcmu = [] {
    auto e = media::make_encoder(media::CodecId::kPcmu);
    return e ? std::move(e).value() : nullptr;
  }();
  std::array<std::array<std::uint8_t, kFrameSamples>, 2> enc{};
  for (std::size_t c = 0; c < 2; ++c) {
    if (!pcmu || !pcmu->encode(f.channels[c], enc[c])) enc[c].fill(0xff);  // µ-law silence
  }
  out.resize(kFrameSamples * 2);
  for (std::size_t i = 0; i < kFrameSamples; ++i) {
    out[2 * i] = enc[0][i];
    out[2 * i + 1] = enc[1][i];
  }
  return out;
}

ProtocolSession::Incoming ProtocolSession::on_text(std::string_view text) {
  auto j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return {Action::kError, "not a JSON object"};
  auto type_it = j.find("type");
  std::string type = type_it != j.end() && type_it->is_string() ? type_it->get<std::string>() : "";
  if (auto s = j.find("seq"); s != j.end() && s->is_number_unsigned()) server_seq_ = s->get<std::uint64_t>();
  if (protocol_ == Protocol::kPlain) return {Action::kNone, type};
  if (type == "opened") {
    ready_ = true;
    return {Action::kOpened, type};
  }
  if (type == "pong") return {Action::kPong, type};
  if (type == "closed") return {Action::kClosed, type};
  if (type == "disconnect") {
    std::string reason;
    if (auto p = j.find("parameters"); p != j.end() && p->is_object())
      if (auto r = p->find("reason"); r != p->end() && r->is_string())
        for (char ch : r->get_ref<const std::string&>()) {  // the server's text goes into logs and JSON
          if (reason.size() == 100) break;
          reason += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
        }
    return {Action::kDisconnect, reason};
  }
  if (type == "pause") return {Action::kPauseRequested, type};
  if (type == "resume") return {Action::kResumeRequested, type};
  if (type == "error") return {Action::kError, j.dump()};
  return {Action::kNone, type};
}

}  // namespace sgw::stream
