// Endpoint: the only seam between the gateway and sofia-sip's NTA layer.
//
// Threading: an Endpoint and everything it calls back run on ONE thread, the
// SIP thread that calls run(). Other threads may only call post() and stop().
// Handles (TransactionId, DialogId) are plain numbers that stay meaningful
// until the endpoint reports them gone; using a stale handle is a no-op.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "sip/sip_message.h"
#include "sip/tls_frontend.h"

namespace sgw::sip {

using TransactionId = std::uint64_t;
using DialogId = std::uint64_t;

struct ListenSpec {
  std::string transport;  // "udp", "tcp" or "tls" (served by a TlsFrontend)
  std::string address;    // IP literal, IPv6 without brackets
  std::uint16_t port = 5060;
};

struct EndpointOptions {
  std::vector<ListenSpec> listen;
  std::size_t max_message_bytes = 65535;
  // SO_RCVBUF asked for each UDP listener (the kernel caps it at
  // net.core.rmem_max). A burst of INVITEs while the SIP thread is busy must
  // wait in the socket, not be dropped into a 500 ms retransmission.
  std::size_t udp_receive_buffer_bytes = 4 * 1024 * 1024;
  // TCP: a connection that carries no transaction and no dialog of ours and
  // has been silent this long is closed (sofia TPTAG_IDLE); 0 = never. A
  // connection an established dialog came over is kept while the dialog lives.
  std::uint32_t tcp_idle_timeout_ms = 0;
  // TCP: a message begun but not complete this long after its first bytes is
  // dropped and the connection closed (sofia TPTAG_TIMEOUT); 0 = never.
  std::uint32_t tcp_message_timeout_ms = 0;
  // TCP: connections from one source address beyond this many are closed,
  // newest first (0 = unlimited). A connection that has sent nothing within
  // tcp_idle_timeout_ms of being accepted is closed too (sofia's idle timer
  // starts with the first message). Checked every second.
  std::uint32_t max_connections_per_source = 0;
  common::Counter* connections_closed = nullptr;  // by the two rules above; not owned
  // Counted once per request that could not be used (unparsable header the
  // request depends on); not owned, may be null.
  common::Counter* malformed_requests = nullptr;
  // SIP over TLS, for "tls" listen specs: terminated by a TlsFrontend that
  // relays to a private sofia TCP listener on 127.0.0.1 (docs/security.md "TLS").
  TlsSettings tls;
  TlsCounters tls_counters;
  common::Counter* tls_forbidden = nullptr;  // requests answered 403 (subject not allowed); not owned
};

// Callbacks from the endpoint, on the SIP thread.
class EndpointListener {
 public:
  virtual ~EndpointListener() = default;
  // A request outside any dialog (INVITE, OPTIONS, ...). Must be answered with
  // Endpoint::reply / accept_invite, now or later (on the SIP thread).
  virtual void on_request(TransactionId tx, const Request& request) = 0;
  // A request inside a dialog we accepted (re-INVITE, UPDATE, BYE, INFO, ...).
  virtual void on_dialog_request(DialogId dialog, TransactionId tx, const Request& request) = 0;
  // The ACK for our 2xx to the INVITE (initial or re-INVITE) arrived; `ack`
  // holds its headers and body (the answer when our 2xx carried an offer).
  virtual void on_ack(DialogId dialog, const Request& ack) = 0;
  // A request with an unparsable header that the endpoint answered itself
  // (400 "Bad <Header> Header"; status 0 for an ACK, which is dropped). It was
  // logged with its peer and counted in EndpointOptions::malformed_requests.
  virtual void on_malformed(const Request& /*request*/, int /*status*/) {}
  // A pending INVITE was cancelled; the endpoint already answered 487.
  virtual void on_cancelled(TransactionId tx) = 0;
  // A request we sent (BYE) got a final response or timed out (status 408).
  virtual void on_bye_result(DialogId dialog, int status) = 0;
  // Our 2xx to an INVITE (initial or re-INVITE) of this dialog was retransmitted
  // for 64*T1 (32 s) without an ACK: the transaction timed out (RFC 3261 §13.3.1.4
  // timer H). The dialog stays until released.
  virtual void on_ack_timeout(DialogId /*dialog*/) {}
  // A session refresh we sent (send_refresh) got a final response or timed
  // out (status 408).
  virtual void on_refresh_result(DialogId /*dialog*/, int /*status*/) {}
};

class Endpoint {
 public:
  virtual ~Endpoint() = default;

  // Binds every listen address; an error names the address that failed.
  static common::Result<std::unique_ptr<Endpoint>> create(const EndpointOptions& options,
                                                          EndpointListener* listener);

  // Final or provisional answer to a transaction. For non-INVITE and for
  // non-2xx INVITE answers the transaction ends with a final response.
  virtual void reply(TransactionId tx, const Response& response) = 0;

  // Accepts an initial INVITE with a 2xx: creates the dialog and returns its
  // id (0 if the transaction is gone, e.g. cancelled).
  virtual DialogId accept_invite(TransactionId tx, const Response& response) = 0;

  // Sends BYE in a dialog; the result arrives via on_bye_result. The dialog is
  // released after that.
  virtual void send_bye(DialogId dialog, const HeaderList& extra_headers) = 0;

  // Sends an UPDATE without a body in a dialog (RFC 4028 §10 session refresh by
  // the UAS; RFC 3311). extra_headers must carry Contact (a target refresh)
  // and Session-Expires. At most one at a time per dialog; the result arrives
  // via on_refresh_result. False when it could not be sent.
  virtual bool send_refresh(DialogId dialog, const HeaderList& extra_headers) = 0;

  // Releases a dialog (after BYE received and answered).
  virtual void release_dialog(DialogId dialog) = 0;

  // Runs the event loop on the calling thread until stop().
  virtual void run() = 0;
  // Thread-safe: ends run() soon.
  virtual void stop() = 0;
  // Thread-safe: runs fn on the SIP thread. Returns false when the bounded
  // queue is full (the closure is dropped and counted).
  virtual bool post(std::function<void()> fn) = 0;
  // SIP thread: runs fn once after delay_ms.
  virtual void after(std::uint32_t delay_ms, std::function<void()> fn) = 0;

  // Thread-safe: re-reads the TLS certificate, key and CA files (SIGHUP).
  // Open connections and their calls keep going; new connections use the new
  // files. An error names the file; the old certificate stays in use.
  virtual common::Status reload_tls() { return common::Ok{}; }

  // Where we listen, "udp:127.0.0.1:5060" style, in configuration order.
  virtual std::vector<std::string> bound_addresses() const = 0;
};

}  // namespace sgw::sip
