#include "stream/streamer.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>

#include <libwebsockets.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/logging.h"
#include "media/media_engine.h"
#include "metadata/metadata_json.h"
#include "metadata/metadata_merge.h"
#include "stream/frame_builder.h"
#include "stream/protocol.h"

namespace sgw::stream {

namespace {

constexpr std::int64_t kPumpUs = 10'000;
constexpr std::int64_t kCloseWaitUs = 2'000'000;  // for AudioHook's "closed"

struct Url {
  bool tls = false;
  std::string host;
  int port = 0;
  std::string path;
};

// ws[s]://host[:port][/path]; IPv6 literals in brackets. nullopt otherwise.
std::optional<Url> parse_url(const std::string& text) {
  Url u;
  std::string rest;
  if (text.rfind("ws://", 0) == 0) {
    rest = text.substr(5);
  } else if (text.rfind("wss://", 0) == 0) {
    u.tls = true;
    rest = text.substr(6);
  } else {
    return std::nullopt;
  }
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (auto at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return std::nullopt;
  u.port = u.tls ? 443 : 80;
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) return std::nullopt;
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) return std::nullopt;
    u.port = p;
  }
  return u;
}

template <typename T>
T json_or(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return fallback;
  return it->get<T>();
}

}  // namespace

bool valid_stream_url(const std::string& url) { return parse_url(url).has_value(); }

// One outgoing WebSocket message.
struct Outgoing {
  bool binary = false;
  bool open = false;                // the connection's first message (AudioHook open, plain start)
  std::vector<std::uint8_t> bytes;  // LWS_PRE bytes of headroom, then the payload
  std::int64_t first_arrival_us = -1;
  std::uint64_t seq = 0;            // AudioHook text: its seq
  std::int64_t end_position_ms = 0; // audio: the stream position after it
};

struct Streamer::Conn {
  std::shared_ptr<LiveStream> live;
  std::optional<Url> url;
  FrameBuilder builder;
  std::unique_ptr<ProtocolSession> proto;
  lws* wsi = nullptr;
  bool connected = false;      // handshake done on the current wsi
  bool open_sent = false;      // first message of the current connection written
  bool ever_connected = false; // a handshake succeeded before (the next one is a reconnect)
  std::int64_t lost_at_mono = -1;  // when the last connection was lost (-1: none lost)
  std::string close_reason;    // the server's WebSocket close frame on the current wsi, if any
  std::int64_t sent_position_ms = 0;  // stream position after the last frame written
  bool close_queued = false;
  bool close_written = false;
  bool kill = false;           // close the wsi at the next writable
  bool done = false;           // nothing more to do once the wsi is gone
  std::int64_t close_at_mono = 0;
  std::int64_t reconnect_at_mono = 0;
  std::int64_t backoff_us = 1'000'000;
  std::int64_t next_ping_mono = 0;
  std::deque<Outgoing> out;
  std::size_t queued_frames = 0;
  std::vector<SessionEvent> events;   // taken, not yet applied
  bool paused = false;                // SRC pause (frames say so)
  std::int64_t paused_since_ms = 0;
  bool server_paused = false;         // AudioHook "pause" from the server
  std::int64_t drop_start_ms = -1;    // a run of dropped frames not yet reported
  std::int64_t drop_ms = 0;
  std::string rx;                     // fragments of the message being received
  std::string log_id;

  explicit Conn(std::uint32_t delay_ms) : builder(delay_ms) {}
};

namespace {

void push_text(Streamer::Conn& c, const std::string& m) {
  Outgoing o;
  o.bytes.assign(LWS_PRE, 0);
  o.bytes.insert(o.bytes.end(), m.begin(), m.end());
  o.seq = c.proto->last_seq();
  c.out.push_back(std::move(o));
}

}  // namespace

struct Streamer::Timer {
  lws_sorted_usec_list_t sul;  // first member: the callback gets its address
  Streamer* self = nullptr;
};

