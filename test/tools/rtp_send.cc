// sgw-rtp-send: a test RTP source. Sends one or more streams of a generated
// tone, encoded with the gateway's own encoders, paced in real time, with
// optional loss, reordering, pauses (nothing sent, RTP clock keeps running),
// SSRC changes and RFC 4733 DTMF. Used by the integration tests to put known
// audio into a recording and check what comes out.
//
//   sgw-rtp-send --stream to=127.0.0.1:30000,codec=PCMA,tone=440
//                --stream to=127.0.0.1:30002,codec=G722,tone=1000,pt=9 --duration-ms 3000
//
// Stream keys: to=ADDR:PORT codec=PCMU|PCMA|G722|G729|opus pt=N tone=HZ
// amplitude=0..1 ptime=MS loss=P reorder=P dup=P pause=FROM-TO (ms, repeatable
// with ';') ssrc=N ssrc_change_at=MS dtmf=DIGIT@MS (telephone-event, pt 101,
// 200 ms) start=MS (first packet delay) seed=N
// switch=CODEC/TONE[/PT]@WHEN (repeatable with ';'): from WHEN (ms after start,
// or "signal" = when SIGUSR1 arrives) the stream sends CODEC (its static or
// given PT) with that tone, keeping SSRC, sequence numbers and RTP clock, as an
// SRC does after a re-INVITE changed the codec. Switches happen in the order
// given; each prints {"stream":I,"switch":K,"at_ms":T} (T = due time of its
// first packet, ms after start) when it happens.
// Exit 0 after sending; prints a JSON line per stream with packets sent and t0_unix_ms, the
// wall-clock time (ms since the epoch, fractional) at which packet 0 of every stream was due:
// where a recorder's timeline must put the audio, however late this process ran.

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "media/codec.h"

namespace {

using sgw::media::CodecId;

struct Pause {
  int from_ms = 0;
  int to_ms = 0;
};

struct Switch {
  std::string codec;
  double tone = 440;
  int pt = -1;
  int at_ms = -1;  // -1: on SIGUSR1
};

volatile sig_atomic_t g_signalled = 0;
void on_usr1(int) { g_signalled = 1; }

struct StreamSpec {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string codec = "PCMA";
  int pt = -1;
  double tone = 440;
  double amplitude = 0.3;
  int ptime = 20;
  double loss = 0, reorder = 0, dup = 0;
  std::vector<Pause> pauses;
  std::uint32_t ssrc = 0;
  int ssrc_change_at = -1;
  char dtmf = 0;
  int dtmf_at = -1;
  int start_ms = 0;
  unsigned seed = 1;
  std::vector<Switch> switches;
};

struct Packet {
  std::int64_t due_us;
  std::vector<std::uint8_t> bytes;
  // bytes after switch k (same header fields but PT, payload in the switch's codec); empty when
  // the packet is no audio (DTMF) and goes out unchanged.
  std::vector<std::vector<std::uint8_t>> alt;
};

std::int64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// "a;b;c" -> {"a", "b", "c"}
std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  std::size_t p = 0;
  while (p < v.size()) {
    auto semi = v.find(';', p);
    out.push_back(v.substr(p, semi == std::string::npos ? std::string::npos : semi - p));
    p = semi == std::string::npos ? v.size() : semi + 1;
  }
  return out;
}

