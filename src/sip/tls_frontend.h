// TlsFrontend: SIP over TLS (RFC 3261 §26.2, RFC 5630) terminated with
// OpenSSL in front of sofia-sip. It accepts TLS connections on the `tls:`
// listen addresses, does the handshake (certificate chain, TLS 1.2 floor,
// ciphers, client-certificate verification, allowed subjects), and relays the
// plaintext over one loopback TCP connection per TLS connection to a private
// sofia TCP listener (the "backend"). Why not sofia's own TLS transport: see
// docs/security.md, section "TLS" (no version floor, leaf certificate only, no
// reload, no per-connection failure hook, a known per-connection leak).
//
// The SIP thread recognises a request that came this way by its connection's
// local port on the backend side and asks peer() for the real peer, the TLS
// listen address and whether the client certificate's subject is allowed.
//
// Threads: the frontend runs its own thread (epoll; start() to stop()).
// reload() and peer() are thread-safe. Counters are not owned.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "sip/source_policy.h"

namespace sgw::sip {

struct TlsSettings {
  std::string cert_file;  // PEM: our certificate, then its intermediates (chain)
  std::string key_file;   // PEM private key of the first certificate
  std::string ca_file;    // PEM CAs that client certificates must chain to (mTLS)
  bool verify_client = false;  // require a client certificate that verifies against ca_file
  // Shell-style patterns (fnmatch, case-insensitive) matched against the
  // client certificate's subject CN and each DNS/URI subjectAltName; empty:
  // any verified certificate. A peer outside them gets 403 on every request.
  std::vector<std::string> allowed_subjects;
  std::string ciphers;             // TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default
  std::string min_version = "1.2";  // "1.2" or "1.3"; the highest both sides have is used
  std::uint32_t handshake_timeout_ms = 10000;  // no finished handshake by then: closed, counted
  // sip.allowed_sources: a connection from an address outside it is closed
  // right after accept, before any TLS byte is read (no handshake cost).
  SourceAllowList allowed_sources;
};

struct TlsListen {
  std::string address;  // IP literal, IPv6 without brackets
  std::uint16_t port = 5061;
};

// What the SIP layer learns about the TLS connection behind a backend connection.
struct TlsPeer {
  std::string peer;         // "ip:port" of the TLS client (IPv6 in brackets)
  std::string address;      // its IP address alone (no brackets), for per-source policy
  std::string listen_host;  // the TLS listen address the client connected to
  std::string listen_port;
  std::string subject;      // client certificate's CN (or first SAN), "" without one
  bool allowed = true;      // false: subject outside TlsSettings::allowed_subjects
};

struct TlsCounters {
  common::Counter* handshake_failures = nullptr;  // failed or timed-out handshakes
  common::Counter* accepted = nullptr;            // handshakes completed
  // connections closed at accept: source outside TlsSettings::allowed_sources
  // (sgw_limits_hit_total{cap="allowed_sources"})
  common::Counter* refused_sources = nullptr;
};

class TlsFrontend {
 public:
  virtual ~TlsFrontend() = default;

  // Loads the certificate and key (errors name the key and file), binds every
  // listen address (errors name it) and relays to 127.0.0.1:backend_port.
  static common::Result<std::unique_ptr<TlsFrontend>> create(const TlsSettings& settings,
                                                             const std::vector<TlsListen>& listen,
                                                             std::uint16_t backend_port,
                                                             TlsCounters counters);
  // Builds a TLS context from the settings' files as they are now. Used by
  // create() and reload(); exposed so start-up checks can name a bad file.
  static common::Status check_settings(const TlsSettings& settings);

  virtual void start() = 0;
  virtual void stop() = 0;  // closes every connection; idempotent
  // Re-reads cert_file, key_file and ca_file. New connections use the new
  // context; established ones keep theirs (calls are not dropped). On error
  // the old context stays and the error names the file.
  virtual common::Status reload() = 0;
  // The TLS connection relayed through the backend connection whose local
  // (frontend-side) port is `backend_peer_port`, if any.
  virtual std::optional<TlsPeer> peer(std::uint16_t backend_peer_port) const = 0;
  // "tls:127.0.0.1:5061" per listen address, in order (the real port if 0 was asked).
  virtual std::vector<std::string> bound_addresses() const = 0;
};

// True when `name` matches one of the shell-style patterns, case-insensitively.
bool subject_allowed(const std::vector<std::string>& patterns, const std::vector<std::string>& names);

}  // namespace sgw::sip
