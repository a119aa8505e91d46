// ClientEndpoint: the UAC side of sofia-sip NTA, for siprec-src (our SIPREC
// client). Like Endpoint, this is the only place the client touches sofia.
//
// Threading: one thread runs run(); every callback happens there. Other
// threads only call post() and stop(). Handles are plain numbers; a stale
// handle is a no-op.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "sip/endpoint.h"
#include "sip/sip_message.h"

namespace sgw::sip {

using CallHandle = std::uint64_t;

struct ClientOptions {
  std::string bind_address = "127.0.0.1";  // local address for UDP and TCP
  std::uint16_t bind_port = 0;             // 0: any free port
  std::string contact_user = "src";        // Contact: <sip:src@ADDR:PORT;transport=..>;+sip.src
  std::string user_agent = "siprec-src";
  // Non-INVITE and INVITE transaction timeout (RFC 3261 timers B/F = 64*T1);
  // 0 keeps sofia's 32 s. siprec-src lowers it to fail over sooner.
  std::uint32_t transaction_timeout_ms = 0;
  // Largest message accepted. sofia applies it to one read from a TCP stream,
  // which can hold many pipelined responses under load: keep it generous.
  std::size_t max_message_bytes = 4 * 1024 * 1024;
  // SIP over TLS (targets with transport "tls"; sofia's TLS transport):
  // tls_ca_file verifies the server's certificate chain (empty: not verified);
  // tls_cert_file + tls_key_file are our client certificate for mutual TLS.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Where a request goes: one resolved transport/address/port.
struct Target {
  std::string transport;  // "udp" | "tcp" | "tls"
  std::string host;       // IP literal (IPv6 without brackets)
  std::uint16_t port = 5060;
  std::string to_string() const;  // "udp:127.0.0.1:5060"
};

struct OutgoingRequest {
  std::string request_uri;   // e.g. "sip:srs@127.0.0.1:5060;transport=tcp"
  std::string from;          // name-addr; a tag is added when missing
  std::string to;            // name-addr
  std::string call_id;       // empty: a unique one is generated
  HeaderList headers;        // extra headers (Require, Supported, X-..., Session-Expires, ...)
  std::string content_type;  // empty: no body
  std::string body;
  // Early media (RFC 7866 §8.1.1 allows RTP before the ACK): the ACK for the
  // initial 2xx leaves this many ms after the 2xx arrived; 0 = at once.
  std::uint32_t ack_delay_ms = 0;
  // Delayed offer (an INVITE without SDP, RFC 3261 §13.2.1): the answer the
  // ACK for the initial 2xx carries. Empty ack_content_type: an ACK without a body.
  std::string ack_content_type;
  std::string ack_body;
};

struct ClientResponse {
  int status = 0;            // 408 for a timeout, 503 for a transport error (no response)
  std::string reason;
  HeaderList headers;
  std::string content_type;
  std::string body;
  bool local = false;        // true: generated locally (timeout, transport error), nothing on the wire
  std::string header(std::string_view name) const;
};

class ClientListener {
 public:
  virtual ~ClientListener() = default;
  // A response to a request sent in call `call` (provisional ones too).
  // `method` is the request's method ("INVITE", "BYE", "UPDATE", "OPTIONS").
  virtual void on_response(CallHandle call, const std::string& method, const ClientResponse& r) = 0;
  // A request from the server inside the call's dialog (BYE, OPTIONS, re-INVITE...).
  // The listener must answer it with ClientEndpoint::reply.
  virtual void on_request(CallHandle call, TransactionId tx, const Request& request) = 0;
};

class ClientEndpoint {
 public:
  virtual ~ClientEndpoint() = default;
  static common::Result<std::unique_ptr<ClientEndpoint>> create(const ClientOptions& options,
                                                                ClientListener* listener);

  // Starts an INVITE transaction to target. A 2xx establishes the dialog and
  // is ACKed automatically (RFC 3261 §13.2.2.4), retransmitted 2xx too;
  // non-2xx finals end the call. Failures before the wire (bad From/To,
  // unsupported transport) arrive as a local on_response from the loop,
  // never from inside this call.
  virtual CallHandle invite(const Target& target, const OutgoingRequest& request) = 0;
  // In-dialog requests (after a 2xx). Returns false if the call has no dialog,
  // after bye(), or (reinvite) while another INVITE of ours is pending.
  virtual bool reinvite(CallHandle call, const HeaderList& headers, const std::string& content_type,
                        const std::string& body) = 0;
  virtual bool update(CallHandle call, const HeaderList& headers, const std::string& content_type,
                      const std::string& body) = 0;
  virtual bool options_in_dialog(CallHandle call) = 0;
  virtual bool bye(CallHandle call) = 0;
  // CANCEL for an INVITE still without a final response. Before any
  // provisional response the CANCEL is held back (RFC 3261 §9.1) and sent when
  // one arrives. The INVITE then ends with 487 (or 408/2xx, which is ACKed).
  virtual bool cancel(CallHandle call) = 0;
  // Out-of-dialog OPTIONS (keepalive/probe); the response arrives with call =
  // returned handle, which is forgotten after the final response (no release needed).
  virtual CallHandle options(const Target& target, const std::string& request_uri) = 0;
  // Answers a request delivered by on_request.
  virtual void reply(TransactionId tx, const Response& response) = 0;
  // Forgets a call (after its BYE or a failure). No more callbacks for it; a
  // 2xx that still arrives for a released INVITE is ACKed and BYEd by sofia.
  virtual void release(CallHandle call) = 0;

  virtual void run() = 0;
  virtual void stop() = 0;                          // thread-safe
  virtual bool post(std::function<void()> fn) = 0;  // thread-safe
  // SIP thread: runs fn once after delay_ms (0 means the next loop turn).
  virtual void after(std::uint32_t delay_ms, std::function<void()> fn) = 0;

  // Where the client's transports are bound, "udp:127.0.0.1:5080" style.
  virtual std::vector<std::string> bound_addresses() const = 0;
  // The Call-ID of a call ("" for an unknown handle).
  virtual std::string call_id(CallHandle call) const = 0;
};

}  // namespace sgw::sip
