#include "sip/tls_frontend.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/logging.h"
#include "sip/tls_via_rewriter.h"

namespace sgw::sip {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxBuffered = 4 * 1024 * 1024;  // per direction; a peer beyond it waits
constexpr auto kIdentityGrace = std::chrono::seconds(60);  // a closed connection's identity is kept
constexpr int kMaxEvents = 64;
constexpr std::size_t kMaxRefusedSources = 4096;  // refused sources remembered for the log limit

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

// The oldest OpenSSL error on this thread's queue as text, the queue cleared.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  std::string out;
  if (e != 0) {
    const char* r = ERR_reason_error_string(e);
    out = r ? r : "error " + std::to_string(e);
  }
  ERR_clear_error();
  return out;
}

common::Result<CtxPtr> build_context(const TlsSettings& s) {
  const auto bad = [](const std::string& key, const std::string& what) {
    return common::make_error("tls.config", key + ": " + what);
  };
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return bad("tls", "SSL_CTX_new failed: " + openssl_error());
  int floor = s.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx.get(), floor) != 1)
    return bad("tls.min_version", "not supported by this OpenSSL");
  if (s.cert_file.empty()) return bad("tls.cert_file", "required for a tls: listen address");
  if (s.key_file.empty()) return bad("tls.key_file", "required for a tls: listen address");
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), s.cert_file.c_str()) != 1)
    return bad("tls.cert_file", "cannot load '" + s.cert_file + "': " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), s.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return bad("tls.key_file", "cannot load '" + s.key_file + "': " + openssl_error());
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return bad("tls.key_file", "'" + s.key_file + "' does not match the certificate in '" +
                                   s.cert_file + "'");
  if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(ctx.get(), s.ciphers.c_str()) != 1)
    return bad("tls.ciphers", "no usable cipher in '" + s.ciphers + "'");
  if (s.verify_client) {
    if (s.ca_file.empty()) return bad("tls.ca_file", "required with tls.verify_client: true");
    if (SSL_CTX_load_verify_locations(ctx.get(), s.ca_file.c_str(), nullptr) != 1)
      return bad("tls.ca_file", "cannot load '" + s.ca_file + "': " + openssl_error());
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str());
    if (names == nullptr) return bad("tls.ca_file", "no certificate in '" + s.ca_file + "'");
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // SIP trunks keep their connections: no session resumption state to hold
  // per client (and none to invalidate when the certificate is reloaded).
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  // Idle connections give their read/write buffers back (SIP trunks are mostly idle).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  ERR_clear_error();
  return ctx;
}

std::string ip_port(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

// CN and the DNS/URI subjectAltNames of a certificate.
std::vector<std::string> certificate_names(X509* cert) {
  std::vector<std::string> out;
  if (cert == nullptr) return out;
  char cn[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  if (n > 0) out.emplace_back(cn, static_cast<std::size_t>(n));
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      const ASN1_IA5STRING* s = g->type == GEN_DNS ? g->d.dNSName
                                : g->type == GEN_URI ? g->d.uniformResourceIdentifier
                                                     : nullptr;
      if (s == nullptr) continue;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
  }
  return out;
}

constexpr std::uint32_t kIn = EPOLLIN;
constexpr std::uint32_t kOut = EPOLLOUT;

// epoll data: kind in the low 2 bits, listener index or connection id above.
enum Kind : std::uint64_t { kListener = 0, kTls = 1, kPlain = 2, kWake = 3 };
std::uint64_t tag(Kind k, std::uint64_t id) { return (id << 2) | k; }

}  // namespace

bool subject_allowed(const std::vector<std::string>& patterns, const std::vector<std::string>& names) {
  if (patterns.empty()) return true;
  for (const auto& p : patterns)
    for (const auto& n : names)
      if (fnmatch(p.c_str(), n.c_str(), FNM_CASEFOLD) == 0) return true;
  return false;
}

common::Status TlsFrontend::check_settings(const TlsSettings& settings) {
  auto ctx = build_context(settings);
  if (!ctx) return ctx.error();
  return common::Ok{};
}

