#include "sip/sofia_log_tap.h"

#include <sofia-sip/su_log.h>

#include <cstdio>
#include <string_view>

extern "C" su_log_t tport_log[];
extern "C" su_log_t nta_log[];

namespace sgw::sip::detail {

namespace {

SofiaLogTap* g_tap = nullptr;  // su_log is process-wide

extern "C" void tap_logger(void* stream, char const* fmt, va_list ap) {
  if (stream != nullptr && fmt != nullptr) static_cast<SofiaLogTap*>(stream)->line(fmt, ap);
}

std::string format(const char* fmt, va_list ap) {
  char buf[768];
  va_list copy;
  va_copy(copy, ap);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  int n = std::vsnprintf(buf, sizeof buf, fmt, copy);
#pragma GCC diagnostic pop
  va_end(copy);
  if (n < 0) return {};
  std::string out(buf, static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

bool starts(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

}  // namespace

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) break;
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  return out;
}

SofiaLogTap::SofiaLogTap(Report report, Defer defer)
    : report_(std::move(report)), defer_(std::move(defer)) {
  g_tap = this;
  su_log_redirect(nta_log, &tap_logger, this);
  su_log_redirect(tport_log, &tap_logger, this);
  su_log_set_level(nta_log, 5);    // "failed sanity check", "has bad X header", "is <phrase>"
  su_log_set_level(tport_log, 7);  // tport_deliver: the peer of each message
}

SofiaLogTap::~SofiaLogTap() {
  if (g_tap != this) return;
  g_tap = nullptr;
  su_log_set_level(nta_log, 0);
  su_log_set_level(tport_log, 0);
  su_log_redirect(nta_log, nullptr, nullptr);
  su_log_redirect(tport_log, nullptr, nullptr);
}

void SofiaLogTap::arm() {
  if (armed_) return;
  armed_ = true;
  pending_.peer = last_peer_;
  defer_([this] { flush(); });
}

void SofiaLogTap::flush() {
  if (!armed_) return;
  armed_ = false;
  StackRefusal r = std::move(pending_);
  pending_ = {};
  if (r.outcome.empty())
    r.outcome = starts(r.peer, "tcp") || starts(r.peer, "tls")
                    ? "dropped by sofia without an answer; connection half-closed"
                    : "dropped by sofia without an answer";
  report_(r);
}

void SofiaLogTap::line(const char* fmt, va_list ap) {
  if (std::this_thread::get_id() != thread_) return;
  std::string_view f(fmt);
  // tport_deliver: "%s(%p): %smsg %p (%zu bytes) from %s/%s:%s%s%s%s%s next=%p"
  if (f.find("msg %p (%zu bytes) from ") != std::string_view::npos) {
    flush();  // the previous message's refusal, if the deferred report has not run yet
    std::string s = format(fmt, ap);
    auto from = s.find(" bytes) from ");
    auto next = s.rfind(" next=");
    if (from != std::string::npos && next != std::string::npos && next > from + 13) {
      std::string peer = s.substr(from + 13, next - from - 13);
      if (auto slash = peer.find('/'); slash != std::string::npos) peer[slash] = ':';
      last_peer_ = printable(peer);
    }
    return;
  }
  if (!starts(f, "nta: %s ")) return;
  if (starts(f, "nta: %s (%u) %s")) {
    std::string s = format(fmt, ap);
    for (std::string_view what : {"failed sanity check", "has invalid Via"}) {
      if (s.size() >= what.size() && std::string_view(s).substr(s.size() - what.size()) == what) {
        arm();
        pending_.method = printable(s.substr(5, s.find(' ', 5) - 5), 32);
        pending_.problem += (pending_.problem.empty() ? "" : "; ") +
                            std::string(what == "failed sanity check"
                                            ? "a Via, From, To, Call-ID or CSeq header missing or unparsable, or a CSeq method other than the request's"
                                            : "a Via for another transport");
      }
    }
  } else if (starts(f, "nta: %s has bad %s header")) {
    std::string s = format(fmt, ap);
    arm();
    auto has = s.find(" has bad ");
    pending_.method = printable(s.substr(5, has == std::string::npos ? 0 : has - 5), 32);
    if (has != std::string::npos)
      pending_.problem += (pending_.problem.empty() ? "" : "; ") + printable(s.substr(has + 5), 80);
  } else if (starts(f, "nta: %s (%u) is %s") && armed_) {
    std::string s = format(fmt, ap);
    auto is = s.find(") is ");
    if (is != std::string::npos)
      pending_.outcome = "answered 400 " + printable(s.substr(is + 5), 60) + " by sofia" +
                         (starts(pending_.peer, "tcp") || starts(pending_.peer, "tls")
                              ? "; connection shut down after the answer"
                              : "");
  }
}

}  // namespace sgw::sip::detail
