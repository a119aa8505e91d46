// TlsViaRewriter: frames the SIP byte stream of one TLS connection that the
// TlsFrontend relays to sofia's TCP backend, and rewrites the transport of
// the top Via so that sofia accepts it. nta drops a request whose top Via
// transport differs from the transport it arrived on ("SIP/2.0/TLS" over its
// TCP backend, RFC 3261 §18.2.1), so:
// - peer -> sofia, requests: top Via "SIP/2.0/TLS" becomes "SIP/2.0/TCP";
// - sofia -> peer, responses: top Via "SIP/2.0/TCP" becomes "SIP/2.0/TLS" again
//   (the peer's own Via, as the peer sent it).
// The two tokens have the same length, so nothing else changes. Messages are
// framed by the blank line and Content-Length (compact form l: too); CRLF
// keep-alives (RFC 5626 §3.5.1) pass through. A header block longer than
// kMaxHeaderBytes without its blank line cannot be framed: from then on the
// connection's bytes pass through unchanged (sofia rejects them itself).
//
// Thread: owned by one connection of the frontend thread. Never throws on input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sgw::sip::detail {

class TlsViaRewriter {
 public:
  static constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
  enum class Direction { kToSofia, kToPeer };
  explicit TlsViaRewriter(Direction d) : direction_(d) {}

  // Appends bytes received; appends to `out` what can be forwarded now.
  void feed(std::string_view data, std::string& out);
  // Bytes held back (an incomplete message).
  std::size_t pending() const { return buffer_.size(); }

 private:
  void rewrite_top_via(std::string& headers) const;
  Direction direction_;
  bool passthrough_ = false;
  std::string buffer_;
};

}  // namespace sgw::sip::detail
