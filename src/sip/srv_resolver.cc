// c-ares implementation of SIP target selection (RFC 3263 §4.1-4.2 without
// NAPTR, RFC 2782 ordering). One channel per call, driven by a poll() loop
// bounded by one overall deadline.

#include "sip/srv_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>

#include "common/strings.h"

namespace sgw::sip {

namespace {

using Clock = std::chrono::steady_clock;

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string dns_problem(int status) {
  switch (status) {
    case ARES_ENOTFOUND: return "NXDOMAIN (name does not exist)";
    case ARES_ENODATA: return "no records of that type";
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED: return "timeout (no answer from the DNS server)";
    case ARES_ECONNREFUSED: return "connection refused by the DNS server";
    case ARES_ESERVFAIL: return "SERVFAIL";
    case ARES_EREFUSED: return "query REFUSED by the DNS server";
    default: return ares_strerror(status);
  }
}

// "Nothing there" as opposed to "could not ask".
bool is_absent(int status) { return status == ARES_ENOTFOUND || status == ARES_ENODATA; }

void library_init() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

// One c-ares channel and the loop that drives it until every query answered
// or the deadline passed.
class Channel {
 public:
  ~Channel() {
    if (channel_ != nullptr) ares_destroy(channel_);
  }

  common::Status init(const ResolverOptions& o, Clock::time_point deadline) {
    library_init();
    deadline_ = deadline;
    struct ares_options opts = {};
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    // SIP hosts are fully qualified (RFC 3263 §4): no resolv.conf search list.
    opts.flags = ARES_FLAG_NOSEARCH;
    int budget = std::max(o.timeout_ms, 1);
    opts.timeout = std::max(budget / 3, 50);  // per try; the deadline bounds the total
    opts.tries = 3;
    std::string lookups = "b";
    if (!o.servers.empty()) {
      mask |= ARES_OPT_LOOKUPS;
      opts.lookups = lookups.data();
    }
    int rc = ares_init_options(&channel_, &opts, mask);
    if (rc != ARES_SUCCESS)
      return common::make_error("dns.init", std::string("c-ares init: ") + ares_strerror(rc));
    if (!o.servers.empty()) {
      std::string csv;
      for (const auto& s : o.servers) csv += (csv.empty() ? "" : ",") + s;
      rc = ares_set_servers_ports_csv(channel_, csv.c_str());
      if (rc != ARES_SUCCESS)
        return common::make_error("dns.servers",
                                  "bad DNS server list '" + csv + "': " + ares_strerror(rc));
    }
    return common::Ok{};
  }

  ares_channel get() const { return channel_; }

  // Runs until no query is pending. Returns false when the deadline passed
  // (pending queries are then cancelled: their callbacks see ARES_ECANCELLED).
  bool run(const int& pending) {
    while (pending > 0) {
      auto now = Clock::now();
      if (now >= deadline_) {
        ares_cancel(channel_);
        return false;
      }
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - now);
      struct timeval maxtv;
      maxtv.tv_sec = static_cast<time_t>(left.count() / 1000000);
      maxtv.tv_usec = static_cast<suseconds_t>(left.count() % 1000000);
      struct timeval tv;
      struct timeval* tvp = ares_timeout(channel_, &maxtv, &tv);
      int wait_ms = static_cast<int>(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);

      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      int bits = ares_getsock(channel_, socks, ARES_GETSOCK_MAXNUM);
      std::vector<pollfd> fds;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev != 0) fds.push_back(pollfd{socks[i], ev, 0});
      }
      int n = poll(fds.data(), fds.size(), wait_ms);
      bool any = false;
      if (n > 0) {
        for (const auto& p : fds) {
          if (p.revents == 0) continue;
          any = true;
          bool r = (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0;
          bool w = (p.revents & POLLOUT) != 0;
          ares_process_fd(channel_, r ? p.fd : ARES_SOCKET_BAD, w ? p.fd : ARES_SOCKET_BAD);
        }
      }
      if (!any) ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
    }
    return true;
  }

 private:
  ares_channel channel_ = nullptr;
  Clock::time_point deadline_;
};

