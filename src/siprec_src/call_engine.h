// CallEngine: places the recording sessions of one siprec-src run and drives each through its
// life: INVITE (target failover, 503/Retry-After, 420 retry without Require), RTP on the 200 OK,
// the --timeline actions, keepalives and re-establishment on another target, and the BYE.
//
// Threading: everything here runs on the ClientEndpoint's thread (the SIP thread), except the
// RtpSender's own thread, which reports finished streams back through ClientEndpoint::post.
// run() blocks until every call has ended or the hard wall-clock limit is reached.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "sip/client_endpoint.h"
#include "siprec_src/audio_source.h"
#include "siprec_src/metadata_template.h"
#include "siprec_src/options.h"
#include "siprec_src/rate_scheduler.h"
#include "siprec_src/rtp_sender.h"
#include "siprec_src/sdp_offer.h"
#include "siprec_src/stats.h"

namespace sgw::siprec_src {

// What the run reports about one call (summary, --json, --verify).
struct CallRecord {
  std::uint64_t index = 0;
  std::string call_id;  // SIP Call-ID of the (first) recording session
  CallIdentity id;
  std::string target;   // where the recording was established (last one with --reestablish)
  std::vector<std::string> targets_tried;
  std::string status = "pending";  // ok | failed
  int code = 0;                    // final SIP status of a failure (0: not SIP)
  std::string reason;
  double setup_ms = -1;  // INVITE sent -> 200 OK (the attempt that succeeded)
  std::uint64_t packets[2] = {0, 0};
  std::uint64_t lost_injected[2] = {0, 0};
  std::uint64_t paused_packets[2] = {0, 0};  // packet times not sent while paused or on hold
  std::vector<std::uint32_t> ssrcs[2];
  std::uint32_t fragments = 0;   // recording sessions established (>1 after re-establishing)
  std::uint32_t duration_ms = 0; // 200 OK -> BYE as planned
  // The session as this client saw it end (-1: it did not end with our BYE answered 2xx): the
  // recorder's session lies inside INVITE sent -> BYE answered and contains 200 OK received ->
  // BYE sent, so its length is within [call_min_ms, call_max_ms] whatever the scheduling delays.
  std::int64_t call_min_ms = -1;
  std::int64_t call_max_ms = -1;
  std::uint32_t silent_ms = 0;   // paused or on hold
  std::vector<std::string> events;
};

struct RunSummary {
  std::uint64_t calls = 0, ok = 0, failed = 0;
  std::map<std::string, std::uint64_t> failures;  // "503", "408", "timeout", ...
  LatencySummary setup;
  std::uint64_t rtp_packets = 0;
  std::uint64_t late_ticks = 0;
  std::uint64_t late_packets = 0;  // sent more than 2 ms after due (RtpSender::late_packets)
  std::uint64_t max_late_ms = 0;
  std::size_t sender_threads = 1;
  double wall_s = 0;
  bool wall_limit_hit = false;
};

class CallEngine : public sip::ClientListener {
 public:
  static common::Result<std::unique_ptr<CallEngine>> create(const Options& options);
  ~CallEngine() override;

  // Resolves the target, places every call, returns when all are done.
  common::Status run();

  const std::vector<CallRecord>& records() const { return records_; }
  RunSummary summary() const;
  nlohmann::json to_json(const RunSummary& s) const;

  void on_response(sip::CallHandle call, const std::string& method,
                   const sip::ClientResponse& r) override;
  void on_request(sip::CallHandle call, sip::TransactionId tx, const sip::Request& request) override;

 private:
  struct Call;
  CallEngine() = default;

  void tick();
  void start_call(std::size_t index);
  void send_invite(Call& c);
  void on_invite_response(Call& c, const sip::ClientResponse& r);
  void on_established(Call& c, const sip::ClientResponse& r);
  void on_invite_failed(Call& c, const sip::ClientResponse& r);
  void try_next_target(Call& c, int code, const std::string& why, std::uint32_t retry_after_s);
  void run_action(Call& c, std::size_t action);
  void send_reinvite(Call& c, const std::string& metadata, bool use_update, sip::HeaderList headers = {});
  void on_reinvite_response(Call& c, const sip::ClientResponse& r);
  // --srtp: why an answer cannot be used (an accepted stream without RTP/SAVP and our suite); "" = fine.
  std::string srtp_answer_problem(const std::vector<AnsweredStream>& answer) const;
  void keepalive(Call& c, std::uint32_t gen);
  void gateway_lost(Call& c, const std::string& why);
  void end_call(Call& c);
  void fail(Call& c, int code, const std::string& why);
  void fail_ending(Call& c, int code, const std::string& why);  // the BYE did not end it cleanly
  void finish(Call& c);
  void stop_streams(Call& c);
  void send_bye(Call& c);  // end_call's BYE, once the call's RTP has stopped
  void maybe_done();
  std::string offer(Call& c, bool paused);
  std::pair<std::string, std::string> body(Call& c, bool paused, const std::string& metadata);
  std::vector<std::size_t> target_order(const Call& c) const;
  void note(Call& c, const std::string& what);
  std::int64_t now_ms() const;

  Options opt_;
  std::unique_ptr<sip::ClientEndpoint> ep_;
  std::unique_ptr<RtpSender> sender_;
  std::vector<sip::Target> targets_;
  std::vector<std::int64_t> target_down_until_;  // ms since start; a target that failed is tried last
  LegAudio audio_;
  std::vector<CallRecord> records_;
  std::vector<std::unique_ptr<Call>> calls_;      // index = record index; reset when done
  std::unordered_map<sip::CallHandle, std::size_t> by_handle_;
  std::vector<StreamId> free_slots_;
  std::vector<double> setup_samples_;
  std::unique_ptr<RateScheduler> scheduler_;  // set by run()
  std::size_t started_ = 0, active_ = 0, done_ = 0, streams_live_ = 0;
  std::int64_t t0_us_ = 0;
  std::int64_t t0_unix_ms_ = 0;  // wall clock at t0_us_: events' "<ms>ms" are from here
  std::int64_t wall_limit_ms_ = 0;
  bool stopping_ = false;
  std::mutex removed_mu_;  // on_removed after the SIP loop ended: one sender thread at a time
  std::atomic<bool> sip_running_{false};  // ep_->run() in progress (read by the sender thread)
  bool wall_hit_ = false;
  double wall_s_ = 0;
  std::string local_host_;
};

}  // namespace sgw::siprec_src
