#include "siprec_src/rtp_only.h"

#include <time.h>

#include <algorithm>
#include <fstream>
#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

#include "siprec_src/audio_source.h"
#include "siprec_src/rate_scheduler.h"
#include "siprec_src/rtp_sender.h"

namespace sgw::siprec_src {
namespace {

std::int64_t mono_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// "127.0.0.1:30000" or "[::1]:30000".
common::Result<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find("]:");
    if (close == std::string::npos) return common::make_error("cli.usage", "--rtp-only: expected [ADDR]:PORT");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) return common::make_error("cli.usage", "--rtp-only: expected HOST:BASEPORT");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return common::make_error("cli.usage", "--rtp-only: bad port in '" + s + "'");
  unsigned long p = std::stoul(port);
  if (p < 1 || p > 65535) return common::make_error("cli.usage", "--rtp-only: bad port in '" + s + "'");
  return std::make_pair(host, static_cast<std::uint16_t>(p));
}

}  // namespace

common::Result<RtpOnlySummary> run_rtp_only(const Options& o) {
  auto hp = split_host_port(o.rtp_only);
  if (!hp) return hp.error();
  const std::size_t places = static_cast<std::size_t>(std::min<std::uint64_t>(o.calls, o.concurrency));
  if (static_cast<std::uint64_t>(hp->second) + 4 * (places - 1) + 2 > 65535)
    return common::make_error("cli.usage", "--rtp-only: BASEPORT + 4 x concurrency goes past 65535");
  std::vector<std::uint16_t> ports(places * 2);
  for (std::size_t k = 0; k < ports.size(); ++k) ports[k] = static_cast<std::uint16_t>(hp->second + 2 * k);
  if (!o.rtp_only_ports.empty()) {
    // Ports a peer allocated (bench/run --peer rtpengine): two per place, leg 0 then leg 1.
    std::ifstream in(o.rtp_only_ports);
    std::size_t k = 0;
    unsigned long p = 0;
    while (k < ports.size() && in >> p) {
      if (p < 1 || p > 65535) return common::make_error("cli.usage", "--rtp-only-ports: bad port " + std::to_string(p));
      ports[k++] = static_cast<std::uint16_t>(p);
    }
    if (k < ports.size())
      return common::make_error("cli.usage", "--rtp-only-ports " + o.rtp_only_ports + ": " + std::to_string(k) +
                                                 " ports, " + std::to_string(ports.size()) + " needed");
  }
  std::vector<Destination> dest(places * 2);
  for (std::size_t k = 0; k < dest.size(); ++k) {
    auto d = make_destination(hp->first, ports[k]);
    if (!d) return common::make_error("cli.usage", "--rtp-only: " + d.error().message);
    dest[k] = *d;
  }

  auto legs = encode_legs(o.codec, o.wav_caller, o.wav_agent, o.tone_caller, o.tone_agent);
  if (!legs) return legs.error();
  LegAudio audio = *legs;

  // Slots come back on the sender thread; the launch loop below takes them.
  std::mutex mu;
  std::vector<StreamId> free_slots;
  std::size_t removed = 0;
  const std::size_t max_streams = places * 2 + 64;
  for (std::size_t i = max_streams; i > 0; --i) free_slots.push_back(static_cast<StreamId>(i - 1));
  SenderOptions so;
  so.bind_address = o.bind;
  so.max_streams = max_streams;
  so.loss = o.loss;
  so.reorder = o.reorder;
  so.dup = o.dup;
  so.jitter_ms = o.jitter_ms;
  so.seed = o.seed;
  so.threads = o.sender_threads;
  auto sender = RtpSender::create(so, [&](std::uint64_t tag, const StreamStats&) {
    std::lock_guard lock(mu);
    free_slots.push_back(static_cast<StreamId>(tag));
    ++removed;
  });
  if (!sender) return sender.error();

  struct Live {
    std::int64_t end_us;
    StreamId slot[2];
  };
  std::vector<Live> live;
  live.reserve(places);
  RtpOnlySummary sum;
  sum.calls = o.calls;
  // A call holds its place for its duration (no SIP here); see CallEngine::run.
  const double launch_s = launch_time_s(o.calls, o.rate, places, o.duration_s + 0.1);
  const double wall = o.max_wall_s > 0 ? o.max_wall_s : launch_s + o.duration_s + 10;
  const std::int64_t t0 = mono_us();
  const auto wall_us = static_cast<std::int64_t>(wall * 1e6);
  const auto dur_us = static_cast<std::int64_t>(o.duration_ms) * 1000;
  (*sender)->start();
  RateScheduler schedule(o.rate, 0);
  std::uint64_t started = 0, added = 0;
  while (true) {
    const std::int64_t now = mono_us() - t0;
    if (now >= wall_us) {
      sum.wall_limit_hit = true;
      break;
    }
    for (auto it = live.begin(); it != live.end();) {
      if (now >= it->end_us) {
        (*sender)->remove(it->slot[0]);
        (*sender)->remove(it->slot[1]);
        it = live.erase(it);
      } else {
        ++it;
      }
    }
    std::size_t due = schedule.due(now, std::min<std::uint64_t>(o.calls - started, places - live.size()));
    for (; due > 0; --due) {
      Live l{now + dur_us, {0, 0}};
      {
        std::lock_guard lock(mu);
        if (free_slots.size() < 2) break;
        for (auto& s : l.slot) {
          s = free_slots.back();
          free_slots.pop_back();
        }
      }
      const std::size_t place = static_cast<std::size_t>(started % places);
      for (std::size_t leg = 0; leg < 2; ++leg) {
        (*sender)->add(&l.slot[leg], l.slot[leg], audio[leg].get(), dest[place * 2 + leg], started * 2 + leg,
                       o.seed * 1000003ULL + started * 2 + leg, false);
        ++added;
      }
      live.push_back(l);
      ++started;
    }
    if (started == o.calls && live.empty()) {
      std::lock_guard lock(mu);
      if (removed == added) break;
    }
    timespec ts{0, 2000000};
    nanosleep(&ts, nullptr);
  }
  (*sender)->stop();
  sum.rtp_packets = (*sender)->packets_sent();
  sum.late_ticks = (*sender)->late_ticks();
  sum.late_packets = (*sender)->late_packets();
  sum.max_late_ms = (*sender)->max_late_ms();
  sum.sender_threads = (*sender)->threads();
  sum.wall_s = static_cast<double>(mono_us() - t0) / 1e6;
  return sum;
}

}  // namespace sgw::siprec_src
