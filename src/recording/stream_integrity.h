// StreamAccounting: what one recorded stream's RTP records in the spool say
// about the stream's integrity, counted in one pass in arrival order and in
// constant memory (a 30 h call costs no more than a 30 s one):
//
//  - packets expected by RFC 3550 appendix A.3 (extended highest sequence
//    number - base + 1), per SSRC and across sequence resets (A.1: a jump of
//    3000 or more is believed when the next packet follows it); received =
//    every record, duplicates included (A.3 counts them too);
//  - silent periods: stretches longer than a threshold with no packet while
//    the stream was active (not paused, on hold or not yet added). Activity is
//    known up front from the session's stream events (pass 1 of the finaliser).
//
// Thread: one thread at a time. Packet fields are never trusted: nothing here
// throws or asserts on them.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace sgw::recording {

struct SilentPeriod {
  std::int64_t start_ms = 0;   // session timeline
  std::int64_t length_ms = 0;  // active time without a packet (pauses inside excluded)
};

class StreamAccounting {
 public:
  // changes: (time_us, active) in time order, starting inactive at 0; duration_us:
  // the session's length; threshold_us: shortest silence reported (> 0).
  StreamAccounting(std::vector<std::pair<std::int64_t, bool>> changes, std::int64_t duration_us,
                   std::int64_t threshold_us);

  // One RTP record, in arrival order.
  void on_packet(std::uint32_t ssrc, std::uint16_t seq, std::int64_t arrival_us);
  // End of the stream: closes the last silence (to duration_us).
  void finish();

  std::uint64_t expected() const;
  std::uint64_t received() const { return received_; }
  const std::vector<SilentPeriod>& silences() const { return silences_; }
  std::int64_t longest_silence_ms() const;
  // Active time in [a, b).
  std::int64_t active_us(std::int64_t a, std::int64_t b) const;

 private:
  struct Source {
    std::uint32_t base = 0;       // extended seq of the segment's first packet
    std::uint32_t cycles = 0;     // wraps * 65536
    std::uint16_t max_seq = 0;
    std::uint32_t bad_seq = 0x10000;  // A.1: seq + 1 of an unconfirmed far jump
    std::uint64_t closed = 0;     // expected of the segments before the current one
  };
  void note_silence(std::int64_t from_us, std::int64_t to_us);

  std::vector<std::pair<std::int64_t, std::int64_t>> active_;  // [start, end) intervals
  std::int64_t duration_us_;
  std::int64_t threshold_us_;
  std::map<std::uint32_t, Source> sources_;  // by SSRC; a handful per stream
  std::uint64_t received_ = 0;
  std::int64_t last_us_ = 0;  // arrival of the previous packet (0: session start)
  std::vector<SilentPeriod> silences_;
  bool finished_ = false;
};

}  // namespace sgw::recording
