// ClientEndpoint (UAC) against the gateway's own Endpoint (UAS), both in this
// process on loopback, each on its own SIP thread; plus a raw UDP socket
// playing a UAS that retransmits its 2xx. Every wait is bounded.

#include "sip/client_endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sip/endpoint.h"
#include "test_ports.h"

namespace sgw::sip {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 5s;  // bound for anything that should happen "now" on loopback

using test::free_port;

// A scripted UAS: the gateway's Endpoint with a small listener, on its thread.
class Uas : public EndpointListener {
 public:
  struct Seen {
    DialogId dialog = 0;  // 0: out of dialog
    Request request;
  };

  void start() {
    port = free_port();
    ASSERT_NE(port, 0);
    EndpointOptions o;
    o.listen = {{"udp", "127.0.0.1", port}, {"tcp", "127.0.0.1", port}};
    o.max_message_bytes = max_message_bytes;
    auto ep = Endpoint::create(o, this);
    ASSERT_TRUE(ep.ok()) << ep.error().message;
    endpoint = std::move(*ep);
    thread = std::thread([this] { endpoint->run(); });
  }

  void stop() {
    if (!endpoint) return;
    endpoint->stop();
    if (thread.joinable()) thread.join();
    endpoint.reset();
  }

  ~Uas() override { stop(); }

  Target target(const std::string& transport) const { return {transport, "127.0.0.1", port}; }

  // --- EndpointListener (SIP thread) ---
  void on_request(TransactionId tx, const Request& r) override {
    record(0, r);
    if (r.method == "OPTIONS") {
      endpoint->reply(tx, Response{200, "OK", {}, "", ""});
    } else if (r.method == "INVITE") {
      if (r.header("X-Test") == "hold") {
        endpoint->reply(tx, Response{180, "Ringing", {}, "", ""});
        return;  // never answered: the client cancels
      }
      Response ok{200, "OK", {{"Contact", contact(r)}}, "application/sdp", kSdp};
      DialogId d = endpoint->accept_invite(tx, ok);
      std::lock_guard lock(mu);
      dialogs[r.call_id] = d;
      cv.notify_all();
    } else {
      endpoint->reply(tx, Response{405, "Method Not Allowed", {}, "", ""});
    }
  }

  void on_dialog_request(DialogId dialog, TransactionId tx, const Request& r) override {
    record(dialog, r);
    if (r.method == "INVITE") {
      endpoint->reply(tx, Response{200, "OK", {{"Contact", contact(r)}}, "application/sdp", kSdp});
    } else {
      endpoint->reply(tx, Response{200, "OK", {}, "", ""});
      if (r.method == "BYE") endpoint->release_dialog(dialog);
    }
  }

  void on_ack(DialogId /*dialog*/, const Request& /*ack*/) override {
    std::lock_guard lock(mu);
    ++acks;
    cv.notify_all();
  }

  void on_cancelled(TransactionId /*tx*/) override {
    std::lock_guard lock(mu);
    ++cancelled;
    cv.notify_all();
  }

  void on_bye_result(DialogId /*dialog*/, int status) override {
    std::lock_guard lock(mu);
    bye_results.push_back(status);
    cv.notify_all();
  }

  bool wait(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }

  std::vector<Seen> requests_with(const std::string& method) {
    std::lock_guard lock(mu);
    std::vector<Seen> out;
    for (const auto& s : seen)
      if (s.request.method == method) out.push_back(s);
    return out;
  }

  static constexpr const char* kSdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

  std::size_t max_message_bytes = 65535;  // the gateway's default
  std::unique_ptr<Endpoint> endpoint;
  std::thread thread;
  std::uint16_t port = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Seen> seen;
  std::map<std::string, DialogId> dialogs;
  int acks = 0;
  int cancelled = 0;
  std::vector<int> bye_results;

