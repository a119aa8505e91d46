#include "stream/live_stream.h"

#include <algorithm>
#include <bit>

namespace sgw::stream {

std::string_view protocol_name(Protocol p) { return p == Protocol::kPlain ? "plain" : "audiohook"; }

PacketRing::PacketRing(std::size_t capacity)
    : slots_(std::bit_ceil(std::max<std::size_t>(capacity, 2))), mask_(slots_.size() - 1) {}

void LatencyHistogram::add(std::int64_t ms) {
  auto b = static_cast<std::size_t>(std::clamp<std::int64_t>(ms, 0, kBuckets - 1));
  buckets_[b].fetch_add(1, std::memory_order_relaxed);
}

std::int64_t LatencyHistogram::percentile(double p) const {
  std::uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return -1;
  // The smallest bucket at or under which at least p of the samples lie.
  auto want = static_cast<std::uint64_t>(p * static_cast<double>(total));
  if (want == 0) want = 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= want) return static_cast<std::int64_t>(i);
  }
  return kBuckets - 1;
}

std::int64_t LatencyHistogram::max() const {
  for (std::size_t i = kBuckets; i-- > 0;)
    if (buckets_[i].load(std::memory_order_relaxed)) return static_cast<std::int64_t>(i);
  return -1;
}

void LiveStream::post_event(SessionEvent e) {
  std::lock_guard lock(mutex_);
  events_.push_back(std::move(e));
}

std::vector<SessionEvent> LiveStream::take_events() {
  std::vector<SessionEvent> out;
  std::lock_guard lock(mutex_);
  out.swap(events_);
  return out;
}

void LiveStream::set_error(std::string e) {
  std::lock_guard lock(mutex_);
  error_ = std::move(e);
}

std::string LiveStream::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

recording::LiveStreamReport LiveStream::report() const {
  recording::LiveStreamReport r;
  r.url = redact_url(target_.url);
  r.protocol = std::string(protocol_name(target_.protocol));
  switch (static_cast<State>(stats_.state.load(std::memory_order_relaxed))) {
    case State::kConnecting: r.state = "connecting"; break;
    case State::kStreaming: r.state = "streaming"; break;
    case State::kFailed: r.state = "failed"; break;
    case State::kClosed: r.state = "closed"; break;
  }
  r.connects = stats_.connects.load(std::memory_order_relaxed);
  r.connect_failures = stats_.connect_failures.load(std::memory_order_relaxed);
  r.reconnects = stats_.reconnects.load(std::memory_order_relaxed);
  r.connections_lost = stats_.connections_lost.load(std::memory_order_relaxed);
  r.outage_frames = stats_.outage_frames.load(std::memory_order_relaxed);
  r.frames_sent = stats_.frames_sent.load(std::memory_order_relaxed);
  r.frames_dropped = stats_.frames_dropped.load(std::memory_order_relaxed);
  r.packets_dropped = stats_.packets_dropped.load(std::memory_order_relaxed);
  r.latency_p50_ms = stats_.latency.percentile(0.50);
  r.latency_p99_ms = stats_.latency.percentile(0.99);
  r.latency_max_ms = stats_.latency.max();
  r.error = error();
  return r;
}

std::string redact_url(const std::string& url) {
  auto cut = url.find_first_of("?#");
  std::string out = url.substr(0, cut);
  // user:password@ in the authority
  auto scheme = out.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto slash = out.find('/', start);
  auto at = out.rfind('@', slash == std::string::npos ? std::string::npos : slash);
  if (at != std::string::npos && at >= start) out.erase(start, at + 1 - start);
  return out;
}

std::optional<StreamTarget> stream_target_for(const StreamTarget& configured,
                                              const std::optional<recording::StreamOverride>& hook) {
  if (!hook) {
    if (configured.url.empty()) return std::nullopt;
    return configured;
  }
  if (hook->url.empty()) return std::nullopt;
  StreamTarget t = configured;
  t.url = hook->url;
  if (hook->protocol) t.protocol = *hook->protocol == "plain" ? Protocol::kPlain : Protocol::kAudioHook;
  if (hook->api_key) t.api_key = *hook->api_key;
  if (hook->organization_id) t.organization_id = *hook->organization_id;
  return t;
}

}  // namespace sgw::stream
