// SofiaLoop: what a sofia-sip endpoint needs besides SIP, shared by Endpoint
// (the UAS) and ClientEndpoint (the UAC): su_init, the su_root event loop and
// its hand-over between threads, a bounded cross-thread post queue woken
// through an eventfd, and one-shot timers. Internal to src/sip; this header
// names no sofia type, so each .cc keeps its own sofia "magic" types.
//
// Thread: create() and the destructor on the owning thread; run() on the SIP
// thread; post() and stop() on any thread; after() on the SIP thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"

struct su_root_s;  // sofia's su_root_t

namespace sgw::sip::detail {

struct SofiaLoopState;  // sofia_loop.cc

class SofiaLoop {
 public:
  // su_init, a root and the wakeup eventfd. Errors carry `error_code`.
  static common::Result<std::unique_ptr<SofiaLoop>> create(const std::string& error_code);
  // Cancels pending timers, destroys the root, su_deinit. Sofia objects bound
  // to the root (agent, legs, transactions) must be gone already: the owner
  // calls obtain(), destroys them, then destroys the loop.
  ~SofiaLoop();
  SofiaLoop(const SofiaLoop&) = delete;
  SofiaLoop& operator=(const SofiaLoop&) = delete;

  su_root_s* root() const;

  // sofia ties a root to the thread that uses it. release() after set-up on
  // the creating thread, so run() can take it on the SIP thread; obtain()
  // takes it back (for destruction) if it was released.
  void release();
  void obtain();

  void run();   // until stop(): takes the root, runs, gives it back
  void stop();  // any thread
  // Runs fn on the loop's thread; false if 65536 closures are already waiting.
  bool post(std::function<void()> fn);
  // Runs fn on the loop's thread after delay_ms (0: the next loop turn).
  void after(std::uint32_t delay_ms, std::function<void()> fn);

 private:
  SofiaLoop();
  std::unique_ptr<SofiaLoopState> state_;
};

}  // namespace sgw::sip::detail