 private:
  std::string contact(const Request& r) const {
    return "<sip:srs@127.0.0.1:" + std::to_string(port) + ";transport=" + r.transport + ">";
  }
  void record(DialogId d, const Request& r) {
    std::lock_guard lock(mu);
    seen.push_back(Seen{d, r});
    cv.notify_all();
  }
};

// The client under test, with a listener that records everything and
// answers the gateway's requests with 200.
class Client : public ClientListener {
 public:
  struct Got {
    CallHandle call = 0;
    std::string method;
    ClientResponse response;
  };
  struct GotRequest {
    CallHandle call = 0;
    Request request;
  };

  void start(ClientOptions o = {}) {
    auto ep = ClientEndpoint::create(o, this);
    ASSERT_TRUE(ep.ok()) << ep.error().message;
    endpoint = std::move(*ep);
    thread = std::thread([this] { endpoint->run(); });
  }

  void stop() {
    if (!endpoint) return;
    endpoint->stop();
    if (thread.joinable()) thread.join();
    endpoint.reset();
  }

  ~Client() override { stop(); }

  // Runs fn on the client's SIP thread and returns its result.
  template <typename F>
  auto on_thread(F fn) -> decltype(fn()) {
    using R = decltype(fn());
    auto p = std::make_shared<std::promise<R>>();
    auto f = p->get_future();
    endpoint->post([p, fn] { p->set_value(fn()); });
    if (f.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "client thread did not run the closure";
      return R{};
    }
    return f.get();
  }

  void on_response(CallHandle call, const std::string& method, const ClientResponse& r) override {
    std::lock_guard lock(mu);
    got.push_back(Got{call, method, r});
    cv.notify_all();
  }

  void on_request(CallHandle call, TransactionId tx, const Request& request) override {
    {
      std::lock_guard lock(mu);
      requests.push_back(GotRequest{call, request});
      cv.notify_all();
    }
    endpoint->reply(tx, Response{200, "OK", {}, "", ""});
  }

  // Waits for the final response to `method` in `call`; nullopt on timeout.
  std::optional<ClientResponse> final_response(CallHandle call, const std::string& method,
                                               std::chrono::milliseconds timeout = kWait,
                                               std::size_t nth = 0) {
    std::unique_lock lock(mu);
    std::optional<ClientResponse> out;
    cv.wait_for(lock, timeout, [&] {
      std::size_t n = 0;
      for (const auto& g : got) {
        if (g.call == call && g.method == method && g.response.status >= 200 && n++ == nth) {
          out = g.response;
          return true;
        }
      }
      return false;
    });
    return out;
  }

  bool wait(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }

  int count(CallHandle call, const std::string& method, int status) {
    std::lock_guard lock(mu);
    int n = 0;
    for (const auto& g : got)
      if (g.call == call && g.method == method && g.response.status == status) ++n;
    return n;
  }

  std::unique_ptr<ClientEndpoint> endpoint;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Got> got;
  std::vector<GotRequest> requests;
};

OutgoingRequest make_invite(std::uint16_t port, const std::string& transport,
                            std::string body = Uas::kSdp) {
  OutgoingRequest r;
  r.request_uri = "sip:srs@127.0.0.1:" + std::to_string(port) + ";transport=" + transport;
  r.from = "<sip:src@127.0.0.1>";
  r.to = "<sip:srs@127.0.0.1>";
  r.headers = {{"Require", "siprec"}, {"X-Case", "client-test"}};
  r.content_type = "application/sdp";
  r.body = std::move(body);
  return r;
}

class ClientEndpointTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    uas.start();
    client.start();
  }
  void TearDown() override {
    client.stop();
    uas.stop();
  }
  std::string transport() const { return GetParam(); }

  // INVITE -> 200 -> ACK; returns the call handle (0 on failure).
  CallHandle establish() {
    OutgoingRequest inv = make_invite(uas.port, transport());
    Target t = uas.target(transport());
    CallHandle call = client.on_thread([&] { return client.endpoint->invite(t, inv); });
    auto r = client.final_response(call, "INVITE");
    if (!r || r->status != 200) {
      ADD_FAILURE() << "INVITE: " << (r ? r->status : 0);
      return 0;
    }
    return call;
  }

  Uas uas;
  Client client;
};

