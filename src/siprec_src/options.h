// siprec-src command line (docs/siprec-src.md). Parsed and validated once at start-up;
// errors name the flag.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "media/codec.h"
#include "media/srtp_session.h"
#include "siprec_src/metadata_template.h"
#include "siprec_src/timeline.h"

namespace sgw::siprec_src {

struct Options {
  std::string target;                    // SIP URI: sip:HOST[:PORT][;transport=udp|tcp]
  std::string transport;                 // --transport: overrides/sets ;transport=
  std::vector<std::string> dns_servers;  // --dns-server ADDR:PORT (repeatable)
  int dns_timeout_ms = 2000;
  std::string bind = "127.0.0.1";  // local address for SIP and RTP
  // SIP over TLS (sips: targets, --transport tls, _sips._tcp SRV)
  std::string tls_ca;    // --tls-ca: CA file that verifies the recorder's certificate
  std::string tls_cert;  // --tls-cert/--tls-key: our client certificate (mutual TLS)
  std::string tls_key;

  std::uint64_t calls = 1;
  double rate = 10;              // calls per second
  std::size_t concurrency = 100; // calls at once
  double duration_s = 5;         // each call, from the 200 OK to the BYE
  std::uint32_t duration_ms = 5000;

  std::string codec_name = "PCMA";
  std::string srtp_name;  // --srtp SUITE: RTP/SAVP with SDES keys (docs/siprec-src.md); "" = RTP/AVP
  std::optional<media::SrtpSuite> srtp;
  media::CodecId codec = media::CodecId::kPcma;
  std::uint32_t early_media_ms = 0;
  bool delayed_offer = false;  // INVITE without SDP; our SDP goes in the ACK as the answer
  std::string dialect_name = "rfc7865";
  Dialect dialect = Dialect::kRfc7865;
  bool no_require = false;  // --no-require: send Supported: siprec only

  double tone_caller = 440;
  double tone_agent = 1000;
  std::string wav_caller;  // --wav: audio for the caller leg (and the agent leg unless --wav-agent)
  std::string wav_agent;

  double loss = 0, reorder = 0, dup = 0;
  std::uint32_t jitter_ms = 0;
  std::uint64_t seed = 1;
  std::size_t sender_threads = 1;  // --sender-threads: RTP sender threads (RtpSender lanes)

  std::string timeline_text;
  std::vector<TimelineAction> timeline;
  bool reestablish = false;
  std::uint32_t keepalive_ms = 0;       // 0: none (1000 by default with --reestablish)
  std::uint32_t invite_timeout_ms = 4000;  // no response at all from a target: try the next

  std::vector<std::string> verify_dirs;  // --verify, repeatable: one recordings folder per gateway
  double verify_timeout_s = 10;
  std::string json_file;
  double max_wall_s = 0;  // hard limit for the whole run; 0 = computed
  std::string log_level = "warn";
  bool quiet = false;  // no per-call lines
  std::string rtp_only;  // --rtp-only HOST:BASEPORT: RTP without SIP (benchmark floor); no TARGET
  std::string rtp_only_ports;  // --rtp-only-ports FILE: destination ports (two per place) instead of BASEPORT + 2k

  bool exit_now = false;  // --help / --version handled
  int exit_code = 0;
};

// Parses and validates argv. On --help the usage is printed and exit_now is set.
common::Result<Options> parse_options(int argc, char** argv);

}  // namespace sgw::siprec_src
