#include "stream/frame_builder.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "recording/timeline_resample.h"

namespace sgw::stream {

namespace {

template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->get<bool>() : fallback;
  } else if constexpr (std::is_integral_v<T>) {
    return it->is_number_integer() ? it->get<T>() : fallback;
  } else {
    return it->is_string() ? it->get<std::string>() : fallback;
  }
}

// Floor division for sample positions that may be negative.
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

FrameBuilder::FrameBuilder(std::uint32_t delay_ms)
    : delay_ms_(delay_ms), ring_(kRingFrames), ring_index_(kRingFrames, -1), filled_(kRingFrames) {}

void FrameBuilder::apply_streams_event(std::int64_t at_us, const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  auto list = j.find("streams");
  if (list == j.end() || !list->is_array()) return;
  for (const auto& s : *list) {
    if (!s.is_object()) continue;
    auto index = get_or<std::int64_t>(s, "index", -1);
    if (index < 0 || index >= 256) continue;
    auto& st = streams_[static_cast<std::size_t>(index)];
    st.recorded = get_or<bool>(s, "recorded", false);
    st.label = get_or<std::string>(s, "label", "");
    st.paused = get_or<bool>(s, "paused", false) || get_or<bool>(s, "held", false);
    auto payloads = s.find("payloads");
    if (payloads == s.end() || !payloads->is_array()) continue;
    for (const auto& pl : *payloads) {
      if (!pl.is_object()) continue;
      auto pt = get_or<std::int64_t>(pl, "pt", -1);
      if (pt < 0 || pt >= 128) continue;
      auto info = media::codec_from_sdp(get_or<std::string>(pl, "encoding", ""),
                                        get_or<std::uint32_t>(pl, "clock_rate", 0));
      if (!info) continue;
      auto& dec = st.decoders[static_cast<std::uint8_t>(pt)];
      if (dec && dec->info().id == info->id) continue;  // same codec: keep its state
      auto made = media::make_decoder(info->id);
      if (made) dec = std::move(made).value();
    }
  }
  bool any = false, all = true;
  for (const auto& [i, st] : streams_)
    if (st.recorded) {
      any = true;
      all &= st.paused;
    }
  bool paused = any && all;
  if (paused != all_paused_) {
    all_paused_ = paused;
    pause_changes_.emplace_back(at_us, paused);
  }
}

void FrameBuilder::set_channels(std::optional<std::size_t> external_stream,
                                std::optional<std::size_t> internal_stream) {
  for (auto& [i, st] : streams_) st.channel.reset();
  if (external_stream) streams_[*external_stream].channel = 0;
  if (internal_stream) streams_[*internal_stream].channel = 1;
}

std::vector<std::pair<std::size_t, std::string>> FrameBuilder::recorded_streams() const {
  std::vector<std::pair<std::size_t, std::string>> out;
  for (const auto& [i, st] : streams_)
    if (st.recorded) out.emplace_back(i, st.label);
  return out;
}

Frame& FrameBuilder::frame_at(std::int64_t index) {
  auto slot = static_cast<std::size_t>(index % static_cast<std::int64_t>(kRingFrames));
  if (ring_index_[slot] != index) {
    Frame& f = ring_[slot];
    for (auto& ch : f.channels) ch.fill(0);
    f.first_arrival_us = -1;
    f.index = index;
    f.paused = false;
    for (auto& bits : filled_[slot]) bits.reset();
    ring_index_[slot] = index;
  }
  return ring_[slot];
}