bool parse_stream(const std::string& text, StreamSpec* s) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    std::string kv = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() + 1 : comma + 1;
    auto eq = kv.find('=');
    if (eq == std::string::npos) return false;
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "to") {
      auto c = v.rfind(':');
      if (c == std::string::npos) return false;
      s->host = v.substr(0, c);
      s->port = std::stoi(v.substr(c + 1));
    } else if (k == "codec") s->codec = v;
    else if (k == "pt") s->pt = std::stoi(v);
    else if (k == "tone") s->tone = std::stod(v);
    else if (k == "amplitude") s->amplitude = std::stod(v);
    else if (k == "ptime") s->ptime = std::stoi(v);
    else if (k == "loss") s->loss = std::stod(v);
    else if (k == "reorder") s->reorder = std::stod(v);
    else if (k == "dup") s->dup = std::stod(v);
    else if (k == "ssrc") s->ssrc = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "ssrc_change_at") s->ssrc_change_at = std::stoi(v);
    else if (k == "start") s->start_ms = std::stoi(v);
    else if (k == "seed") s->seed = static_cast<unsigned>(std::stoul(v));
    else if (k == "dtmf") {
      auto at = v.find('@');
      if (at != 1) return false;
      s->dtmf = v[0];
      s->dtmf_at = std::stoi(v.substr(2));
    } else if (k == "switch") {
      for (const auto& r : split_list(v)) {
        auto at = r.find('@');
        if (at == std::string::npos) return false;
        std::string when = r.substr(at + 1), what = r.substr(0, at);
        Switch sw;
        sw.at_ms = when == "signal" ? -1 : std::stoi(when);
        auto slash = what.find('/');
        if (slash == std::string::npos) return false;
        sw.codec = what.substr(0, slash);
        std::string rest = what.substr(slash + 1);
        auto slash2 = rest.find('/');
        sw.tone = std::stod(rest.substr(0, slash2));
        if (slash2 != std::string::npos) sw.pt = std::stoi(rest.substr(slash2 + 1));
        s->switches.push_back(sw);
      }
    } else if (k == "pause") {
      for (const auto& r : split_list(v)) {
        auto dash = r.find('-');
        if (dash == std::string::npos) return false;
        s->pauses.push_back({std::stoi(r.substr(0, dash)), std::stoi(r.substr(dash + 1))});
      }
    } else {
      return false;
    }
  }
  return s->port > 0;
}

void put_header(std::vector<std::uint8_t>& b, bool marker, int pt, std::uint16_t seq,
                std::uint32_t ts, std::uint32_t ssrc) {
  b = {0x80, static_cast<std::uint8_t>((marker ? 0x80 : 0) | (pt & 0x7f)),
       static_cast<std::uint8_t>(seq >> 8), static_cast<std::uint8_t>(seq),
       static_cast<std::uint8_t>(ts >> 24), static_cast<std::uint8_t>(ts >> 16),
       static_cast<std::uint8_t>(ts >> 8), static_cast<std::uint8_t>(ts),
       static_cast<std::uint8_t>(ssrc >> 24), static_cast<std::uint8_t>(ssrc >> 16),
       static_cast<std::uint8_t>(ssrc >> 8), static_cast<std::uint8_t>(ssrc)};
}

int dtmf_code(char d) {
  if (d >= '0' && d <= '9') return d - '0';
  if (d == '*') return 10;
  if (d == '#') return 11;
  if (d >= 'A' && d <= 'D') return 12 + (d - 'A');
  return 0;
}

