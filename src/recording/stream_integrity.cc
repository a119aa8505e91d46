#include "recording/stream_integrity.h"

#include <algorithm>

namespace sgw::recording {

namespace {
// RFC 3550 A.1 constants.
constexpr std::uint32_t kMaxDropout = 3000;
constexpr std::uint32_t kMaxMisorder = 100;
constexpr std::uint32_t kSeqMod = 1U << 16;
}  // namespace

StreamAccounting::StreamAccounting(std::vector<std::pair<std::int64_t, bool>> changes,
                                   std::int64_t duration_us, std::int64_t threshold_us)
    : duration_us_(std::max<std::int64_t>(0, duration_us)),
      threshold_us_(std::max<std::int64_t>(1, threshold_us)) {
  bool active = false;
  std::int64_t since = 0;
  for (const auto& [at, on] : changes) {
    std::int64_t t = std::clamp<std::int64_t>(at, 0, duration_us_);
    if (on == active) continue;
    if (active && t > since) active_.emplace_back(since, t);
    active = on;
    since = std::max(since, t);
  }
  if (active && duration_us_ > since) active_.emplace_back(since, duration_us_);
}

std::int64_t StreamAccounting::active_us(std::int64_t a, std::int64_t b) const {
  std::int64_t sum = 0;
  for (const auto& [s, e] : active_) {
    if (e <= a) continue;
    if (s >= b) break;
    sum += std::min(e, b) - std::max(s, a);
  }
  return sum;
}

void StreamAccounting::note_silence(std::int64_t from_us, std::int64_t to_us) {
  if (to_us - from_us <= threshold_us_) return;  // cheap filter: active time is never longer
  std::int64_t length = active_us(from_us, to_us);
  if (length <= threshold_us_) return;
  std::int64_t start = from_us;
  for (const auto& [s, e] : active_)
    if (e > from_us) {
      start = std::max(s, from_us);
      break;
    }
  silences_.push_back({start / 1000, length / 1000});
}

void StreamAccounting::on_packet(std::uint32_t ssrc, std::uint16_t seq, std::int64_t arrival_us) {
  if (finished_) return;
  ++received_;
  arrival_us = std::clamp<std::int64_t>(arrival_us, last_us_, std::max(last_us_, duration_us_));
  note_silence(last_us_, arrival_us);
  last_us_ = arrival_us;

  auto [it, fresh] = sources_.try_emplace(ssrc);
  Source& s = it->second;
  if (fresh) {
    s.base = seq;
    s.max_seq = seq;
    return;
  }
  // RFC 3550 A.1 update_seq, without probation for a new source.
  std::uint16_t udelta = static_cast<std::uint16_t>(seq - s.max_seq);
  if (udelta < kMaxDropout) {
    if (seq < s.max_seq) s.cycles += kSeqMod;  // wrapped
    s.max_seq = seq;
  } else if (udelta <= kSeqMod - kMaxMisorder) {
    // A far jump: the sender restarted its sequence, believed when the next packet follows.
    if (seq == s.bad_seq) {
      std::uint64_t ext_max = std::uint64_t{s.cycles} + s.max_seq;
      s.closed += ext_max >= s.base ? ext_max - s.base + 1 : 0;
      // The new segment starts at the previous (unconfirmed) packet.
      std::uint16_t first = static_cast<std::uint16_t>(seq - 1);
      s.cycles = 0;
      s.base = first;
      s.max_seq = seq;
      s.bad_seq = 0x10000;
    } else {
      s.bad_seq = (std::uint32_t{seq} + 1) & (kSeqMod - 1);
    }
  }
  // else: duplicate or reordered old packet; nothing to extend.
}

void StreamAccounting::finish() {
  if (finished_) return;
  finished_ = true;
  note_silence(last_us_, duration_us_);
}

std::uint64_t StreamAccounting::expected() const {
  std::uint64_t total = 0;
  for (const auto& [ssrc, s] : sources_) {
    std::uint64_t ext_max = std::uint64_t{s.cycles} + s.max_seq;
    total += s.closed + (ext_max >= s.base ? ext_max - s.base + 1 : 0);
  }
  return total;
}

std::int64_t StreamAccounting::longest_silence_ms() const {
  std::int64_t m = 0;
  for (const auto& p : silences_) m = std::max(m, p.length_ms);
  return m;
}

}  // namespace sgw::recording