struct StreamerAccess {
  static int callback(lws* wsi, lws_callback_reasons reason, void* /*user*/, void* in, std::size_t len) {
    auto* c = static_cast<Streamer::Conn*>(lws_get_opaque_user_data(wsi));
    auto* ctx = lws_get_context(wsi);
    auto* self = ctx ? static_cast<Streamer*>(lws_context_user(ctx)) : nullptr;
    auto log = common::logger("stream");
    switch (reason) {
      case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (!c || !self || !c->proto || in == nullptr) break;
        auto** p = static_cast<unsigned char**>(in);
        unsigned char* end = *p + len;
        for (const auto& [name, value] : c->proto->handshake_headers(c->live->target().api_key))
          if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(name.c_str()),
                                          reinterpret_cast<const unsigned char*>(value.data()),
                                          static_cast<int>(value.size()), p, end))
            return -1;
        break;
      }
      case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!c) break;
        c->connected = true;
        c->open_sent = false;
        {
          // A small kernel send buffer (the kernel doubles it: about 1 s of AudioHook audio): a
          // server that stops reading then costs dropped frames within seconds, not a backlog
          // of minutes of audio that arrives ever later.
          int fd = lws_get_socket_fd(wsi);
          int bytes = 8192;
          if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
        }
        c->backoff_us = 1'000'000;
        c->live->stats().connects.fetch_add(1, std::memory_order_relaxed);
        c->live->stats().state.store(static_cast<int>(State::kStreaming), std::memory_order_relaxed);
        if (c->ever_connected) {
          c->live->stats().reconnects.fetch_add(1, std::memory_order_relaxed);
          if (self && self->options_.metrics.reconnects) self->options_.metrics.reconnects->inc();
          log->info("{}: live stream reconnected to {} ({}) {} ms after the connection was lost; "
                    "{} ms of audio not delivered so far",
                    c->log_id, redact_url(c->live->target().url), protocol_name(c->live->target().protocol),
                    c->lost_at_mono >= 0 ? (media::monotonic_us() - c->lost_at_mono) / 1000 : 0,
                    c->live->stats().outage_frames.load(std::memory_order_relaxed) * 20);
        } else {
          log->info("{}: live stream connected to {} ({})", c->log_id, redact_url(c->live->target().url),
                    protocol_name(c->live->target().protocol));
        }
        c->ever_connected = true;
        lws_callback_on_writable(wsi);
        break;
      case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        // RFC 6455 §5.5.1: a close frame's body is a 2-byte status code, then a UTF-8 reason.
        if (!c) break;
        if (in != nullptr && len >= 2) {
          const auto* b = static_cast<const unsigned char*>(in);
          const unsigned code = (static_cast<unsigned>(b[0]) << 8) | b[1];
          std::string text(reinterpret_cast<const char*>(b + 2), std::min<std::size_t>(len - 2, 123));
          c->close_reason = "closed by the server with WebSocket status " + std::to_string(code) +
                            (text.empty() ? "" : " (" + text + ")");
        } else {
          c->close_reason = "closed by the server (WebSocket close without a status)";
        }
        break;
      case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (!c) break;
        if (c->rx.size() + len > 64 * 1024) {  // no server message of ours is this long
          c->rx.clear();
          break;
        }
        c->rx.append(static_cast<const char*>(in), len);
        if (!lws_is_final_fragment(wsi)) break;
        std::string text;
        text.swap(c->rx);
        if (lws_frame_is_binary(wsi) || !c->proto) break;
        auto incoming = c->proto->on_text(text);
        using A = ProtocolSession::Action;
        switch (incoming.action) {
          case A::kOpened:
            log->debug("{}: audiohook opened", c->log_id);
            break;
          case A::kClosed:
            c->kill = true;
            break;
          case A::kDisconnect:
            // The server does not want this call: the client closes the session (a "close"
            // transaction, no audio after it: frames still queued are dropped) and does not
            // reconnect; the "closed" answer, or 2 s without one, ends the connection.
            if (self && !c->close_queued) self->close_on_disconnect(*c, incoming.detail);
            break;
          case A::kPauseRequested:
            if (!c->server_paused) {
              c->server_paused = true;
              push_text(*c, c->proto->paused_message());
            }
            break;
          case A::kResumeRequested:
            if (c->server_paused) {
              c->server_paused = false;
              push_text(*c, c->proto->resumed_message(0));
            }
            break;
          case A::kError:
            log->warn("{}: live stream server error: {}", c->log_id, incoming.detail);
            break;
          default:
            break;
        }
        lws_callback_on_writable(wsi);
        break;
      }
      case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!c || !self) break;
        if (c->kill) return -1;
        self->write(*c);
        break;
      case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        if (!c) break;
        std::string why = in ? std::string(static_cast<const char*>(in), strnlen(static_cast<const char*>(in), len ? len : 256))
                             : "connection failed";
        c->live->stats().connect_failures.fetch_add(1, std::memory_order_relaxed);
        if (self && self->options_.metrics.connect_failures) self->options_.metrics.connect_failures->inc();
        c->live->stats().state.store(static_cast<int>(State::kFailed), std::memory_order_relaxed);
        c->live->set_error(why);
        if (self) gone(*self, *c);
        log->warn("{}: live stream to {} failed: {}; retrying in {} ms", c->log_id,
                  redact_url(c->live->target().url), why, c->backoff_us / 1000);
        c->reconnect_at_mono = media::monotonic_us() + c->backoff_us;
        c->backoff_us = std::min<std::int64_t>(c->backoff_us * 2, 10'000'000);
        break;
      }
      case LWS_CALLBACK_CLIENT_CLOSED:
        if (!c) break;
        if (!c->close_written && !c->done && !(self && self->stopping_.load())) {
          // Lost mid-call (a TCP reset, a WebSocket close frame of any status, a write error):
          // retried, the frames not written are lost (docs/integrations.md "Lost connections").
          std::string why = c->close_reason.empty() ? "connection lost (no WebSocket close from the server)"
                                                    : c->close_reason;
          c->live->set_error(why);
          c->live->stats().state.store(static_cast<int>(State::kFailed), std::memory_order_relaxed);
          c->live->stats().connections_lost.fetch_add(1, std::memory_order_relaxed);
          if (self && self->options_.metrics.connections_lost) self->options_.metrics.connections_lost->inc();
          const std::size_t unsent = c->queued_frames;
          if (self) gone(*self, *c);
          c->lost_at_mono = media::monotonic_us();
          log->warn("{}: live stream connection to {} lost: {}; {} queued frames not delivered; reconnecting in {} ms",
                    c->log_id, redact_url(c->live->target().url), why, unsent, c->backoff_us / 1000);
          c->reconnect_at_mono = media::monotonic_us() + c->backoff_us;
          c->backoff_us = std::min<std::int64_t>(c->backoff_us * 2, 10'000'000);
        } else {
          c->live->stats().state.store(static_cast<int>(State::kClosed), std::memory_order_relaxed);
          if (self) gone(*self, *c);
        }
        break;
      default:
        break;
    }
    return 0;
  }

  // The connection's wsi is gone (failed, lost or closed): what it had not written is not
  // delivered. Frames count as dropped and as outage; the stream position they covered, from
  // the last frame written on, becomes a run of discarded audio that the next connection
  // reports (AudioHook `discarded`, plain {"type":"discarded"}) before its first frame.
  static void gone(Streamer& self, Streamer::Conn& c) {
    self.drop_queued_frames(c, /*outage=*/true);
    c.out.clear();
    if (c.proto->position_ms() > c.sent_position_ms) {
      c.drop_start_ms = c.sent_position_ms;
      c.drop_ms = c.proto->position_ms() - c.sent_position_ms;
    }
    c.wsi = nullptr;
    c.connected = false;
    c.open_sent = false;
  }

  static void on_timer(lws_sorted_usec_list_t* sul) {
    auto* t = reinterpret_cast<Streamer::Timer*>(sul);
    t->self->pump();
    if (!t->self->stopping_.load()) lws_sul_schedule(t->self->context_, 0, &t->sul, &on_timer, kPumpUs);
  }
};