struct SrvQuery {
  std::string name;
  std::string transport;
  int* pending = nullptr;
  int status = ARES_ETIMEOUT;
  std::vector<SrvRecord> records;
};

void on_srv(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  auto* q = static_cast<SrvQuery*>(arg);
  --*q->pending;
  q->status = status;
  if (status != ARES_SUCCESS) return;
  struct ares_srv_reply* reply = nullptr;
  int rc = ares_parse_srv_reply(abuf, alen, &reply);
  if (rc != ARES_SUCCESS) {
    q->status = rc;
    return;
  }
  for (auto* r = reply; r != nullptr; r = r->next) {
    SrvRecord rec;
    rec.target = r->host ? r->host : "";
    while (!rec.target.empty() && rec.target.back() == '.') rec.target.pop_back();
    rec.priority = r->priority;
    rec.weight = r->weight;
    rec.port = r->port;
    q->records.push_back(std::move(rec));
  }
  ares_free_data(reply);
}

struct AddrQuery {
  std::string name;
  int* pending = nullptr;
  int status = ARES_ETIMEOUT;
  std::vector<std::string> addresses;  // answer order, IPv4 and IPv6 as they come
};

void on_addr(void* arg, int status, int /*timeouts*/, struct ares_addrinfo* res) {
  auto* q = static_cast<AddrQuery*>(arg);
  --*q->pending;
  q->status = status;
  if (res == nullptr) return;
  for (auto* n = res->nodes; n != nullptr; n = n->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (n->ai_family == AF_INET && n->ai_addr) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
      inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
    } else if (n->ai_family == AF_INET6 && n->ai_addr) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
      inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
    } else {
      continue;
    }
    std::string a(buf);
    if (std::find(q->addresses.begin(), q->addresses.end(), a) == q->addresses.end())
      q->addresses.push_back(std::move(a));
  }
  ares_freeaddrinfo(res);
}

void start_addr(ares_channel ch, AddrQuery& q) {
  struct ares_addrinfo_hints hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = ARES_AI_NOSORT;  // keep the DNS order; no probing sockets
  ++*q.pending;
  ares_getaddrinfo(ch, q.name.c_str(), nullptr, &hints, &on_addr, &q);
}

common::Error dns_error(const std::string& uri, const std::string& what) {
  return common::make_error("dns.resolve", "cannot resolve " + uri + ": " + what);
}

}  // namespace

common::Result<SipUriTarget> parse_sip_uri_target(const std::string& uri) {
  auto bad = [&](const std::string& why) {
    return common::make_error("sip.uri", "bad SIP URI '" + uri + "': " + why);
  };
  std::string_view s = common::trim(uri);
  if (s.size() >= 1 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
  SipUriTarget t;
  if (common::istarts_with(s, "sips:")) {
    t.sips = true;
    s.remove_prefix(5);
  } else if (common::istarts_with(s, "sip:")) {
    s.remove_prefix(4);
  }
  if (auto q = s.find('?'); q != std::string_view::npos) s = s.substr(0, q);
  std::string_view params;
  if (auto semi = s.find(';'); semi != std::string_view::npos) {
    params = s.substr(semi + 1);
    s = s.substr(0, semi);
  }
  if (auto at = s.rfind('@'); at != std::string_view::npos) s.remove_prefix(at + 1);
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6] host");
    t.host = std::string(s.substr(1, close - 1));
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("junk after ]");
      port = rest.substr(1);
    }
    if (!is_ip_literal(t.host)) return bad("[" + t.host + "] is not an IPv6 address");
  } else {
    auto colon = s.find(':');
    t.host = std::string(s.substr(0, colon));
    if (colon != std::string_view::npos) port = s.substr(colon + 1);
  }
  if (t.host.empty()) return bad("no host");
  for (char c : t.host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
          c == ':'))
      return bad("invalid character in host");
  if (!port.empty() || s.find(':') != std::string_view::npos) {
    unsigned v = 0;
    if (port.empty() || port.size() > 5) return bad("bad port");
    for (char c : port) {
      if (c < '0' || c > '9') return bad("bad port");
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return bad("port out of range");
    t.port = static_cast<std::uint16_t>(v);
  }
  for (auto p : common::split(params, ';')) {
    p = common::trim(p);
    if (common::istarts_with(p, "transport=")) t.transport = common::to_lower(p.substr(10));
  }
  if (!t.transport.empty() && t.transport != "udp" && t.transport != "tcp" && t.transport != "tls")
    return bad("unsupported transport '" + t.transport + "'");
  t.host_is_ip = is_ip_literal(t.host);
  return t;
}