void FrameBuilder::add_packet(const PacketSlot& p) {
  ++stats_.packets;
  auto it = streams_.find(p.stream);
  if (it == streams_.end() || !it->second.channel) return;
  StreamState& st = it->second;
  auto d = st.decoders.find(p.payload_type);
  if (d == st.decoders.end() || !d->second) {
    // RFC 3551 static payload types are unambiguous even when not negotiated; comfort noise
    // (13) and telephone events are not audio for the stream.
    auto info = media::codec_from_static_payload_type(p.payload_type);
    if (!info) {
      ++stats_.unknown_payload;
      return;
    }
    auto made = media::make_decoder(info->id);
    if (!made) {
      ++stats_.decode_errors;
      return;
    }
    d = st.decoders.insert_or_assign(p.payload_type, std::move(made).value()).first;
  }
  media::Decoder& dec = *d->second;
  auto n = dec.decode(std::span<const std::uint8_t>(p.payload.data(), p.length), pcm_);
  if (!n || *n == 0) {
    ++stats_.decode_errors;
    return;
  }
  const auto info = dec.info();
  const auto out_n = static_cast<std::size_t>(*n * kStreamRate / info.native_rate);
  if (out_n == 0) return;
  recording::resample(std::span<const std::int16_t>(pcm_.data(), *n), 0,
                      std::span<std::int16_t>(pcm8k_.data(), out_n));

  // Extended timestamp; a new SSRC or clock starts a new segment.
  bool fresh = !st.have_ssrc || st.ssrc != p.ssrc || st.rtp_clock != info.rtp_clock;
  if (fresh) {
    st.have_ssrc = true;
    st.ssrc = p.ssrc;
    st.ext_ts = p.timestamp;
    st.rtp_clock = info.rtp_clock;
  } else {
    st.ext_ts += static_cast<std::int32_t>(p.timestamp - st.last_ts);
  }
  st.last_ts = p.timestamp;
  const std::int64_t ts8k = st.ext_ts * kStreamRate / st.rtp_clock;
  const std::int64_t arrival_pos = p.arrival_us * kStreamRate / 1'000'000;
  // The packet's audio ended when it arrived (at the earliest).
  const std::int64_t candidate = arrival_pos - static_cast<std::int64_t>(out_n) - ts8k;
  if (fresh) {
    st.offset = candidate;
    st.anchor_arrival_us = p.arrival_us;
  } else if (p.arrival_us - st.anchor_arrival_us < 1'000'000 && candidate < st.offset) {
    st.offset = candidate;  // a less delayed packet of the first second
  } else if (candidate - st.offset > kStreamRate / 2 || st.offset - candidate > kStreamRate / 2) {
    st.offset = candidate;  // timestamps jumped by more than 500 ms: re-anchor
    st.anchor_arrival_us = p.arrival_us;
  }
  const std::int64_t start = ts8k + st.offset;
  const int ch = *st.channel;
  const auto frame_len = static_cast<std::int64_t>(kFrameSamples);
  for (std::size_t i = 0; i < out_n; ++i) {
    const std::int64_t pos = start + static_cast<std::int64_t>(i);
    const std::int64_t f = floor_div(pos, frame_len);
    if (f < next_frame_ || f >= next_frame_ + static_cast<std::int64_t>(kRingFrames)) {
      ++stats_.late_samples;
      continue;
    }
    Frame& fr = frame_at(f);
    const auto at = static_cast<std::size_t>(pos - f * frame_len);
    fr.channels[static_cast<std::size_t>(ch)][at] = pcm8k_[i];
    filled_[static_cast<std::size_t>(f % static_cast<std::int64_t>(kRingFrames))][static_cast<std::size_t>(ch)].set(at);
    if (fr.first_arrival_us < 0 || p.arrival_us < fr.first_arrival_us) fr.first_arrival_us = p.arrival_us;
    first_pos_[static_cast<std::size_t>(ch)] = std::min(first_pos_[static_cast<std::size_t>(ch)], pos);
  }
}

bool FrameBuilder::complete(std::int64_t index) const {
  const auto slot = static_cast<std::size_t>(index % static_cast<std::int64_t>(kRingFrames));
  const bool placed = ring_index_[slot] == index;
  const auto frame_len = static_cast<std::int64_t>(kFrameSamples);
  for (std::size_t ch = 0; ch < 2; ++ch) {
    // A channel whose audio starts after this frame is not waited for; one whose audio starts
    // inside it, or before it, must have every sample from that start on.
    if (first_pos_[ch] >= (index + 1) * frame_len) continue;
    if (!placed) return false;
    const auto& bits = filled_[slot][ch];
    const std::int64_t from = std::max<std::int64_t>(0, first_pos_[ch] - index * frame_len);
    if (from == 0) {
      if (!bits.all()) return false;
    } else {
      for (auto i = static_cast<std::size_t>(from); i < kFrameSamples; ++i)
        if (!bits.test(i)) return false;
    }
  }
  // Before any audio nothing is known to be on its way: the frame waits for delay_ms.
  return first_pos_[0] != kNoAudio || first_pos_[1] != kNoAudio;
}

void FrameBuilder::advance(std::int64_t now_us, const std::function<void(const Frame&)>& out) {
  constexpr std::int64_t kFrameUs = 20'000;
  const std::int64_t delay_us = static_cast<std::int64_t>(delay_ms_) * 1000;
  const std::int64_t margin_us = std::min(delay_us, kCompleteMarginUs);
  while ((next_frame_ + 1) * kFrameUs + delay_us <= now_us ||
         ((next_frame_ + 1) * kFrameUs + margin_us <= now_us && complete(next_frame_))) {
    const std::int64_t start_us = next_frame_ * kFrameUs;
    std::size_t applied = 0;
    for (const auto& [at, paused] : pause_changes_) {
      if (at > start_us) break;
      frame_paused_ = paused;
      ++applied;
    }
    pause_changes_.erase(pause_changes_.begin(), pause_changes_.begin() + static_cast<std::ptrdiff_t>(applied));
    Frame& f = frame_at(next_frame_);
    f.paused = frame_paused_;
    out(f);
    ring_index_[static_cast<std::size_t>(next_frame_ % static_cast<std::int64_t>(kRingFrames))] = -1;
    ++next_frame_;
  }
}

}  // namespace sgw::stream