namespace {

const lws_protocols kProtocols[] = {
    {"siprec-stream", reinterpret_cast<lws_callback_function*>(&StreamerAccess::callback), 0, 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0}};

void lws_log(int level, const char* line) {
  std::string_view l(line);
  while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.remove_suffix(1);
  if (level & LLL_ERR)
    common::logger("stream")->warn("libwebsockets: {}", l);
  else
    common::logger("stream")->debug("libwebsockets: {}", l);
}

}  // namespace

Streamer::Streamer(StreamerOptions options) : options_(std::move(options)) {}

common::Result<std::unique_ptr<Streamer>> Streamer::start(StreamerOptions options) {
  std::unique_ptr<Streamer> s(new Streamer(std::move(options)));
  lws_set_log_level(LLL_ERR | LLL_WARN, &lws_log);
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = kProtocols;
  info.gid = -1;
  info.uid = -1;
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.user = s.get();
  info.timeout_secs = s->options_.connect_timeout_s;
  info.connect_timeout_secs = s->options_.connect_timeout_s;
  if (!s->options_.ca_file.empty()) {
    if (access(s->options_.ca_file.c_str(), R_OK) != 0)
      return common::make_error("stream.init", "stream.ca_file: cannot read " + s->options_.ca_file);
    info.client_ssl_ca_filepath = s->options_.ca_file.c_str();
  }
  s->context_ = lws_create_context(&info);
  if (s->context_ == nullptr) return common::make_error("stream.init", "libwebsockets: cannot create the client context");
  s->timer_ = std::make_unique<Timer>();
  std::memset(&s->timer_->sul, 0, sizeof s->timer_->sul);
  s->timer_->self = s.get();
  lws_sul_schedule(s->context_, 0, &s->timer_->sul, &StreamerAccess::on_timer, kPumpUs);
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

Streamer::~Streamer() { stop(); }

void Streamer::stop() {
  if (stopping_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  if (context_) lws_cancel_service(context_);
  if (thread_.joinable()) thread_.join();
  if (context_) {
    lws_context_destroy(context_);  // closes the connections (their callbacks run now)
    context_ = nullptr;
  }
  conns_.clear();
}

void Streamer::attach(std::shared_ptr<LiveStream> live) {
  std::lock_guard lock(mutex_);
  pending_.push_back(std::move(live));
}

void Streamer::run() {
  common::logger("stream")->debug("streaming thread started");
  while (!stopping_.load()) lws_service(context_, 0);
}

void Streamer::adopt(std::shared_ptr<LiveStream> live) {
  auto c = std::make_unique<Conn>(options_.delay_ms);
  c->live = std::move(live);
  const auto& setup = c->live->setup();
  c->log_id = setup.recording_id;
  c->url = parse_url(c->live->target().url);
  c->builder.apply_streams_event(0, setup.streams_event_json);

  // Who is on which channel: the recording's own channel layout rules, caller on channel 0.
  CallInfo call;
  call.recording_id = setup.recording_id;
  call.organization_id = c->live->target().organization_id;
  auto start = nlohmann::json::parse(setup.start_json, nullptr, false);
  if (start.is_object()) {
    call.call_id = json_or<std::string>(start, "call_id", "");
    call.conversation_id = json_or<std::string>(start, "conversation_id", "");
  }
  std::optional<metadata::RecordingMetadata> md;
  for (const auto& xml : setup.metadata_docs)
    if (auto parsed = metadata::parse(xml, options_.metadata_limits))
      md = md ? metadata::merge(*md, *parsed) : std::move(parsed).value();
  std::vector<recording::RecordedStream> recorded;
  for (const auto& [index, label] : c->builder.recorded_streams()) recorded.push_back({index, label});
  recording::LayoutConfig layout = options_.layout;
  layout.caller_channel = recording::CallerChannel::kLeft;
  layout.multi_stream_mode = recording::MultiStreamMode::kMultichannel;
  auto cl = recording::build_channel_layout(md ? &*md : nullptr, recorded, layout);
  std::optional<std::size_t> ext, inter;
  if (!cl.files.empty()) {
    const auto& chs = cl.files.front().channels;
    if (!chs.empty()) {
      ext = chs[0].stream_index;
      if (chs[0].participant) {
        call.caller_aor = chs[0].participant->aor;
        call.caller_name = chs[0].participant->name;
      }
    }
    if (chs.size() > 1) {
      inter = chs[1].stream_index;
      if (chs[1].participant) call.agent_aor = chs[1].participant->aor;
    }
  }
  c->builder.set_channels(ext, inter);
  call.metadata = md ? metadata::to_json(*md) : nlohmann::json(nullptr);
  c->proto = std::make_unique<ProtocolSession>(c->live->target().protocol, common::uuid_v4(), std::move(call));
  if (options_.metrics.active) options_.metrics.active->add(1);
  if (!c->url) {
    c->live->set_error("stream URL is not ws:// or wss://");
    c->live->stats().state.store(static_cast<int>(State::kFailed), std::memory_order_relaxed);
    c->done = true;
  } else {
    connect(*c);
  }
  conns_.push_back(std::move(c));
}

void Streamer::connect(Conn& c) {
  lws_client_connect_info ci;
  std::memset(&ci, 0, sizeof ci);
  ci.context = context_;
  ci.address = c.url->host.c_str();
  ci.port = c.url->port;
  ci.path = c.url->path.c_str();
  ci.host = c.url->host.c_str();
  ci.origin = c.url->host.c_str();
  ci.ssl_connection = c.url->tls ? LCCSCF_USE_SSL : 0;
  ci.local_protocol_name = kProtocols[0].name;
  ci.opaque_user_data = &c;
  ci.pwsi = &c.wsi;
  // A fresh connection: nothing of the last one carries over (its unwritten messages went with
  // it in gone()). Its first message is the open, built now: a continued AudioHook session gets
  // its new id before the handshake sends it.
  c.connected = false;
  c.open_sent = false;
  c.kill = false;
  c.rx.clear();
  c.close_reason.clear();
  c.server_paused = false;
  c.next_ping_mono = 0;
  c.out.clear();
  c.queued_frames = 0;
  {
    Outgoing o;
    o.open = true;
    const auto m = c.proto->open_message(c.sent_position_ms);
    o.seq = c.proto->last_seq();
    o.bytes.assign(LWS_PRE, 0);
    o.bytes.insert(o.bytes.end(), m.begin(), m.end());
    c.out.push_back(std::move(o));
  }
  if (c.paused) push_text(c, c.proto->paused_message());  // the SRC's pause goes on
  if (lws_client_connect_via_info(&ci) == nullptr) {
    c.wsi = nullptr;
    if (c.reconnect_at_mono <= media::monotonic_us()) {  // not already handled by the error callback
      c.live->stats().connect_failures.fetch_add(1, std::memory_order_relaxed);
      if (options_.metrics.connect_failures) options_.metrics.connect_failures->inc();
      c.live->set_error("cannot start a connection to " + c.url->host);
      c.live->stats().state.store(static_cast<int>(State::kFailed), std::memory_order_relaxed);
      c.out.clear();
      c.reconnect_at_mono = media::monotonic_us() + c.backoff_us;
      c.backoff_us = std::min<std::int64_t>(c.backoff_us * 2, 10'000'000);
    }
  }
}

void Streamer::pump() {
  std::vector<std::shared_ptr<LiveStream>> fresh;
  {
    std::lock_guard lock(mutex_);
    fresh.swap(pending_);
  }
  for (auto& l : fresh) adopt(std::move(l));
  const std::int64_t now = media::monotonic_us();
  for (auto& c : conns_) process(*c, now);
  // A connection is forgotten once its call ended, its frames are out and its socket is gone.
  auto gone = std::remove_if(conns_.begin(), conns_.end(), [](const std::unique_ptr<Conn>& c) {
    return c->done && c->wsi == nullptr;
  });
  for (auto it = gone; it != conns_.end(); ++it)
    if (options_.metrics.active) options_.metrics.active->add(-1);
  conns_.erase(gone, conns_.end());
}

void Streamer::process(Conn& c, std::int64_t now) {
  // Events first, then the packets: every packet pushed before an event is in the ring now.
  for (auto& e : c.live->take_events()) c.events.push_back(std::move(e));
  std::size_t next_event = 0;
  c.live->ring().drain([&](const PacketSlot& p) {
    while (next_event < c.events.size() && c.events[next_event].counter < p.counter) {
      c.builder.apply_streams_event(c.events[next_event].at_us, c.events[next_event].json);
      ++next_event;
    }
    c.builder.add_packet(p);
  });
  for (; next_event < c.events.size(); ++next_event)
    c.builder.apply_streams_event(c.events[next_event].at_us, c.events[next_event].json);
  c.events.clear();

  const std::int64_t origin = c.live->origin();
  if (origin >= 0 && !c.close_queued) {
    std::int64_t session_now = now - origin;
    const bool ended = c.live->ended();
    // After the end, the frames up to the end's time (the last packets may still be placed).
    if (ended) session_now = std::min<std::int64_t>(session_now, c.live->end_us() + 20'000 + options_.delay_ms * 1000LL);
    // Without a connection (waiting to retry) nothing is queued: its messages would belong to
    // no session. Frames are then lost to the outage; a connection being made queues them
    // (bounded) for its session.
    const bool linked = c.wsi != nullptr;
    const bool up = c.connected && c.proto->ready();
    c.builder.advance(session_now, [&](const Frame& f) {
      if (ended && f.index * 20'000 >= c.live->end_us()) return;
      if (f.paused != c.paused) {
        c.paused = f.paused;
        if (c.paused) c.paused_since_ms = f.index * 20;
        if (linked)
          push_text(c, c.paused ? c.proto->paused_message()
                                : c.proto->resumed_message(f.index * 20 - c.paused_since_ms));
      }
      if (c.paused || c.server_paused) return;
      if (!linked || c.queued_frames >= options_.max_queued_frames) {
        if (c.drop_start_ms < 0) {
          c.drop_start_ms = c.proto->position_ms();
          c.drop_ms = 0;
        }
        c.drop_ms += 20;
        c.proto->skip_frame();
        c.live->stats().frames_dropped.fetch_add(1, std::memory_order_relaxed);
        if (!up) c.live->stats().outage_frames.fetch_add(1, std::memory_order_relaxed);
        if (options_.metrics.frames_dropped) options_.metrics.frames_dropped->inc();
        return;
      }
      if (c.drop_start_ms >= 0) {
        push_text(c, c.proto->discarded_message(c.drop_start_ms, c.drop_ms));
        c.drop_start_ms = -1;
      }
      Outgoing o;
      o.binary = true;
      o.first_arrival_us = f.first_arrival_us;
      o.bytes.assign(LWS_PRE, 0);
      auto payload = c.proto->frame_message(f);
      o.end_position_ms = c.proto->position_ms();
      o.bytes.insert(o.bytes.end(), payload.begin(), payload.end());
      c.out.push_back(std::move(o));
      ++c.queued_frames;
    });
    if (ended && c.builder.next_frame() * 20'000 >= c.live->end_us()) {
      if (linked) {
        if (c.drop_start_ms >= 0) {
          push_text(c, c.proto->discarded_message(c.drop_start_ms, c.drop_ms));
          c.drop_start_ms = -1;
        }
        push_text(c, c.proto->close_message());
      }
      c.close_queued = true;
      c.close_at_mono = now;
    }
  }
  if (c.proto->ready() && c.connected && options_.ping_interval_s > 0 &&
      c.proto->protocol() == Protocol::kAudioHook) {
    if (c.next_ping_mono == 0) c.next_ping_mono = now + options_.ping_interval_s * 1'000'000LL;
    if (now >= c.next_ping_mono && !c.close_queued) {
      push_text(c, c.proto->ping_message());
      c.next_ping_mono = now + options_.ping_interval_s * 1'000'000LL;
    }
  }

  if (c.wsi == nullptr) {
    if (c.done) return;
    if (c.close_queued) {  // the call ended and nobody is connected (gone() counted the rest)
      c.done = true;
      return;
    }
    if (now >= c.reconnect_at_mono) connect(c);
    return;
  }
  if (c.close_queued && c.close_written && now - c.close_at_mono > kCloseWaitUs) {
    c.kill = true;  // no "closed" in time
    c.done = true;
  }
  if (c.close_queued && c.out.empty() && c.close_written &&
      c.proto->protocol() == Protocol::kPlain) {
    c.kill = true;
    c.done = true;
  }
  if (c.close_queued && !c.close_written && now - c.close_at_mono > 5 * kCloseWaitUs) {
    c.kill = true;  // a server that never reads: give up on the tail
    c.done = true;
  }
  if (c.kill || (c.connected && !c.out.empty() && (!c.open_sent || c.proto->ready())))
    lws_callback_on_writable(c.wsi);
}

std::uint64_t Streamer::drop_queued_frames(Conn& c, bool outage) {
  const auto before = c.out.size();
  std::erase_if(c.out, [](const Outgoing& o) { return o.binary; });
  const std::uint64_t frames = before - c.out.size();
  c.queued_frames = 0;
  if (frames > 0) {
    c.live->stats().frames_dropped.fetch_add(frames, std::memory_order_relaxed);
    if (outage) c.live->stats().outage_frames.fetch_add(frames, std::memory_order_relaxed);
    if (options_.metrics.frames_dropped) options_.metrics.frames_dropped->inc(frames);
  }
  return frames;
}

void Streamer::close_on_disconnect(Conn& c, const std::string& reason) {
  const std::uint64_t frames = drop_queued_frames(c, /*outage=*/false);
  const std::string why = "the AudioHook server sent disconnect (" + (reason.empty() ? "no reason" : reason) +
                          "): the stream ended at position " + std::to_string(c.sent_position_ms) +
                          " ms, not reconnected";
  c.live->set_error(why);
  common::logger("stream")->info("{}: {}; {} queued frames dropped", c.log_id, why, frames);
  push_text(c, c.proto->close_message("disconnect"));
  c.close_queued = true;
  c.close_at_mono = media::monotonic_us();
  if (c.wsi) lws_callback_on_writable(c.wsi);
}

void Streamer::write(Conn& c) {
  if (!c.connected || c.out.empty()) return;
  // The open first (connect() put it at the front), then - once the session is ready - the rest.
  if (!c.open_sent && !c.out.front().open) return;  // cannot happen: connect() queues it first
  if (c.open_sent && !c.proto->ready()) return;
  if (lws_send_pipe_choked(c.wsi)) {
    lws_callback_on_writable(c.wsi);
    return;
  }
  Outgoing o = std::move(c.out.front());
  c.out.pop_front();
  const std::size_t n = o.bytes.size() - LWS_PRE;
  if (lws_write(c.wsi, o.bytes.data() + LWS_PRE, n, o.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < 0) {
    c.kill = true;
    lws_callback_on_writable(c.wsi);
    return;
  }
  if (o.open) c.open_sent = true;
  if (!o.binary) c.proto->sent(o.seq);
  if (o.binary) {
    c.sent_position_ms = o.end_position_ms;
    --c.queued_frames;
    c.live->stats().frames_sent.fetch_add(1, std::memory_order_relaxed);
    if (options_.metrics.frames_sent) options_.metrics.frames_sent->inc();
    const std::int64_t origin = c.live->origin();
    if (o.first_arrival_us >= 0 && origin >= 0)
      c.live->stats().latency.add((media::monotonic_us() - origin - o.first_arrival_us) / 1000);
  }
  if (c.out.empty() && c.close_queued) c.close_written = true;
  if (!c.out.empty()) lws_callback_on_writable(c.wsi);
}

}  // namespace sgw::stream
