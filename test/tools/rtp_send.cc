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
// 200 ms) start=MS (first packet delay) seed=N.
// Exit 0 after sending; prints a JSON line per stream with packets sent and t0_unix_ms, the
// wall-clock time (ms since the epoch, fractional) at which packet 0 of every stream was due:
// where a recorder's timeline must put the audio, however late this process ran.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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
};

struct Packet {
  std::int64_t due_us;
  std::vector<std::uint8_t> bytes;
};

std::int64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
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
    } else if (k == "pause") {
      std::size_t p = 0;
      while (p < v.size()) {
        auto semi = v.find(';', p);
        std::string r = v.substr(p, semi == std::string::npos ? std::string::npos : semi - p);
        p = semi == std::string::npos ? v.size() : semi + 1;
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
    outs.push_back(std::move(o));
  }
  std::int64_t t0 = now_us();
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  const double t0_unix_ms = static_cast<double>(wall.tv_sec) * 1e3 + static_cast<double>(wall.tv_nsec) / 1e6;
  while (true) {
    std::int64_t next_due = -1;
    for (auto& o : outs) {
      while (o.next < o.packets.size() && o.packets[o.next].due_us <= now_us() - t0) {
        const auto& p = o.packets[o.next++];
        sendto(o.fd, p.bytes.data(), p.bytes.size(), 0, reinterpret_cast<sockaddr*>(&o.to), o.len);
      }
      if (o.next < o.packets.size() && (next_due < 0 || o.packets[o.next].due_us < next_due))
        next_due = o.packets[o.next].due_us;
    }
    if (next_due < 0) break;
    std::int64_t wait = next_due - (now_us() - t0);
    if (wait > 0) usleep(static_cast<useconds_t>(wait));
  }
  for (std::size_t i = 0; i < outs.size(); ++i) {
    std::printf("{\"stream\":%zu,\"packets\":%zu,\"t0_unix_ms\":%.3f}\n", i, outs[i].packets.size(),
                t0_unix_ms);
    close(outs[i].fd);
  }
  return 0;
}