TEST_P(ClientEndpointTest, OptionsOutOfDialog) {
  Target t = uas.target(transport());
  std::string ruri = "sip:srs@127.0.0.1:" + std::to_string(uas.port);
  CallHandle call = client.on_thread([&] { return client.endpoint->options(t, ruri); });
  auto r = client.final_response(call, "OPTIONS");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->local);
  auto seen = uas.requests_with("OPTIONS");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].request.transport, transport());
  EXPECT_EQ(seen[0].request.header("User-Agent"), "siprec-src");
  // A probe is forgotten after its final response.
  EXPECT_EQ(client.on_thread([&] { return client.endpoint->call_id(call); }), "");
}

TEST_P(ClientEndpointTest, InviteAckReinviteUpdateOptionsBye) {
  CallHandle call = establish();
  ASSERT_NE(call, 0u);
  ASSERT_TRUE(uas.wait([&] { return uas.acks == 1; })) << "UAS saw no ACK";

  auto invites = uas.requests_with("INVITE");
  ASSERT_EQ(invites.size(), 1u);
  const Request& inv = invites[0].request;
  EXPECT_EQ(inv.transport, transport());
  EXPECT_NE(inv.contact.find("+sip.src"), std::string::npos) << inv.contact;
  EXPECT_NE(inv.contact.find("transport=" + transport()), std::string::npos) << inv.contact;
  EXPECT_NE(inv.from.find("tag="), std::string::npos) << inv.from;
  EXPECT_EQ(inv.header("Require"), "siprec");
  EXPECT_EQ(inv.header("X-Case"), "client-test");
  EXPECT_EQ(inv.body, Uas::kSdp);
  EXPECT_EQ(inv.call_id, client.on_thread([&] { return client.endpoint->call_id(call); }));

  // re-INVITE: 200 and a second ACK.
  ASSERT_TRUE(client.on_thread(
      [&] { return client.endpoint->reinvite(call, {{"X-Step", "reinvite"}}, "application/sdp", Uas::kSdp); }));
  auto r = client.final_response(call, "INVITE", kWait, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_TRUE(uas.wait([&] { return uas.acks == 2; })) << "no ACK for the re-INVITE's 2xx";

  ASSERT_TRUE(client.on_thread(
      [&] { return client.endpoint->update(call, {}, "application/sdp", Uas::kSdp); }));
  r = client.final_response(call, "UPDATE");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  ASSERT_TRUE(client.on_thread([&] { return client.endpoint->options_in_dialog(call); }));
  r = client.final_response(call, "OPTIONS");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  ASSERT_TRUE(client.on_thread([&] { return client.endpoint->bye(call); }));
  r = client.final_response(call, "BYE");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // Every in-dialog request reached the dialog, with CSeq counting up.
  std::vector<std::uint32_t> cseqs;
  {
    std::lock_guard lock(uas.mu);
    for (const auto& s : uas.seen) {
      if (s.request.method == "ACK") continue;
      if (s.request.call_id != inv.call_id) continue;
      if (&s != &uas.seen.front()) {
        EXPECT_NE(s.dialog, 0u) << s.request.method;
      }
      cseqs.push_back(s.request.cseq);
    }
  }
  ASSERT_EQ(cseqs.size(), 5u);  // INVITE, re-INVITE, UPDATE, OPTIONS, BYE
  for (std::size_t i = 1; i < cseqs.size(); ++i) EXPECT_GT(cseqs[i], cseqs[i - 1]);

  // After BYE no more in-dialog requests; release forgets the call.
  EXPECT_FALSE(client.on_thread([&] { return client.endpoint->bye(call); }));
  client.on_thread([&] {
    client.endpoint->release(call);
    return 0;
  });
  EXPECT_FALSE(client.on_thread([&] { return client.endpoint->update(call, {}, "", ""); }));
}

TEST_P(ClientEndpointTest, CancelWhileRinging) {
  OutgoingRequest inv = make_invite(uas.port, transport());
  inv.headers.push_back({"X-Test", "hold"});
  Target t = uas.target(transport());
  CallHandle call = client.on_thread([&] { return client.endpoint->invite(t, inv); });
  ASSERT_TRUE(client.wait([&] {
    for (const auto& g : client.got)
      if (g.call == call && g.response.status == 180) return true;
    return false;
  })) << "no 180";
  EXPECT_TRUE(client.on_thread([&] { return client.endpoint->cancel(call); }));
  auto r = client.final_response(call, "INVITE");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 487);
  EXPECT_FALSE(r->local);
  EXPECT_TRUE(uas.wait([&] { return uas.cancelled == 1; }));
  // Nothing to cancel any more; no dialog to BYE.
  EXPECT_FALSE(client.on_thread([&] { return client.endpoint->cancel(call); }));
  EXPECT_FALSE(client.on_thread([&] { return client.endpoint->bye(call); }));
}

