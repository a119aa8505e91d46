// SIP target selection for siprec-src (RFC 3263 §4 without NAPTR, RFC 2782
// ordering), resolved with c-ares. See docs/sip-client.md for the rules.
//
// Synchronous and blocking for at most ResolverOptions::timeout_ms: call it at
// start-up or on failover, never on the SIP thread's hot path. Thread-safe
// (every call uses its own c-ares channel).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/result.h"
#include "sip/client_endpoint.h"

namespace sgw::sip {

struct ResolverOptions {
  // DNS servers as "IP" or "IP:PORT" ("[v6]:PORT"); empty: /etc/resolv.conf.
  // With explicit servers /etc/hosts is not consulted (hermetic tests).
  std::vector<std::string> servers;
  int timeout_ms = 5000;  // bound for the whole resolution, all queries included
  unsigned seed = 0;      // weighted SRV selection; 0: a random seed per call
  // URI without transport parameter: UDP SRV targets come first, then TCP
  // (prefer_tcp reverses that; SIPREC INVITEs are large, TCP suits them).
  bool prefer_tcp = false;
};

struct SrvRecord {
  std::string target;  // host name, no trailing dot
  std::uint16_t priority = 0;
  std::uint16_t weight = 0;
  std::uint16_t port = 0;
};

// The pieces of a SIP URI that target selection needs.
struct SipUriTarget {
  bool sips = false;
  std::string host;        // IPv6 without brackets
  std::uint16_t port = 0;  // 0: not given
  std::string transport;   // lower-case transport parameter, "" if absent
  bool host_is_ip = false;
};

// Parses "sip:[user@]host[:port][;params][?headers]" (also sips:, or no scheme).
common::Result<SipUriTarget> parse_sip_uri_target(const std::string& uri);

// RFC 2782 order: ascending priority; within one priority, repeated weighted
// random selection (weight-0 records first in the running sum, so they are
// picked rarely but not never).
std::vector<SrvRecord> order_srv_records(std::vector<SrvRecord> records, std::mt19937& rng);

// Resolves a SIP URI into an ordered list of targets to try, first is best.
// - host is an IP literal: that address, the URI's port (default 5060/5061),
//   transport parameter or udp (tls for sips:);
// - host name with explicit port: its A/AAAA addresses with that port;
// - otherwise SRV: transport=udp -> _sip._udp.HOST, transport=tcp ->
//   _sip._tcp.HOST, sips: -> _sips._tcp.HOST (transport "tls"), no transport
//   -> both _sip._udp and _sip._tcp (see prefer_tcp); each SRV target name is
//   resolved to its A/AAAA addresses in that order;
// - no SRV records at all (NXDOMAIN / no data): A/AAAA of HOST, port 5060.
// Errors name the URI and the DNS name and problem ("NXDOMAIN", timeout...).
common::Result<std::vector<Target>> resolve_targets(const std::string& sip_uri,
                                                    const ResolverOptions& options);

}  // namespace sgw::sip