namespace {

struct Conn {
  std::uint64_t id = 0;
  std::size_t listener = 0;
  int tls_fd = -1;
  int plain_fd = -1;
  SSL* ssl = nullptr;
  std::string peer;
  bool established = false;
  bool plain_connected = false;
  bool plain_eof = false;
  bool want_write = false;  // SSL needs the socket writable to progress
  std::uint16_t backend_port = 0;  // our local port on the backend connection
  Clock::time_point accepted;
  std::string to_plain;  // decrypted, waiting for sofia
  std::string to_tls;    // from sofia, waiting for SSL_write
  detail::TlsViaRewriter to_sofia{detail::TlsViaRewriter::Direction::kToSofia};
  detail::TlsViaRewriter to_peer{detail::TlsViaRewriter::Direction::kToPeer};
};

class FrontendImpl final : public TlsFrontend {
 public:
  FrontendImpl(TlsSettings s, std::uint16_t backend_port, TlsCounters counters)
      : settings_(std::move(s)), backend_port_(backend_port), counters_(counters) {}

  ~FrontendImpl() override {
    stop();
    for (int fd : listen_fds_) close(fd);
    if (wake_fd_ >= 0) close(wake_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  common::Status init(const std::vector<TlsListen>& listen) {
    auto ctx = build_context(settings_);
    if (!ctx) return ctx.error();
    ctx_ = std::move(*ctx);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) return common::make_error("sip.listen", "epoll/eventfd failed");
    add(wake_fd_, EPOLLIN, tag(kWake, 0));
    for (const auto& l : listen) {
      bool v6 = l.address.find(':') != std::string::npos;
      std::string name = "tls:" + (v6 ? "[" + l.address + "]" : l.address);
      sockaddr_storage ss{};
      socklen_t len = 0;
      if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(l.port);
        if (inet_pton(AF_INET6, l.address.c_str(), &a->sin6_addr) != 1)
          return common::make_error("sip.listen", "bad address " + name);
        len = sizeof(sockaddr_in6);
      } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(l.port);
        if (inet_pton(AF_INET, l.address.c_str(), &a->sin_addr) != 1)
          return common::make_error("sip.listen", "bad address " + name);
        len = sizeof(sockaddr_in);
      }
      int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      int one = 1;
      if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 1024) != 0) {
        std::string err = std::strerror(errno);
        if (fd >= 0) close(fd);
        return common::make_error("sip.listen",
                                  "cannot listen on " + name + ":" + std::to_string(l.port) + ": " + err);
      }
      sockaddr_storage bound{};
      socklen_t blen = sizeof bound;
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
      std::string hp = ip_port(bound);
      auto colon = hp.rfind(':');
      listen_host_.push_back(l.address);
      listen_port_.push_back(hp.substr(colon + 1));
      bound_.push_back("tls:" + hp);
      add(fd, EPOLLIN, tag(kListener, listen_fds_.size()));
      listen_fds_.push_back(fd);
    }
    return common::Ok{};
  }

  void start() override {
    if (thread_.joinable()) return;
    running_ = true;
    thread_ = std::thread([this] { loop(); });
  }

  void stop() override {
    if (!thread_.joinable()) return;
    running_ = false;
    std::uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) { /* a wakeup is pending */ }
    thread_.join();
    while (!conns_.empty()) close_conn(*conns_.begin()->second);
  }

  common::Status reload() override {
    auto ctx = build_context(settings_);
    if (!ctx) return ctx.error();
    std::lock_guard lock(ctx_mutex_);
    ctx_ = std::move(*ctx);  // SSL objects of open connections hold a reference to the old one
    return common::Ok{};
  }

  std::optional<TlsPeer> peer(std::uint16_t backend_peer_port) const override {
    std::lock_guard lock(ids_mutex_);
    auto it = ids_.find(backend_peer_port);
    if (it == ids_.end()) return std::nullopt;
    return it->second.peer;
  }

  std::vector<std::string> bound_addresses() const override { return bound_; }

 private:
  void add(int fd, std::uint32_t events, std::uint64_t data) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = data;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  void modify(int fd, std::uint32_t events, std::uint64_t data) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = data;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  }

  void loop() {
    epoll_event events[kMaxEvents];
    auto next_sweep = Clock::now() + std::chrono::seconds(1);
    while (running_) {
      int n = epoll_wait(epoll_fd_, events, kMaxEvents, 250);
      for (int i = 0; i < n && running_; ++i) {
        std::uint64_t data = events[i].data.u64;
        auto kind = static_cast<Kind>(data & 3);
        std::uint64_t id = data >> 2;
        if (kind == kWake) {
          std::uint64_t v = 0;
          if (::read(wake_fd_, &v, sizeof v) < 0) { /* spurious */ }
        } else if (kind == kListener) {
          accept_all(static_cast<std::size_t>(id));
        } else {
          auto it = conns_.find(id);
          if (it != conns_.end()) pump(*it->second);
        }
      }
      auto now = Clock::now();
      if (now >= next_sweep) {
        sweep(now);
        next_sweep = now + std::chrono::seconds(1);
      }
    }
  }

  void accept_all(std::size_t listener) {
    for (;;) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      int fd = accept4(listen_fds_[listener], reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or out of descriptors (retried on the next event)
      if (!settings_.allowed_sources.allows(reinterpret_cast<sockaddr*>(&ss), len)) {
        refuse_source(ss);
        close(fd);
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<Conn>();
      c->id = next_id_++;
      c->listener = listener;
      c->tls_fd = fd;
      c->peer = ip_port(ss);
      c->accepted = Clock::now();
      {
        std::lock_guard lock(ctx_mutex_);
        c->ssl = SSL_new(ctx_.get());
      }
      if (c->ssl == nullptr || SSL_set_fd(c->ssl, fd) != 1) {
        log_->warn("TLS connection from {} refused: SSL_new failed: {}", c->peer, openssl_error());
        if (c->ssl) SSL_free(c->ssl);
        close(fd);
        continue;
      }
      SSL_set_accept_state(c->ssl);
      add(fd, EPOLLIN, tag(kTls, c->id));
      Conn& ref = *c;
      conns_.emplace(c->id, std::move(c));
      pump(ref);
    }
  }

  // sip.allowed_sources refused the peer: counted every time, logged the first
  // time per source address and minute (docs/security.md "How a limit that
  // was hit is reported"). The remembered sources are bounded.
  void refuse_source(const sockaddr_storage& ss) {
    if (counters_.refused_sources) counters_.refused_sources->inc();
    std::string peer = ip_port(ss);
    std::string address = peer.front() == '[' ? peer.substr(1, peer.find(']') - 1)
                                              : peer.substr(0, peer.rfind(':'));
    auto now = Clock::now();
    auto it = refused_logged_.find(address);
    if (it != refused_logged_.end() && now - it->second < std::chrono::minutes(1)) return;
    if (it == refused_logged_.end() && refused_logged_.size() >= kMaxRefusedSources) {
      std::erase_if(refused_logged_,
                    [now](const auto& e) { return now - e.second >= std::chrono::minutes(1); });
      if (refused_logged_.size() >= kMaxRefusedSources) return;  // a flood of sources: counted only
    }
    refused_logged_[address] = now;
    log_->warn("limit allowed_sources hit by {}: TLS connection from {} closed before the handshake "
               "(further hits of it from this source in this minute are counted in "
               "sgw_limits_hit_total, not logged)",
               address, peer);
  }

  // One line per failed handshake, naming the peer and OpenSSL's reason; a
  // flood is summarised (at most 20 lines a second, the rest counted).
  void handshake_failed(Conn& c, const std::string& reason) {
    if (counters_.handshake_failures) counters_.handshake_failures->inc();
    auto now = Clock::now();
    if (now - log_window_ >= std::chrono::seconds(1)) {
      if (suppressed_ > 0)
        log_->warn("{} more TLS handshake failures in the last second (not logged one by one)",
                   suppressed_);
      log_window_ = now;
      logged_ = 0;
      suppressed_ = 0;
    }
    if (logged_++ < 20)
      log_->warn("TLS handshake with {} on {} failed: {}", c.peer, bound_[c.listener], reason);
    else
      ++suppressed_;
    close_conn(c);
  }

  std::string handshake_reason(Conn& c, int ret) {
    int err = SSL_get_error(c.ssl, ret);
    long verify = SSL_get_verify_result(c.ssl);
    std::string lib = openssl_error();
    if (verify != X509_V_OK && settings_.verify_client)
      return "client certificate: " + std::string(X509_verify_cert_error_string(verify));
    if (!lib.empty()) return lib;
    if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL)
      return "connection closed by the peer during the handshake";
    return "SSL error " + std::to_string(err);
  }

  void on_established(Conn& c) {
    c.established = true;
    if (counters_.accepted) counters_.accepted->inc();
    X509* cert = SSL_get1_peer_certificate(c.ssl);
    auto names = certificate_names(cert);
    if (cert) X509_free(cert);
    TlsPeer p;
    p.peer = c.peer;
    p.address = c.peer.front() == '[' ? c.peer.substr(1, c.peer.find(']') - 1)
                                      : c.peer.substr(0, c.peer.rfind(':'));
    p.listen_host = listen_host_[c.listener];
    p.listen_port = listen_port_[c.listener];
    p.subject = names.empty() ? "" : names.front();
    p.allowed = !settings_.verify_client || subject_allowed(settings_.allowed_subjects, names);
    if (!p.allowed)
      log_->warn("TLS peer {} (subject '{}') is not in tls.allowed_subjects: its requests get 403",
                 c.peer, p.subject);
    log_->debug("TLS connection from {}: {} {} subject '{}'", c.peer, SSL_get_version(c.ssl),
                SSL_get_cipher_name(c.ssl), p.subject);
    // The backend connection: sofia sees 127.0.0.1:<our port>; the SIP layer
    // maps that port back to this connection's identity.
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(backend_port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS)) {
      log_->error("TLS connection from {} closed: cannot reach the SIP backend: {}", c.peer,
                  std::strerror(errno));
      if (fd >= 0) close(fd);
      close_conn(c);
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    c.backend_port = ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    c.plain_fd = fd;
    {
      std::lock_guard lock(ids_mutex_);
      ids_[c.backend_port] = Identity{std::move(p), Clock::time_point::max()};
    }
    add(fd, EPOLLIN | EPOLLOUT, tag(kPlain, c.id));
  }

  // Moves whatever can move, then sets the epoll interests. May close c.
  void pump(Conn& c) {
    if (!c.established) {
      ERR_clear_error();
      int r = SSL_do_handshake(c.ssl);
      if (r != 1) {
        int err = SSL_get_error(c.ssl, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
          modify(c.tls_fd, err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN, tag(kTls, c.id));
          return;
        }
        handshake_failed(c, handshake_reason(c, r));
        return;
      }
      on_established(c);
      if (c.plain_fd < 0) return;  // closed
    }
    // TLS -> plaintext buffer.
    char buf[16384];
    bool tls_closed = false;
    while (c.to_plain.size() < kMaxBuffered) {
      ERR_clear_error();
      int r = SSL_read(c.ssl, buf, sizeof buf);
      if (r > 0) {
        c.to_sofia.feed(std::string_view(buf, static_cast<std::size_t>(r)), c.to_plain);
        continue;
      }
      int err = SSL_get_error(c.ssl, r);
      if (err == SSL_ERROR_WANT_READ) break;
      if (err == SSL_ERROR_WANT_WRITE) {
        c.want_write = true;
        break;
      }
      tls_closed = true;  // close_notify, EOF or a protocol error
      ERR_clear_error();
      break;
    }
    // Plaintext buffer -> sofia.
    if (!c.plain_connected) {
      int so_error = 0;
      socklen_t l = sizeof so_error;
      getsockopt(c.plain_fd, SOL_SOCKET, SO_ERROR, &so_error, &l);
      if (so_error != 0) {
        log_->error("TLS connection from {} closed: SIP backend: {}", c.peer, std::strerror(so_error));
        close_conn(c);
        return;
      }
      sockaddr_storage remote{};
      socklen_t rl = sizeof remote;
      c.plain_connected = getpeername(c.plain_fd, reinterpret_cast<sockaddr*>(&remote), &rl) == 0;
    }
    while (c.plain_connected && !c.to_plain.empty()) {
      ssize_t w = ::send(c.plain_fd, c.to_plain.data(), c.to_plain.size(), MSG_NOSIGNAL);
      if (w <= 0) break;
      c.to_plain.erase(0, static_cast<std::size_t>(w));
    }
    // sofia -> TLS.
    while (c.plain_connected && !c.plain_eof && c.to_tls.size() < kMaxBuffered) {
      ssize_t r = ::recv(c.plain_fd, buf, sizeof buf, 0);
      if (r > 0) {
        c.to_peer.feed(std::string_view(buf, static_cast<std::size_t>(r)), c.to_tls);
        continue;
      }
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) c.plain_eof = true;
      break;
    }
    c.want_write = false;
    while (!c.to_tls.empty()) {
      ERR_clear_error();
      int w = SSL_write(c.ssl, c.to_tls.data(), static_cast<int>(std::min<std::size_t>(c.to_tls.size(), 65536)));
      if (w > 0) {
        c.to_tls.erase(0, static_cast<std::size_t>(w));
        continue;
      }
      int err = SSL_get_error(c.ssl, w);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        c.want_write = err == SSL_ERROR_WANT_WRITE;
        break;
      }
      tls_closed = true;
      ERR_clear_error();
      break;
    }
    // The TLS peer is gone: sofia gets EOF once what it sent us is delivered.
    if (tls_closed && c.to_plain.empty()) {
      close_conn(c);
      return;
    }
    // sofia closed (idle timeout, or it ended the connection): so do we.
    if (c.plain_eof && c.to_tls.empty()) {
      SSL_shutdown(c.ssl);
      close_conn(c);
      return;
    }
    std::uint32_t tls_ev = (c.to_plain.size() < kMaxBuffered && !tls_closed ? kIn : 0u) |
                           (c.want_write ? kOut : 0u);
    std::uint32_t plain_ev = (!c.plain_eof && c.to_tls.size() < kMaxBuffered ? kIn : 0u) |
                             (!c.plain_connected || !c.to_plain.empty() ? kOut : 0u);
    modify(c.tls_fd, tls_ev, tag(kTls, c.id));
    modify(c.plain_fd, plain_ev, tag(kPlain, c.id));
  }

  void close_conn(Conn& c) {
    if (c.plain_fd >= 0) {
      close(c.plain_fd);
      std::lock_guard lock(ids_mutex_);
      auto it = ids_.find(c.backend_port);
      if (it != ids_.end()) it->second.closed = Clock::now();
    }
    if (c.ssl) SSL_free(c.ssl);
    close(c.tls_fd);  // also removes both descriptors from epoll
    conns_.erase(c.id);  // c is gone from here on
  }

  void sweep(Clock::time_point now) {
    auto limit = std::chrono::milliseconds(settings_.handshake_timeout_ms);
    std::vector<Conn*> late;
    for (auto& [id, c] : conns_)
      if (!c->established && now - c->accepted > limit) late.push_back(c.get());
    for (Conn* c : late) handshake_failed(*c, "no complete handshake within " +
                                                  std::to_string(settings_.handshake_timeout_ms) + " ms");
    std::lock_guard lock(ids_mutex_);
    for (auto it = ids_.begin(); it != ids_.end();) {
      if (it->second.closed != Clock::time_point::max() && now - it->second.closed > kIdentityGrace)
        it = ids_.erase(it);
      else
        ++it;
    }
  }

  struct Identity {
    TlsPeer peer;
    Clock::time_point closed;  // max(): open
  };

  TlsSettings settings_;
  std::uint16_t backend_port_ = 0;
  TlsCounters counters_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::vector<int> listen_fds_;
  std::vector<std::string> listen_host_, listen_port_, bound_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::unique_ptr<Conn>> conns_;  // frontend thread only

  mutable std::mutex ctx_mutex_;
  CtxPtr ctx_;
  mutable std::mutex ids_mutex_;
  std::map<std::uint16_t, Identity> ids_;  // by our local port on the backend connection

  std::unordered_map<std::string, Clock::time_point> refused_logged_;  // frontend thread only
  Clock::time_point log_window_{};
  std::uint32_t logged_ = 0;
  std::uint64_t suppressed_ = 0;
  std::shared_ptr<spdlog::logger> log_ = common::logger("sip");
};

}  // namespace

common::Result<std::unique_ptr<TlsFrontend>> TlsFrontend::create(const TlsSettings& settings,
                                                                 const std::vector<TlsListen>& listen,
                                                                 std::uint16_t backend_port,
                                                                 TlsCounters counters) {
  auto f = std::make_unique<FrontendImpl>(settings, backend_port, counters);
  if (auto st = f->init(listen); !st) return st.error();
  return std::unique_ptr<TlsFrontend>(std::move(f));
}

}  // namespace sgw::sip
