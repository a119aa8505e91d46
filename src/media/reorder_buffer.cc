#include "media/reorder_buffer.h"

#include <algorithm>
#include <limits>

namespace sgw::media {

namespace {
constexpr std::uint64_t kSeqBase = 1u << 16;  // extended seqs start one cycle up, so a
                                             // straggler from "before" the first packet
                                             // (seq 0 then 65535) does not underflow
}  // namespace

ReorderBuffer::ReorderBuffer(ReorderConfig config) : config_(config) {
  if (config_.capacity < 2) config_.capacity = 2;
  if (config_.max_payload == 0) config_.max_payload = 1;
  slots_.resize(config_.capacity);
  pool_.resize(config_.capacity * config_.max_payload);
  candidate_payload_.resize(config_.max_payload);
}

bool ReorderBuffer::seen_ssrc(std::uint32_t ssrc) const {
  return std::find(stats_.ssrcs.begin(), stats_.ssrcs.end(), ssrc) != stats_.ssrcs.end();
}

void ReorderBuffer::start_segment(const ReorderInput& first) {
  if (!have_stream_ || first.ssrc != ssrc_) ssrc_since_us_ = first.arrival_us;
  if (!seen_ssrc(first.ssrc)) stats_.ssrcs.push_back(first.ssrc);
  have_stream_ = true;
  ssrc_ = first.ssrc;
  started_ = false;
  segment_flag_ = true;
  next_ext_ = kSeqBase + first.seq;
  max_ext_ = next_ext_;
  emitted_mask_ = 0;
  skipped_ = 0;
  ++stats_.segments;
  for (auto& s : slots_) s.used = false;
  count_ = 0;
}

void ReorderBuffer::store(std::size_t index, std::uint64_t ext_seq, const ReorderInput& p) {
  Slot& s = slots_[index];
  s.used = true;
  s.ext_seq = ext_seq;
  s.seq = p.seq;
  s.timestamp = p.timestamp;
  s.ssrc = p.ssrc;
  s.arrival_us = p.arrival_us;
  s.payload_type = p.payload_type;
  s.marker = p.marker;
  s.length = p.payload.size();
  std::copy(p.payload.begin(), p.payload.end(), slot_payload(index).begin());
  ++count_;
}

void ReorderBuffer::emit(std::size_t index, std::uint32_t lost, PacketSink& sink) {
  Slot& s = slots_[index];
  ReorderedPacket out;
  out.ext_seq = s.ext_seq;
  out.seq = s.seq;
  out.timestamp = s.timestamp;
  out.ssrc = s.ssrc;
  out.arrival_us = s.arrival_us;
  out.payload_type = s.payload_type;
  out.marker = s.marker;
  out.payload = slot_payload(index).first(s.length);
  out.lost_before = lost;
  out.new_segment = segment_flag_;
  out.segment = stats_.segments == 0 ? 0 : stats_.segments - 1;
  segment_flag_ = false;
  started_ = true;
  std::uint64_t shift = s.ext_seq + 1 - next_ext_;
  emitted_mask_ = shift >= 64 ? 1 : ((emitted_mask_ << shift) | 1);
  next_ext_ = s.ext_seq + 1;
  s.used = false;
  --count_;
  ++stats_.emitted;
  stats_.lost += lost;
  sink.on_packet(out);
}

void ReorderBuffer::release(PacketSink& sink, bool drain) {
  const std::int64_t window_us = std::int64_t{config_.window_ms} * 1000;
  while (count_ > 0) {
    std::size_t head = slot_index(next_ext_);
    if (started_ && slots_[head].used && slots_[head].ext_seq == next_ext_) {
      // In order: emitted 41, 42 is buffered -> emit 42 now, no waiting.
      std::uint32_t lost = skipped_;
      skipped_ = 0;
      emit(head, lost, sink);
      continue;
    }
    bool expired = drain;
    if (!expired && have_now_) {
      std::int64_t oldest = std::numeric_limits<std::int64_t>::max();
      for (const auto& s : slots_)
        if (s.used) oldest = std::min(oldest, s.arrival_us);
      expired = oldest <= now_us_ - window_us;
    }
    if (!expired) return;
    // Hole at the head, and a buffered packet has waited window_ms (or we are
    // draining): give up on the hole. Emitted 41; 43 arrived at t=100 ms, 42
    // never came; at t=160 ms (window 60) 43 goes out with lost_before = 1.
    // Before the first emission of a segment the head is the lowest packet
    // seen, which simply waited its window for earlier stragglers.
    std::uint64_t low = next_ext_;
    while (!(slots_[slot_index(low)].used && slots_[slot_index(low)].ext_seq == low)) ++low;
    std::uint32_t lost = started_ ? static_cast<std::uint32_t>(skipped_ + (low - next_ext_)) : 0;
    skipped_ = 0;
    emit(slot_index(low), lost, sink);
  }
}

void ReorderBuffer::push(const ReorderInput& packet, PacketSink& sink) {
  ++stats_.received;
  // Arrival times come from a spool on disk: keep them where differences
  // cannot overflow (+-2^62 us is 146,000 years).
  ReorderInput p = packet;
  p.arrival_us = std::clamp<std::int64_t>(p.arrival_us, -(std::int64_t{1} << 62), std::int64_t{1} << 62);
  if (!have_now_ || p.arrival_us > now_us_) now_us_ = p.arrival_us;
  have_now_ = true;

  if (p.payload.size() > config_.max_payload) {
    // A 2000-byte payload with 1500-byte slots: dropped, counted; it then
    // shows up as a lost sequence number when the hole is skipped.
    ++stats_.oversize;
    release(sink, false);
    return;
  }

  if (!have_stream_) {
    // First packet ever: seq 1000 at t=0 opens segment 0 with next = 1000.
    // It is held for window_ms, so 999 arriving at t=10 ms is still emitted
    // first (not counted late).
    start_segment(p);
    store(slot_index(next_ext_), next_ext_, p);
    release(sink, false);
    return;
  }

  if (p.ssrc != ssrc_) {
    if (seen_ssrc(p.ssrc) && p.arrival_us - ssrc_since_us_ < std::int64_t{config_.window_ms} * 1000) {
      // Straggler of the previous SSRC: A sent 10..20, B took over at t=1 s,
      // A's seq 19 arrives at t=1.02 s (within the window): dropped as late,
      // so the stream does not flap back to A.
      ++stats_.late;
      release(sink, false);
      return;
    }
    // SSRC change (or an old SSRC returning after the window): A's 10..20
    // buffered are emitted first (holes skipped as lost), then B's first
    // packet opens a new segment and waits its window like a stream start.
    if (candidate_.used) ++stats_.probation_dropped;
    candidate_.used = false;
    release(sink, true);
    start_segment(p);
    store(slot_index(next_ext_), next_ext_, p);
    release(sink, false);
    return;
  }

  // RFC 3550 A.1: extend the 16-bit seq against the highest one seen, taking
  // the nearest cycle. Highest 65534 (ext 0x1fffe), seq 1 arrives: delta is
  // int16(1 - 65534) = +3, ext 0x20001 - the wrap needs no special case.
  const auto delta = static_cast<std::int16_t>(static_cast<std::uint16_t>(p.seq - static_cast<std::uint16_t>(max_ext_)));
  const std::int64_t d = delta;
  const std::int64_t max_dropout = config_.max_dropout;

  if (d > max_dropout || d < -max_dropout) {
    if (candidate_.used && p.seq == static_cast<std::uint16_t>(candidate_.seq + 1)) {
      // Second consecutive packet at the new place: the reset is real.
      // Highest 1000, then 9000 (held as candidate), then 9001: emit what is
      // buffered from the old place, open a new segment at 9000, store
      // 9000 and 9001 there.
      release(sink, true);
      ReorderInput first;
      first.seq = candidate_.seq;
      first.timestamp = candidate_.timestamp;
      first.ssrc = candidate_.ssrc;
      first.arrival_us = candidate_.arrival_us;
      first.payload_type = candidate_.payload_type;
      first.marker = candidate_.marker;
      first.payload = std::span<const std::uint8_t>(candidate_payload_).first(candidate_.length);
      start_segment(first);
      store(slot_index(next_ext_), next_ext_, first);
      candidate_.used = false;
      max_ext_ = next_ext_ + 1;
      store(slot_index(max_ext_), max_ext_, p);
      release(sink, false);
      return;
    }
    if (candidate_.used && p.seq == candidate_.seq) {
      // The candidate itself again (9000, 9000): a duplicate.
      ++stats_.duplicates;
      release(sink, false);
      return;
    }
    // A far jump not (yet) confirmed: highest 1000, seq 9000 arrives. Hold it
    // as the candidate; if 1001 comes next instead, 9000 was garbage and is
    // eventually dropped (probation_dropped) when another far packet or
    // finish() replaces it.
    if (candidate_.used) ++stats_.probation_dropped;
    candidate_.used = true;
    candidate_.seq = p.seq;
    candidate_.timestamp = p.timestamp;
    candidate_.ssrc = p.ssrc;
    candidate_.arrival_us = p.arrival_us;
    candidate_.payload_type = p.payload_type;
    candidate_.marker = p.marker;
    candidate_.length = p.payload.size();
    std::copy(p.payload.begin(), p.payload.end(), candidate_payload_.begin());
    release(sink, false);
    return;
  }

  const auto ext = static_cast<std::uint64_t>(static_cast<std::int64_t>(max_ext_) + d);

  if (ext < next_ext_) {
    if (!started_ && max_ext_ - ext < slots_.size()) {
      // Reordered before anything of the segment was emitted: 1000 arrived
      // first, 999 ten ms later. The head moves back to 999.
      next_ext_ = ext;
      store(slot_index(ext), ext, p);
      ++stats_.reordered;
      release(sink, false);
      return;
    }
    // Behind what was emitted. Emitted ..40, 41 (next 42): a second 41 is a
    // duplicate (its bit is set in emitted_mask_); 39 that was skipped as
    // lost, or anything older than 64 packets, is late. Both are dropped.
    std::uint64_t back = next_ext_ - 1 - ext;
    if (back < 64 && ((emitted_mask_ >> back) & 1) != 0)
      ++stats_.duplicates;
    else
      ++stats_.late;
    release(sink, false);
    return;
  }

  while (ext >= next_ext_ + slots_.size()) {
    // Too far ahead for the ring (capacity 64, next 100, seq 170 arrives):
    // the head makes room now - emitted if present, otherwise skipped and
    // counted lost on the next emitted packet - without waiting the window.
    std::size_t head = slot_index(next_ext_);
    if (slots_[head].used && slots_[head].ext_seq == next_ext_) {
      std::uint32_t lost = skipped_;
      skipped_ = 0;
      emit(head, lost, sink);
    } else {
      if (started_) ++skipped_;
      ++next_ext_;
      emitted_mask_ <<= 1;
    }
  }

  std::size_t index = slot_index(ext);
  if (slots_[index].used && slots_[index].ext_seq == ext) {
    // Still buffered: 42 arrives twice before the window ran out. Dropped.
    ++stats_.duplicates;
    release(sink, false);
    return;
  }
  store(index, ext, p);
  if (ext < max_ext_) {
    // Reordered within the window: 41 emitted, 43 buffered, 42 arrives -
    // 42 and 43 are emitted now, in order.
    ++stats_.reordered;
  } else {
    max_ext_ = ext;
  }
  release(sink, false);
}

void ReorderBuffer::flush(std::int64_t now_us, PacketSink& sink) {
  now_us = std::clamp<std::int64_t>(now_us, -(std::int64_t{1} << 62), std::int64_t{1} << 62);
  if (!have_now_ || now_us > now_us_) now_us_ = now_us;
  have_now_ = true;
  release(sink, false);
}

void ReorderBuffer::finish(PacketSink& sink) {
  release(sink, true);
  if (candidate_.used) ++stats_.probation_dropped;
  candidate_.used = false;
}

}  // namespace sgw::media