TEST_P(ClientEndpointTest, ByeFromGatewayReachesListenerAndIsAnswered) {
  CallHandle call = establish();
  ASSERT_NE(call, 0u);
  std::string cid = client.on_thread([&] { return client.endpoint->call_id(call); });
  ASSERT_TRUE(uas.wait([&] { return uas.dialogs.count(cid) == 1 && uas.acks == 1; }));
  DialogId dialog = 0;
  {
    std::lock_guard lock(uas.mu);
    dialog = uas.dialogs[cid];
  }
  // The gateway drains: BYE from the UAS side.
  uas.endpoint->post([&uas = uas, dialog] { uas.endpoint->send_bye(dialog, {{"Reason", "SIP;cause=503"}}); });
  ASSERT_TRUE(client.wait([&] { return !client.requests.empty(); })) << "BYE did not reach on_request";
  {
    std::lock_guard lock(client.mu);
    EXPECT_EQ(client.requests[0].call, call);
    EXPECT_EQ(client.requests[0].request.method, "BYE");
    EXPECT_EQ(client.requests[0].request.header("Reason"), "SIP;cause=503");
  }
  ASSERT_TRUE(uas.wait([&] { return !uas.bye_results.empty(); }));
  EXPECT_EQ(uas.bye_results[0], 200);
}

