#include "sip/sofia_loop.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace sgw::sip::detail {
struct SofiaLoopState;
struct SofiaLoopTimer;
}  // namespace sgw::sip::detail

#define SU_ROOT_MAGIC_T sgw::sip::detail::SofiaLoopState
#define SU_WAKEUP_ARG_T sgw::sip::detail::SofiaLoopState
#define SU_TIMER_ARG_T sgw::sip::detail::SofiaLoopTimer

#include <sofia-sip/su.h>
#include <sofia-sip/su_time.h>
#include <sofia-sip/su_wait.h>

// libsofia-sip-ua's clock hook (su_time0.c, "hooks for testing timing and timers"; exported by
// Debian 12's libsofia-sip-ua0, not declared in its headers): su_time() - and so su_now(), by
// which every su_timer and the loop's poll timeout are reckoned - reads CLOCK_REALTIME, then
// lets this function change the result.
extern "C" {
extern void (*_su_time)(su_time_t* tv);  // NOLINT(bugprone-reserved-identifier): the library's name
}

namespace sgw::sip::detail {

namespace {
constexpr std::size_t kMaxPosted = 65536;

std::int64_t monotonic_us() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return std::int64_t{t.tv_sec} * 1'000'000 + t.tv_nsec / 1000;
}

// sofia's clock, made steady: the wall time when it was installed, advanced by CLOCK_MONOTONIC.
// Without it a step of the wall clock (NTP, a VM's clock sync) moves every SIP timer by the
// step: a forward step fires them early (a session-timer expiry, siprec-src's end of a call,
// transaction timeouts), a backward one holds them back. The project's timestamps (recording
// start times, logs) come from the system clock, not from sofia's; the stack adds no Date header.
std::int64_t g_sofia_base_us = 0;  // NTP-epoch µs at install
std::int64_t g_mono_base_us = 0;

void steady_su_time(su_time_t* tv) {
  const std::int64_t us = g_sofia_base_us + (monotonic_us() - g_mono_base_us);
  tv->tv_sec = static_cast<unsigned long>(us / 1'000'000);
  tv->tv_usec = static_cast<unsigned long>(us % 1'000'000);
}

void make_sofia_clock_steady() {
  static std::once_flag once;
  std::call_once(once, [] {
    su_time_t now{};
    su_time(&now);  // the wall clock, NTP epoch (no hook installed yet)
    g_sofia_base_us = static_cast<std::int64_t>(now.tv_sec) * 1'000'000 + static_cast<std::int64_t>(now.tv_usec);
    g_mono_base_us = monotonic_us();
    _su_time = &steady_su_time;
  });
}
}  // namespace

struct SofiaLoopTimer {
  SofiaLoopState* loop = nullptr;
  su_timer_t* timer = nullptr;
  std::function<void()> fn;
};

struct SofiaLoopState {
  bool su_initialised = false;
  su_root_t* root = nullptr;
  bool released = false;
  int event_fd = -1;
  su_wait_t wait[1] = {};
  std::mutex post_mutex;
  std::deque<std::function<void()>> posted;
  std::unordered_map<SofiaLoopTimer*, std::unique_ptr<SofiaLoopTimer>> timers;

  static int on_wakeup(SofiaLoopState* self, su_wait_t* /*w*/, SofiaLoopState* /*arg*/) {
    std::uint64_t n = 0;
    if (::read(self->event_fd, &n, sizeof n) < 0) { /* spurious wakeup */ }
    std::deque<std::function<void()>> batch;
    {
      std::lock_guard lock(self->post_mutex);
      batch.swap(self->posted);
    }
    for (auto& fn : batch) fn();
    return 0;
  }

  static void on_timer(SofiaLoopState* /*magic*/, su_timer_t* /*t*/, SofiaLoopTimer* rec) {
    auto fn = std::move(rec->fn);
    su_timer_destroy(rec->timer);
    rec->loop->timers.erase(rec);
    fn();
  }
};

SofiaLoop::SofiaLoop() : state_(std::make_unique<SofiaLoopState>()) {}

SofiaLoop::~SofiaLoop() {
  auto& s = *state_;
  if (s.root && s.released) su_root_obtain(s.root);
  for (auto& [p, t] : s.timers) su_timer_destroy(t->timer);
  s.timers.clear();
  if (s.root) su_root_destroy(s.root);
  if (s.event_fd >= 0) close(s.event_fd);
  if (s.su_initialised) su_deinit();
}

common::Result<std::unique_ptr<SofiaLoop>> SofiaLoop::create(const std::string& error_code) {
  std::unique_ptr<SofiaLoop> loop(new SofiaLoop());
  auto& s = *loop->state_;
  make_sofia_clock_steady();  // before any timer is set
  if (su_init() != 0) return common::make_error(error_code, "su_init failed");
  s.su_initialised = true;
  s.root = su_root_create(&s);
  if (s.root == nullptr) return common::make_error(error_code, "su_root_create failed");
  s.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.event_fd < 0) return common::make_error(error_code, "eventfd failed");
  su_wait_create(s.wait, s.event_fd, SU_WAIT_IN);
  if (su_root_register(s.root, s.wait, &SofiaLoopState::on_wakeup, &s, 0) < 0)
    return common::make_error(error_code, "su_root_register failed");
  return loop;
}

su_root_s* SofiaLoop::root() const { return state_->root; }

void SofiaLoop::release() {
  if (state_->released) return;
  su_root_release(state_->root);
  state_->released = true;
}

void SofiaLoop::obtain() {
  if (!state_->released) return;
  su_root_obtain(state_->root);
  state_->released = false;
}

void SofiaLoop::run() {
  su_root_obtain(state_->root);
  su_root_run(state_->root);
  su_root_release(state_->root);  // the destructor, on another thread, obtains it again
}

void SofiaLoop::stop() {
  post([this] { su_root_break(state_->root); });
}

bool SofiaLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(state_->post_mutex);
    if (state_->posted.size() >= kMaxPosted) return false;
    state_->posted.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  if (::write(state_->event_fd, &one, sizeof one) < 0) { /* counter saturated: a wakeup is pending */ }
  return true;
}

void SofiaLoop::after(std::uint32_t delay_ms, std::function<void()> fn) {
  auto rec = std::make_unique<SofiaLoopTimer>();
  rec->loop = state_.get();
  rec->fn = std::move(fn);
  // su_timer asserts on a zero duration: "now" means the next loop turn, 1 ms.
  rec->timer = su_timer_create(su_root_task(state_->root), delay_ms == 0 ? 1 : delay_ms);
  SofiaLoopTimer* p = rec.get();
  state_->timers.emplace(p, std::move(rec));
  su_timer_set(p->timer, &SofiaLoopState::on_timer, p);
}

}  // namespace sgw::sip::detail