std::vector<SrvRecord> order_srv_records(std::vector<SrvRecord> records, std::mt19937& rng) {
  std::stable_sort(records.begin(), records.end(),
                   [](const SrvRecord& a, const SrvRecord& b) { return a.priority < b.priority; });
  std::vector<SrvRecord> out;
  out.reserve(records.size());
  std::size_t i = 0;
  while (i < records.size()) {
    std::size_t j = i;
    while (j < records.size() && records[j].priority == records[i].priority) ++j;
    // RFC 2782: "arrange all SRV RRs (that have not been ordered yet) in any
    // order, except that all those with weight 0 are placed at the beginning".
    std::vector<SrvRecord> group(records.begin() + static_cast<std::ptrdiff_t>(i),
                                 records.begin() + static_cast<std::ptrdiff_t>(j));
    std::stable_partition(group.begin(), group.end(), [](const SrvRecord& r) { return r.weight == 0; });
    while (!group.empty()) {
      std::uint32_t total = 0;
      for (const auto& r : group) total += r.weight;
      // "choose a uniform random number between 0 and the sum computed
      // (inclusive), and select the RR whose running sum value is the first
      // in the selected order which is greater than or equal to the random number".
      std::uniform_int_distribution<std::uint32_t> dist(0, total);
      std::uint32_t pick = dist(rng);
      std::uint32_t running = 0;
      std::size_t k = 0;
      for (; k < group.size(); ++k) {
        running += group[k].weight;
        if (running >= pick) break;
      }
      if (k == group.size()) k = group.size() - 1;  // unreachable: running ends at total
      out.push_back(std::move(group[k]));
      group.erase(group.begin() + static_cast<std::ptrdiff_t>(k));
    }
    i = j;
  }
  return out;
}

