#include "siprec_src/options.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <iostream>

#include "siprec_src/audio_source.h"

namespace sgw::siprec_src {

common::Result<Options> parse_options(int argc, char** argv) {
  Options o;
  CLI::App app{"siprec-src: a SIPREC client (Session Recording Client) for trying, testing and "
               "load-testing a recording server. See docs/siprec-src.md."};
  app.add_option("target", o.target, "SIP URI of the recorder, e.g. sip:127.0.0.1:5060;transport=tcp "
                                     "or sip:recorder.example.com (DNS SRV); several, comma-separated, are tried in order");
  app.add_option("--transport", o.transport, "udp, tcp or tls (sets ;transport= on the target)")
      ->check(CLI::IsMember({"udp", "tcp", "tls"}));
  app.add_option("--tls-ca", o.tls_ca, "CA file (PEM) that verifies the recorder's TLS certificate");
  app.add_option("--tls-cert", o.tls_cert, "client certificate (PEM) for mutual TLS (with --tls-key)");
  app.add_option("--tls-key", o.tls_key, "private key (PEM) of --tls-cert");
  app.add_option("--dns-server", o.dns_servers, "DNS server ADDR:PORT for SRV/A lookups (repeatable)");
  app.add_option("--dns-timeout-ms", o.dns_timeout_ms, "DNS query timeout")->check(CLI::Range(1, 60000));
  app.add_option("--bind", o.bind, "local IP address for SIP and RTP");
  app.add_option("--calls", o.calls, "calls to place in total")->check(CLI::Range(1, 10000000));
  app.add_option("--rate", o.rate, "new calls per second")->check(CLI::Range(0.001, 100000.0));
  app.add_option("--concurrency", o.concurrency, "calls at once, at most")->check(CLI::Range(1, 100000));
  app.add_option("--duration", o.duration_s, "seconds from each call's 200 OK to its BYE")
      ->check(CLI::Range(0.01, 86400.0));  // 10 ms: one packet per stream (bench/run signalling mode)
  app.add_option("--codec", o.codec_name, "PCMU, PCMA, G722, G729 or opus");
  app.add_option("--srtp", o.srtp_name,
                 "offer RTP/SAVP with an a=crypto line (SDES) and encrypt RTP with this suite: "
                 "AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80, "
                 "AES_256_CM_HMAC_SHA1_32, AEAD_AES_128_GCM, AEAD_AES_256_GCM");
  app.add_option("--early-media", o.early_media_ms,
                 "send RTP for MS ms after the 200 OK before the ACK")
      ->check(CLI::Range(0, 60000));
  app.add_flag("--delayed-offer", o.delayed_offer,
               "INVITE without SDP (metadata only): the recorder offers in its 200 OK, our answer goes in the ACK");
  app.add_option("--dialect", o.dialect_name,
                 "metadata dialect: rfc7865 (Genesys), acme, audiocodes, broadworks (webex), legacy, ribbon, avaya, cisco");
  app.add_flag("--no-require", o.no_require, "do not send Require: siprec (Supported only)");
  app.add_option("--tone-caller", o.tone_caller, "caller leg tone, Hz")->check(CLI::Range(50.0, 7000.0));
  app.add_option("--tone-agent", o.tone_agent, "agent leg tone, Hz")->check(CLI::Range(50.0, 7000.0));
  app.add_option("--wav", o.wav_caller, "sound file for the caller leg (and the agent leg unless --wav-agent)");
  app.add_option("--wav-agent", o.wav_agent, "sound file for the agent leg");
  app.add_option("--loss", o.loss, "probability a packet is not sent")->check(CLI::Range(0.0, 1.0));
  app.add_option("--reorder", o.reorder, "probability a packet is sent after its successor")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--dup", o.dup, "probability a packet is sent twice")->check(CLI::Range(0.0, 1.0));
  app.add_option("--jitter-ms", o.jitter_ms, "uniform extra delay 0..N ms per packet")
      ->check(CLI::Range(0, 200));
  app.add_option("--sender-threads", o.sender_threads,
                 "RTP sender threads (streams spread over them; one thread tops out near 175k packets/s)")
      ->check(CLI::Range(1, 64));
  app.add_option("--seed", o.seed, "seed for loss/reorder/dup/jitter and target choice");
  app.add_option("--timeline", o.timeline_text,
                 "mid-call actions, e.g. pause@2s,resume@4s,metadata-update@5s,transfer@6s,"
                 "ssrc-change@7s,hold@8s,unhold@9s");
  app.add_flag("--reestablish", o.reestablish,
               "re-establish a recording on the next target when its gateway stops answering");
  app.add_option("--keepalive-ms", o.keepalive_ms, "in-dialog OPTIONS interval (0: off)")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--invite-timeout-ms", o.invite_timeout_ms,
                 "no response at all from a target within this: try the next")
      ->check(CLI::Range(100, 64000));
  // Each --verify takes one folder (repeatable: the recordings of every gateway behind a load
  // balancer); allow_extra_args(false) keeps `--verify DIR TARGET` from eating the target.
  app.add_option("--verify", o.verify_dirs,
                 "recordings directory to verify each call against (repeatable: several gateways)")
      ->allow_extra_args(false);
  app.add_option("--verify-timeout", o.verify_timeout_s, "seconds to wait for recordings to appear")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--json", o.json_file, "write the summary and per-call records as JSON");
  app.add_option("--max-wall", o.max_wall_s, "hard limit for the whole run, seconds (0: computed)")
      ->check(CLI::Range(0.0, 864000.0));
  app.add_option("--log-level", o.log_level, "trace debug info warn error off");
  app.add_flag("--quiet,-q", o.quiet, "no per-call lines");
  app.add_option("--rtp-only", o.rtp_only,
                 "send the calls' RTP without SIP to HOST:BASEPORT, BASEPORT+2, ... (benchmark floor; "
                 "no TARGET)");
  app.add_option("--rtp-only-ports", o.rtp_only_ports,
                 "with --rtp-only: a file of destination ports, two per call place (leg 1, leg 2), used "
                 "instead of BASEPORT + 2k (a peer's allocated ports: bench/run --peer)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    o.exit_now = true;
    return o;
  } catch (const CLI::ParseError& e) {
    return common::make_error("cli.usage", e.what());
  }
  if (o.target.empty() && o.rtp_only.empty()) return common::make_error("cli.usage", "target is required");
  if (!o.rtp_only_ports.empty() && o.rtp_only.empty())
    return common::make_error("cli.usage", "--rtp-only-ports needs --rtp-only");
  if (!o.target.empty() && !o.rtp_only.empty())
    return common::make_error("cli.usage", "--rtp-only takes no TARGET");
  o.duration_ms = static_cast<std::uint32_t>(std::llround(o.duration_s * 1000));
  auto codec = parse_codec(o.codec_name);
  if (!codec) return common::make_error("cli.usage", "--codec: " + codec.error().message);
  o.codec = *codec;
  if (!o.srtp_name.empty()) {
    o.srtp = media::srtp_suite_from_name(o.srtp_name);
    if (!o.srtp) return common::make_error("cli.usage", "--srtp: unknown crypto suite '" + o.srtp_name + "'");
    if (!o.rtp_only.empty()) return common::make_error("cli.usage", "--srtp needs SIP (not with --rtp-only)");
  }
  auto d = parse_dialect(o.dialect_name);
  if (!d) return common::make_error("cli.usage", "--dialect: " + d.error().message);
  o.dialect = *d;
  auto tl = parse_timeline(o.timeline_text, o.duration_ms);
  if (!tl) return common::make_error("cli.usage", "--timeline: " + tl.error().message);
  o.timeline = std::move(tl).value();
  if (o.tls_cert.empty() != o.tls_key.empty())
    return common::make_error("cli.usage", "--tls-cert and --tls-key go together");
  if (o.tone_caller == o.tone_agent)
    return common::make_error("cli.usage", "--tone-caller and --tone-agent must differ");
  if (o.reestablish && o.keepalive_ms == 0) o.keepalive_ms = 1000;
  if (o.early_media_ms >= o.duration_ms)
    return common::make_error("cli.usage", "--early-media must be shorter than --duration");
  for (std::size_t pos = 0; pos < o.target.size();) {
    std::size_t comma = o.target.find(',', pos);
    if (comma == std::string::npos) comma = o.target.size();
    std::string one = o.target.substr(pos, comma - pos);
    pos = comma + 1;
    if (one.rfind("sip:", 0) != 0 && one.rfind("sips:", 0) != 0)
      return common::make_error("cli.usage", "target: expected a SIP URI (sip:HOST[:PORT]), got '" +
                                                 one + "'");
  }
  return o;
}

}  // namespace sgw::siprec_src