// Builds every packet of one stream with its due time (µs after start).
bool build(const StreamSpec& s, int duration_ms, std::vector<Packet>* out, std::string* err) {
  auto info = sgw::media::codec_from_sdp(s.codec, s.codec == "opus" || s.codec == "OPUS" ? 48000 : 8000);
  if (!info) {
    *err = "unknown codec " + s.codec;
    return false;
  }
  auto enc = sgw::media::make_encoder(info->id);
  if (!enc) {
    *err = enc.error().message;
    return false;
  }
  int pt = s.pt;
  if (pt < 0) {
    switch (info->id) {
      case CodecId::kPcmu: pt = 0; break;
      case CodecId::kPcma: pt = 8; break;
      case CodecId::kG722: pt = 9; break;
      case CodecId::kG729: pt = 18; break;
      case CodecId::kOpus: pt = 111; break;
    }
  }
  std::mt19937 rng(s.seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::uint32_t ssrc = s.ssrc ? s.ssrc : static_cast<std::uint32_t>(rng());
  std::uint16_t seq = static_cast<std::uint16_t>(rng());
  std::uint32_t ts = static_cast<std::uint32_t>(rng());
  std::size_t frame = enc->get()->frame_samples(static_cast<std::uint32_t>(s.ptime));
  std::uint32_t ticks = static_cast<std::uint32_t>(sgw::media::samples_to_rtp_ticks(*info, frame));
  std::vector<std::int16_t> pcm(frame);
  std::vector<std::uint8_t> payload(sgw::media::Encoder::kMaxPayloadBytes);
  double phase = 0, step = 2 * M_PI * s.tone / info->native_rate;
  // The codecs of the switches, each with its own tone generator.
  struct Variant {
    std::unique_ptr<sgw::media::Encoder> enc;
    int pt = 0;
    double phase = 0, step = 0;
    std::vector<std::int16_t> pcm;
  };
  std::vector<Variant> variants;
  for (const auto& sw : s.switches) {
    auto vi = sgw::media::codec_from_sdp(sw.codec, sw.codec == "opus" || sw.codec == "OPUS" ? 48000 : 8000);
    if (!vi || vi->rtp_clock != info->rtp_clock) {
      *err = "switch codec " + sw.codec + " unknown or not at the stream's RTP clock";
      return false;
    }
    auto venc = sgw::media::make_encoder(vi->id);
    if (!venc) {
      *err = venc.error().message;
      return false;
    }
    Variant v;
    v.enc = std::move(venc).value();
    v.pt = sw.pt >= 0 ? sw.pt
                      : (vi->id == CodecId::kPcmu ? 0 : vi->id == CodecId::kPcma ? 8 : vi->id == CodecId::kG722 ? 9 : 18);
    v.step = 2 * M_PI * sw.tone / vi->native_rate;
    v.pcm.resize(v.enc->frame_samples(static_cast<std::uint32_t>(s.ptime)));
    variants.push_back(std::move(v));
  }
  bool first = true;
  bool changed = false;
  int n = duration_ms / s.ptime;
  for (int i = 0; i < n; ++i) {
    int t_ms = i * s.ptime;
    for (auto& v : pcm) {
      v = static_cast<std::int16_t>(std::lround(s.amplitude * 32767 * std::sin(phase)));
      phase += step;
    }
    auto r = enc->get()->encode(pcm, payload);
    if (!r) {
      *err = r.error().message;
      return false;
    }
    bool paused = false;
    for (const auto& p : s.pauses) paused |= t_ms >= p.from_ms && t_ms < p.to_ms;
    if (s.ssrc_change_at >= 0 && !changed && t_ms >= s.ssrc_change_at) {
      changed = true;
      ssrc = ssrc * 2654435761u + 1;  // a different SSRC, new random-ish seq and ts
      seq = static_cast<std::uint16_t>(rng());
      ts = static_cast<std::uint32_t>(rng());
      first = true;
    }
    bool in_dtmf = s.dtmf_at >= 0 && t_ms >= s.dtmf_at && t_ms < s.dtmf_at + 200;
    if (t_ms >= s.start_ms && !paused) {
      Packet p;
      p.due_us = static_cast<std::int64_t>(t_ms) * 1000;
      if (in_dtmf) {
        // RFC 4733 §2.3: event, E|R|volume, duration since the event's start
        // (timestamp = the event's start); the last packet carries E, sent 3 times.
        std::uint32_t ev_ts = ts - static_cast<std::uint32_t>((t_ms - s.dtmf_at) / s.ptime) * ticks;
        std::uint16_t dur = static_cast<std::uint16_t>((t_ms - s.dtmf_at + s.ptime) / s.ptime * ticks);
        bool end = t_ms + s.ptime >= s.dtmf_at + 200;
        put_header(p.bytes, t_ms == s.dtmf_at, 101, seq, ev_ts, ssrc);
        p.bytes.insert(p.bytes.end(), {static_cast<std::uint8_t>(dtmf_code(s.dtmf)),
                                       static_cast<std::uint8_t>((end ? 0x80 : 0) | 10),
                                       static_cast<std::uint8_t>(dur >> 8), static_cast<std::uint8_t>(dur)});
        int copies = end ? 3 : 1;
        for (int c = 0; c < copies; ++c) {
          if (c > 0) {
            ++seq;
            p.bytes[2] = static_cast<std::uint8_t>(seq >> 8);
            p.bytes[3] = static_cast<std::uint8_t>(seq);
          }
          out->push_back(p);
        }
      } else if (u(rng) >= s.loss) {
        put_header(p.bytes, first, pt, seq, ts, ssrc);
        p.bytes.insert(p.bytes.end(), payload.begin(), payload.begin() + static_cast<long>(*r));
        for (auto& v : variants) {
          for (auto& x : v.pcm) {
            x = static_cast<std::int16_t>(std::lround(s.amplitude * 32767 * std::sin(v.phase)));
            v.phase += v.step;
          }
          auto vr = v.enc->encode(v.pcm, payload);
          if (!vr) {
            *err = vr.error().message;
            return false;
          }
          std::vector<std::uint8_t> b;
          put_header(b, first, v.pt, seq, ts, ssrc);
          b.insert(b.end(), payload.begin(), payload.begin() + static_cast<long>(*vr));
          p.alt.push_back(std::move(b));
        }
        out->push_back(p);
        if (u(rng) < s.dup) out->push_back(out->back());
        // Reorder: this packet leaves 1-2 frames late, behind its successor.
        if (u(rng) < s.reorder) out->back().due_us += s.ptime * 1000 + s.ptime * 500;
      }
      first = false;
    }
    ++seq;
    ts += ticks;
  }
  std::stable_sort(out->begin(), out->end(),
                   [](const Packet& a, const Packet& b) { return a.due_us < b.due_us; });
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<StreamSpec> specs;
  int duration_ms = 3000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--stream" && i + 1 < argc) {
      StreamSpec s;
      if (!parse_stream(argv[++i], &s)) {
        std::fprintf(stderr, "sgw-rtp-send: bad --stream %s\n", argv[i]);
        return 2;
      }
      specs.push_back(s);
    } else if (a == "--duration-ms" && i + 1 < argc) {
      duration_ms = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: sgw-rtp-send --stream to=ADDR:PORT,codec=NAME,... [--duration-ms N]\n");
      return 2;
    }
  }
  if (specs.empty() || duration_ms <= 0 || duration_ms > 4 * 3600 * 1000) {
    std::fprintf(stderr, "sgw-rtp-send: need at least one --stream and a sane --duration-ms\n");
    return 2;
  }
  struct Out {
    int fd;
    sockaddr_storage to;
    socklen_t len;
    std::vector<Packet> packets;
    std::size_t next = 0;
    std::vector<Switch> switches;
    std::size_t active = 0;  // switches made so far
  };
  std::vector<Out> outs;
  for (const auto& s : specs) {
    Out o{};
    std::string err;
    if (!build(s, duration_ms, &o.packets, &err)) {
      std::fprintf(stderr, "sgw-rtp-send: %s\n", err.c_str());
      return 1;
    }
    auto* v4 = reinterpret_cast<sockaddr_in*>(&o.to);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&o.to);
    if (inet_pton(AF_INET, s.host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<std::uint16_t>(s.port));
      o.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, s.host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<std::uint16_t>(s.port));
      o.len = sizeof(sockaddr_in6);
    } else {
      std::fprintf(stderr, "sgw-rtp-send: bad address %s\n", s.host.c_str());
      return 2;
    }
    o.fd = socket(o.to.ss_family, SOCK_DGRAM, 0);
    o.switches = s.switches;
    outs.push_back(std::move(o));
  }
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, nullptr);
  std::int64_t t0 = now_us();
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  const double t0_unix_ms = static_cast<double>(wall.tv_sec) * 1e3 + static_cast<double>(wall.tv_nsec) / 1e6;
  while (true) {
    std::int64_t next_due = -1;
    for (std::size_t i = 0; i < outs.size(); ++i) {
      auto& o = outs[i];
      while (o.next < o.packets.size() && o.packets[o.next].due_us <= now_us() - t0) {
        const auto& p = o.packets[o.next++];
        if (o.active < o.switches.size() && !p.alt.empty()) {
          const Switch& sw = o.switches[o.active];
          if (sw.at_ms >= 0 ? p.due_us >= std::int64_t{sw.at_ms} * 1000 : g_signalled != 0) {
            if (sw.at_ms < 0) g_signalled = 0;
            std::printf("{\"stream\":%zu,\"switch\":%zu,\"at_ms\":%lld}\n", i, o.active,
                        static_cast<long long>(p.due_us / 1000));
            std::fflush(stdout);
            ++o.active;
          }
        }
        const auto& bytes = o.active > 0 && !p.alt.empty() ? p.alt[o.active - 1] : p.bytes;
        sendto(o.fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&o.to), o.len);
      }
      if (o.next < o.packets.size() && (next_due < 0 || o.packets[o.next].due_us < next_due))
        next_due = o.packets[o.next].due_us;
    }
    if (next_due < 0) break;
    std::int64_t wait = next_due - (now_us() - t0);
    if (wait > 0) usleep(static_cast<useconds_t>(wait));  // SIGUSR1 cuts it short: fine
  }
  for (std::size_t i = 0; i < outs.size(); ++i) {
    std::printf("{\"stream\":%zu,\"packets\":%zu,\"t0_unix_ms\":%.3f}\n", i, outs[i].packets.size(),
                t0_unix_ms);
    close(outs[i].fd);
  }
  return 0;
}
