// --rtp-only HOST:BASEPORT: the RTP traffic of a load run without SIP, for the benchmark's floor
// measurement (docs/performance.md). Calls start at --rate up to --concurrency at once, --calls in
// all; each sends the same two legs as a real call (same RtpSender, codec, tones, pacing, socket
// choice, fault injection) for --duration, to fixed ports: call i's legs go to
// BASEPORT + 4 × (i mod concurrency) and that + 2, which is where a freshly started siprecd whose
// --rtp-ports start at BASEPORT puts them.
//
// Thread: run_rtp_only() blocks the calling thread until every stream has ended (bounded by
// --max-wall or launch time + duration + 10 s).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "siprec_src/options.h"

namespace sgw::siprec_src {

struct RtpOnlySummary {
  std::uint64_t calls = 0;
  std::uint64_t rtp_packets = 0;
  std::uint64_t late_ticks = 0;
  std::uint64_t late_packets = 0;  // sent more than 2 ms after due (RtpSender::late_packets)
  std::uint64_t max_late_ms = 0;
  std::size_t sender_threads = 1;
  double wall_s = 0;
  bool wall_limit_hit = false;
};

// Errors: "cli.usage" for a bad HOST:BASEPORT or a port range past 65535; audio/socket errors
// from the sender.
common::Result<RtpOnlySummary> run_rtp_only(const Options& options);

}  // namespace sgw::siprec_src