TEST_P(ClientEndpointTest, LargeBody40k) {
  std::string body(40 * 1024, 'x');
  for (std::size_t i = 0; i < body.size(); i += 64) body[i] = '\n';
  OutgoingRequest inv = make_invite(uas.port, transport(), body);
  inv.content_type = "application/rs-metadata+xml";
  Target t = uas.target(transport());
  CallHandle call = client.on_thread([&] { return client.endpoint->invite(t, inv); });
  auto r = client.final_response(call, "INVITE");
  ASSERT_TRUE(r) << "no final response to a 40 KB INVITE over " << transport();
  EXPECT_EQ(r->status, 200);
  auto invites = uas.requests_with("INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(invites[0].request.transport, transport());  // no silent switch to TCP
  EXPECT_EQ(invites[0].request.body.size(), body.size());
  EXPECT_EQ(invites[0].request.body, body);
}

TEST_P(ClientEndpointTest, ManyConcurrentCalls) {
  constexpr int kCalls = 200;
  // 200 INVITEs pipelined on one TCP connection arrive as one read of more
  // than 64 KB; an Endpoint with max_message_bytes 65535 (the gateway's
  // default) answers them 413. Give this gateway room, as siprecd needs.
  uas.stop();
  uas.max_message_bytes = 4 << 20;
  uas.start();
  Target t = uas.target(transport());
  std::vector<CallHandle> calls = client.on_thread([&] {
    std::vector<CallHandle> out;
    for (int i = 0; i < kCalls; ++i) out.push_back(client.endpoint->invite(t, make_invite(uas.port, transport())));
    return out;
  });
  ASSERT_EQ(calls.size(), static_cast<std::size_t>(kCalls));
  for (CallHandle c : calls) {
    auto r = client.final_response(c, "INVITE", 10s);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->reason << (r->local ? " (local)" : "");
  }
  ASSERT_TRUE(uas.wait([&] { return uas.acks == kCalls; }, 10s)) << uas.acks;
  client.on_thread([&] {
    for (CallHandle c : calls) client.endpoint->bye(c);
    return 0;
  });
  for (CallHandle c : calls) {
    auto r = client.final_response(c, "BYE", 10s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, ClientEndpointTest, ::testing::Values("udp", "tcp"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// --- failures that never see a response ------------------------------------

TEST(ClientEndpointFailure, InviteToClosedPortFailsLocally) {
  for (std::string transport : {"udp", "tcp"}) {
    Client client;
    ClientOptions o;
    o.transaction_timeout_ms = 2000;  // a silent UDP peer: 408 after 2 s
    client.start(o);
    std::uint16_t closed = free_port();
    Target t{transport, "127.0.0.1", closed};
    auto start = Clock::now();
    CallHandle call =
        client.on_thread([&] { return client.endpoint->invite(t, make_invite(closed, transport)); });
    auto r = client.final_response(call, "INVITE", 8s);
    ASSERT_TRUE(r) << transport << ": no local failure";
    EXPECT_TRUE(r->status == 503 || r->status == 408) << transport << ": " << r->status;
    EXPECT_TRUE(r->local) << transport;
    EXPECT_LT(Clock::now() - start, 8s);
    client.stop();
  }
}

TEST(ClientEndpointFailure, UnsupportedTransportIsReportedAsync) {
  Client client;
  client.start();
  Target t{"tls", "127.0.0.1", 5061};
  CallHandle call = client.on_thread([&] { return client.endpoint->invite(t, make_invite(5061, "tls")); });
  auto r = client.final_response(call, "INVITE");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(r->local);
}

TEST(ClientEndpointCreate, BindsUdpAndTcpOnOnePort) {
  Client client;
  client.start();
  auto bound = client.endpoint->bound_addresses();
  ASSERT_EQ(bound.size(), 2u);
  EXPECT_EQ(bound[0].substr(0, 14), "udp:127.0.0.1:");
  EXPECT_EQ(bound[1].substr(0, 14), "tcp:127.0.0.1:");
  EXPECT_EQ(bound[0].substr(14), bound[1].substr(14));
  EXPECT_NE(bound[0].substr(14), "0");
}

TEST(ClientEndpointCreate, BusyPortIsAnError) {
  Client first;
  first.start();
  std::string port = first.endpoint->bound_addresses()[0].substr(14);
  ClientOptions o;
  o.bind_port = static_cast<std::uint16_t>(std::stoi(port));
  Client second;
  auto ep = ClientEndpoint::create(o, &second);
  ASSERT_FALSE(ep.ok());
  EXPECT_NE(ep.error().message.find(port), std::string::npos) << ep.error().message;
}

// --- a raw UDP UAS that retransmits its 2xx ---------------------------------

class RawUdpPeer {
 public:
  RawUdpPeer() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~RawUdpPeer() { close(fd_); }

  // Next datagram whose first line starts with `prefix`, within timeout.
  std::optional<std::string> receive(const std::string& prefix, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 1))) <= 0) continue;
      char buf[65536];
      socklen_t len = sizeof from_;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from_), &len);
      if (n <= 0) continue;
      std::string msg(buf, static_cast<std::size_t>(n));
      if (msg.compare(0, prefix.size(), prefix) == 0) return msg;
    }
    return std::nullopt;
  }

  void send(const std::string& msg) {
    sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&from_), sizeof from_);
  }

  std::uint16_t port = 0;

 private:
  int fd_ = -1;
  sockaddr_in from_{};
};

std::vector<std::string> header_lines(const std::string& msg, const std::string& name) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < msg.size()) {
    auto end = msg.find("\r\n", pos);
    if (end == std::string::npos || end == pos) break;
    std::string line = msg.substr(pos, end - pos);
    if (line.size() > name.size() && strncasecmp(line.c_str(), name.c_str(), name.size()) == 0 &&
        line[name.size()] == ':')
      out.push_back(line);
    pos = end + 2;
  }
  return out;
}

