// SofiaLogTap: requests that sofia-sip's NTA refuses inside the library,
// before any callback of ours runs, made visible.
//
// nta checks every request for Via, From, To, Call-ID and CSeq (and a CSeq
// method equal to the request's) itself (sip_sanity_check), with no option to
// turn it off and no hook: such a request is answered 400 by nta when it has a
// Via and is not an ACK, and on TCP the connection is shut down after that
// answer (TPTAG_SDWN_AFTER, hard-coded); without a Via, or an ACK, it is
// dropped and the connection half-closed at once. The only place sofia says so
// is its debug log. The tap redirects nta's and tport's logs (otherwise
// silent), reads only the lines that matter — which peer the message came
// from (tport_deliver), "failed sanity check", "has bad <X> header", "is
// <status phrase>" — and reports each such request once, after nta is done
// with it. Lines are matched by their format string, without formatting the
// others. The format strings are those of the packaged sofia-sip 1.12.11; the
// integration test integration.sip_robustness asserts on the result.
//
// Thread: lines logged on other threads (another agent in the same process)
// are ignored; reports are made on the SIP thread via `defer`.
#pragma once

#include <cstdarg>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace sgw::sip::detail {

// Peer-supplied text for a log line or a reason phrase: printable ASCII only ('?' for the
// rest), at most max characters.
std::string printable(std::string_view s, std::size_t max = 80);

struct StackRefusal {
  std::string peer;     // "tcp:IP:PORT" ("?" if unknown)
  std::string method;   // as in the request line
  std::string problem;  // e.g. "bad Via header", "failed sanity check"
  std::string outcome;  // "answered 400 Bad Request by sofia; connection shut down" ...
};

class SofiaLogTap {
 public:
  using Report = std::function<void(const StackRefusal&)>;
  using Defer = std::function<void(std::function<void()>)>;  // run after the current sofia callback
  // Redirects nta's and tport's logs to this tap (levels 5 and 7; nothing is
  // printed). One tap per process; the destructor restores silence.
  SofiaLogTap(Report report, Defer defer);
  ~SofiaLogTap();
  SofiaLogTap(const SofiaLogTap&) = delete;
  SofiaLogTap& operator=(const SofiaLogTap&) = delete;

  // The thread that runs sofia (set when it starts running).
  void set_thread(std::thread::id id) { thread_ = id; }

  // One log line (public for the C callback).
  void line(const char* fmt, va_list ap);

 private:
  void arm();
  void flush();  // reports the pending refusal, if any

  Report report_;
  Defer defer_;
  std::thread::id thread_;
  std::string last_peer_ = "?";  // where the message being delivered came from
  bool armed_ = false;
  StackRefusal pending_;
};

}  // namespace sgw::sip::detail