common::Result<std::vector<Target>> resolve_targets(const std::string& sip_uri,
                                                    const ResolverOptions& options) {
  auto parsed = parse_sip_uri_target(sip_uri);
  if (!parsed) return parsed.error();
  const SipUriTarget& u = *parsed;
  std::string default_transport = !u.transport.empty() ? u.transport : (u.sips ? "tls" : "udp");
  std::uint16_t default_port = u.sips ? 5061 : 5060;

  // RFC 3263 §4.2: a numeric IP address is used as it is.
  if (u.host_is_ip) {
    return std::vector<Target>{
        Target{default_transport, u.host, u.port != 0 ? u.port : default_port}};
  }

  auto deadline = Clock::now() + std::chrono::milliseconds(std::max(options.timeout_ms, 1));
  Channel ch;
  if (auto st = ch.init(options, deadline); !st) return st.error();
  int pending = 0;

  auto resolve_host = [&](const std::string& host, std::uint16_t port,
                          const std::string& transport) -> common::Result<std::vector<Target>> {
    AddrQuery q;
    q.name = host;
    q.pending = &pending;
    start_addr(ch.get(), q);
    if (!ch.run(pending)) return dns_error(sip_uri, host + " A/AAAA: " + dns_problem(ARES_ETIMEOUT));
    if (q.status != ARES_SUCCESS || q.addresses.empty())
      return dns_error(sip_uri, host + " A/AAAA: " +
                                    dns_problem(q.status == ARES_SUCCESS ? ARES_ENODATA : q.status));
    std::vector<Target> out;
    for (const auto& a : q.addresses) out.push_back(Target{transport, a, port});
    return out;
  };

  // RFC 3263 §4.2: a port without an IP address means A/AAAA, no SRV.
  if (u.port != 0) return resolve_host(u.host, u.port, default_transport);

  // RFC 3263 §4.1 (no NAPTR): SRV for the transport asked for, or for each
  // transport we support.
  std::vector<std::unique_ptr<SrvQuery>> srv;
  auto add_srv = [&](const std::string& service, const std::string& transport) {
    auto q = std::make_unique<SrvQuery>();
    q->name = service + u.host;
    q->transport = transport;
    q->pending = &pending;
    srv.push_back(std::move(q));
  };
  if (u.sips) {
    add_srv("_sips._tcp.", "tls");
  } else if (!u.transport.empty()) {
    add_srv(u.transport == "tls" ? "_sips._tcp." : "_sip._" + u.transport + ".", u.transport);
  } else if (options.prefer_tcp) {
    add_srv("_sip._tcp.", "tcp");
    add_srv("_sip._udp.", "udp");
  } else {
    add_srv("_sip._udp.", "udp");
    add_srv("_sip._tcp.", "tcp");
  }
  for (auto& q : srv) {
    ++pending;
    ares_query(ch.get(), q->name.c_str(), 1 /* C_IN */, 33 /* T_SRV */, &on_srv, q.get());
  }
  if (!ch.run(pending))
    return dns_error(sip_uri, srv.front()->name + " SRV: " + dns_problem(ARES_ETIMEOUT));

  bool any_records = false;
  std::string problems;
  for (const auto& q : srv) {
    if (q->status == ARES_SUCCESS && !q->records.empty()) {
      any_records = true;
      continue;
    }
    if (!is_absent(q->status))
      problems += (problems.empty() ? "" : "; ") + q->name + " SRV: " + dns_problem(q->status);
  }
  if (!any_records) {
    // A failed lookup is not "no SRV records": do not guess past a broken DNS.
    if (!problems.empty()) return dns_error(sip_uri, problems);
    // RFC 3263 §4.2: no SRV records -> A/AAAA of the host, default port.
    return resolve_host(u.host, default_port, default_transport);
  }

  std::mt19937 rng(options.seed != 0 ? options.seed : std::random_device{}());
  struct Ordered {
    SrvRecord record;
    std::string transport;
  };
  std::vector<Ordered> ordered;
  bool unavailable = false;
  for (const auto& q : srv) {
    // RFC 2782: a single record with target "." says the service is not offered.
    if (q->records.size() == 1 && q->records.front().target.empty()) {
      unavailable = true;
      continue;
    }
    for (auto& r : order_srv_records(q->records, rng))
      if (!r.target.empty()) ordered.push_back(Ordered{std::move(r), q->transport});
  }
  if (ordered.empty())
    return dns_error(sip_uri, unavailable ? "SRV says the service is not available here (target \".\")"
                                          : "SRV records without targets");

  // Resolve every distinct target name at once.
  std::map<std::string, std::unique_ptr<AddrQuery>> addrs;
  for (const auto& o : ordered) {
    if (addrs.count(o.record.target)) continue;
    auto q = std::make_unique<AddrQuery>();
    q->name = o.record.target;
    q->pending = &pending;
    AddrQuery* p = q.get();
    addrs.emplace(o.record.target, std::move(q));
    start_addr(ch.get(), *p);
  }
  bool finished = ch.run(pending);

  std::vector<Target> out;
  std::string failed;
  for (const auto& o : ordered) {
    const AddrQuery& q = *addrs.at(o.record.target);
    if (q.addresses.empty()) {
      int st = !finished && q.status == ARES_ECANCELLED ? ARES_ETIMEOUT : q.status;
      std::string line = o.record.target + " A/AAAA: " +
                         dns_problem(st == ARES_SUCCESS ? ARES_ENODATA : st);
      if (failed.find(line) == std::string::npos) failed += (failed.empty() ? "" : "; ") + line;
      continue;
    }
    for (const auto& a : q.addresses) {
      Target t{o.transport, a, o.record.port};
      bool dup = std::any_of(out.begin(), out.end(), [&](const Target& x) {
        return x.transport == t.transport && x.host == t.host && x.port == t.port;
      });
      if (!dup) out.push_back(std::move(t));
    }
  }
  if (out.empty()) return dns_error(sip_uri, "no SRV target resolved: " + failed);
  return out;
}

}  // namespace sgw::sip