TEST(ClientEndpointRetransmission, Retransmitted2xxIsAckedAgain) {
  RawUdpPeer peer;
  Client client;
  client.start();
  Target t{"udp", "127.0.0.1", peer.port};
  CallHandle call =
      client.on_thread([&] { return client.endpoint->invite(t, make_invite(peer.port, "udp")); });
  auto invite = peer.receive("INVITE ", kWait);
  ASSERT_TRUE(invite);
  std::string ok = "SIP/2.0 200 OK\r\n";
  for (const auto& v : header_lines(*invite, "Via")) ok += v + "\r\n";
  ok += header_lines(*invite, "From").at(0) + "\r\n";
  ok += header_lines(*invite, "To").at(0) + ";tag=rawpeer\r\n";
  ok += header_lines(*invite, "Call-ID").at(0) + "\r\n";
  ok += header_lines(*invite, "CSeq").at(0) + "\r\n";
  ok += "Contact: <sip:raw@127.0.0.1:" + std::to_string(peer.port) + ">\r\n";
  ok += "Content-Length: 0\r\n\r\n";
  std::string invite_cseq = header_lines(*invite, "CSeq").at(0);
  std::string seq = invite_cseq.substr(invite_cseq.find(':') + 1);
  seq = seq.substr(seq.find_first_not_of(' '));
  seq = seq.substr(0, seq.find(' '));

  peer.send(ok);
  auto ack1 = peer.receive("ACK ", kWait);
  ASSERT_TRUE(ack1) << "no ACK for the 2xx";
  EXPECT_EQ(header_lines(*ack1, "CSeq").at(0), "CSeq: " + seq + " ACK");
  EXPECT_NE(ack1->find("ACK sip:raw@127.0.0.1:" + std::to_string(peer.port)), std::string::npos)
      << "ACK goes to the remote target (Contact)";

  // The ACK got "lost": the UAS retransmits its 2xx and must get another ACK.
  peer.send(ok);
  auto ack2 = peer.receive("ACK ", kWait);
  ASSERT_TRUE(ack2) << "retransmitted 2xx was not ACKed";
  EXPECT_EQ(header_lines(*ack2, "CSeq").at(0), "CSeq: " + seq + " ACK");
  peer.send(ok);
  ASSERT_TRUE(peer.receive("ACK ", kWait)) << "third 2xx not ACKed";

  // The application heard about the 2xx once, and nobody sent a BYE.
  EXPECT_FALSE(peer.receive("BYE ", 300ms));
  EXPECT_EQ(client.count(call, "INVITE", 200), 1);
}

TEST(ClientEndpointRetransmission, Late2xxForReleasedCallIsAckedAndByed) {
  RawUdpPeer peer;
  Client client;
  client.start();
  Target t{"udp", "127.0.0.1", peer.port};
  CallHandle call =
      client.on_thread([&] { return client.endpoint->invite(t, make_invite(peer.port, "udp")); });
  auto invite = peer.receive("INVITE ", kWait);
  ASSERT_TRUE(invite);
  // The application gives up (cancel + release) before the answer arrives.
  client.on_thread([&] {
    client.endpoint->cancel(call);
    client.endpoint->release(call);
    return 0;
  });
  std::string ok = "SIP/2.0 200 OK\r\n";
  for (const auto& v : header_lines(*invite, "Via")) ok += v + "\r\n";
  ok += header_lines(*invite, "From").at(0) + "\r\n";
  ok += header_lines(*invite, "To").at(0) + ";tag=late\r\n";
  ok += header_lines(*invite, "Call-ID").at(0) + "\r\n";
  ok += header_lines(*invite, "CSeq").at(0) + "\r\n";
  ok += "Contact: <sip:raw@127.0.0.1:" + std::to_string(peer.port) + ">\r\n";
  ok += "Content-Length: 0\r\n\r\n";
  peer.send(ok);
  EXPECT_TRUE(peer.receive("ACK ", kWait)) << "late 2xx not ACKed";
  EXPECT_TRUE(peer.receive("BYE ", kWait)) << "late 2xx dialog not ended with BYE";
  EXPECT_EQ(client.count(call, "INVITE", 200), 0) << "released call reported";
}

}  // namespace
}  // namespace sgw::sip
