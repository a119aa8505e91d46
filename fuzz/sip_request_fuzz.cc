// libFuzzer target: one SIP request as the gateway receives it. The raw bytes
// are parsed by sofia-sip's message parser (msg_t, as the transport does),
// converted by the same code the Endpoint uses (sip/sofia_headers.cc:
// request_from_sip), and handed to the SessionManager's policy with a fake
// endpoint, media engine and spool: out-of-dialog as the endpoint would (ACK,
// CANCEL, To-tag and unparsable-header requests are filtered as in
// endpoint.cc), then, when the INVITE was accepted, the same message again
// inside the dialog (re-INVITE/UPDATE/INFO/BYE paths), the ACK and a BYE.
// Faults (no ports, busy workers, storage that cannot be created or made
// durable) are chosen from the input's length so every input exercises one
// fixed combination. Seed corpus: fuzz/corpus/fuzz_sip_request (RFC 4475
// torture messages, vendor SIPREC INVITEs).
#include <sofia-sip/msg.h>
#include <sofia-sip/msg_parser.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/logging.h"
#include "media/media_engine.h"
#include "sip/sofia_headers.h"
#include "siprec/session_manager.h"

#pragma GCC diagnostic ignored "-Wold-style-cast"

namespace {

using namespace sgw;

class FakeEndpoint final : public sip::Endpoint {
 public:
  void reply(sip::TransactionId, const sip::Response& r) override { last_status = r.status; }
  sip::DialogId accept_invite(sip::TransactionId, const sip::Response& r) override {
    last_status = r.status;
    accepted = next_dialog;
    return next_dialog++;
  }
  void send_bye(sip::DialogId d, const sip::HeaderList&) override { byes.push_back(d); }
  bool send_refresh(sip::DialogId, const sip::HeaderList&) override { return true; }
  void release_dialog(sip::DialogId) override {}
  void run() override {}
  void stop() override {}
  bool post(std::function<void()> fn) override {
    posted.push_back(std::move(fn));
    return true;
  }
  // Timers (session timer, timer H, answer delay) run at once: their paths are input paths too.
  void after(std::uint32_t, std::function<void()> fn) override { post(std::move(fn)); }
  std::vector<std::string> bound_addresses() const override { return {}; }
  void run_posted() {
    for (int rounds = 0; rounds < 8 && !posted.empty(); ++rounds) {
      std::deque<std::function<void()>> batch;
      batch.swap(posted);
      for (auto& fn : batch) fn();
    }
    posted.clear();
  }

  int last_status = 0;
  sip::DialogId accepted = 0;
  sip::DialogId next_dialog = 100;
  std::vector<sip::DialogId> byes;
  std::deque<std::function<void()>> posted;
};

class NullSink final : public media::SessionSink {
 public:
  void start(std::int64_t) override {}
  void on_rtp(std::uint8_t, std::int64_t, const media::RtpPacketView&) override {}
  void on_event(std::int64_t, std::string_view) override {}
  void on_metadata(std::int64_t, std::string_view) override {}
  void on_tick(std::int64_t) override {}
  void finish(std::int64_t, std::string_view) override {}
};

class FakeMedia final : public media::MediaEngine {
 public:
  media::SessionHandle reserve_session(const std::string&) override { return workers_busy ? 0 : next++; }
  void start_session(media::SessionHandle, std::unique_ptr<media::SessionSink>, std::int64_t) override {}
  common::Result<media::OpenedStream> open_stream(media::SessionHandle, const media::StreamSpec&) override {
    if (ports_left == 0) return common::make_error("media.no_ports", "no free RTP port pair");
    --ports_left;
    ++next_stream;
    return media::OpenedStream{next_stream, static_cast<std::uint16_t>(20000 + 2 * (next_stream % 1000))};
  }
  void update_stream(media::SessionHandle, media::StreamId, const media::StreamSpec&) override {}
  void close_stream(media::SessionHandle, media::StreamId) override { ++ports_left; }
  void post_event(media::SessionHandle, std::string) override {}
  void post_metadata(media::SessionHandle, std::string) override {}
  void close_session(media::SessionHandle, std::string, std::function<void()> cb) override {
    if (cb) cb();
  }
  std::size_t open_streams() const override { return 0; }
  void stop() override {}

  bool workers_busy = false;
  int ports_left = 64;
  media::SessionHandle next = 1;
  media::StreamId next_stream = 0;
};

// What the endpoint does before a request reaches the session manager
// (endpoint.cc: check_malformed, on_default_request): true when it would be
// delivered as an out-of-dialog request.
bool delivered_out_of_dialog(msg_t* msg, sip_t const* sip) {
  if (sip->sip_request == nullptr) return false;
  auto method = sip->sip_request->rq_method;
  if (method == sip_method_ack || method == sip_method_cancel) return false;
  if (sip->sip_error != nullptr) {
    constexpr unsigned kBadRequestMask =
        ~(static_cast<unsigned>(sip_mask_response) | static_cast<unsigned>(sip_mask_proxy));
    if ((msg_extract_errors(msg) & kBadRequestMask) != 0) {
      (void)sip::detail::request_from_sip(sip);  // converted for the log line there, too
      return false;
    }
  }
  return !(sip->sip_to && sip->sip_to->a_tag);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  common::init_logging("off");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // msg_make: one complete message from a buffer, as a datagram transport delivers it.
  msg_t* msg = msg_make(sip_default_mclass(), 0, data, static_cast<isize_t>(size));
  if (msg == nullptr) return 0;
  sip_t const* sip = sip_object(msg);
  if (sip == nullptr || !delivered_out_of_dialog(msg, sip)) {
    if (sip && sip->sip_request) (void)sip::detail::request_from_sip(sip);
    msg_destroy(msg);
    return 0;
  }
  sip::Request req = sip::detail::request_from_sip(sip);
  msg_destroy(msg);
  req.transport = "udp";
  req.local_host = "127.0.0.1";
  req.local_port = "5060";
  req.source_address = (size % 5 == 0) ? "192.0.2.1" : "127.0.0.1";  // outside / inside allowed_sources

  FakeEndpoint endpoint;
  FakeMedia media;
  media.workers_busy = size % 17 == 0;
  media.ports_left = size % 7 == 0 ? 1 : 64;
  const bool sink_fails = size % 13 == 0;
  const bool durable_fails = size % 11 == 0;

  siprec::Policy policy;
  policy.recordings_dir = "/nonexistent/fuzz";  // nothing is written
  policy.max_sessions = 4;
  policy.codecs.preference = {"PCMA", "PCMU", "G722", "opus", "G729"};
  auto allowed = sip::SourceAllowList::parse({"127.0.0.0/8", "::1"});
  if (allowed) policy.admission.allowed_sources = std::move(allowed).value();
  policy.admission.invite_rate_per_source = 1;
  policy.admission.invite_burst_per_source = 2;
  policy.admission.max_sessions_per_source = 2;
  policy.admission.max_streams_per_session = 16;
  common::Gauge active;
  common::LabelledCounter by_code("code"), by_method("method"), limits("cap"), unfit("reason");
  common::Counter metadata_errors, storage_failures, delayed;
  siprec::SessionMetrics metrics{&active, &by_code, &by_method, &metadata_errors, &storage_failures};
  metrics.delayed_offer_failures = &delayed;
  metrics.unfit_refusals = &unfit;
  metrics.limits_hit = &limits;
  {
    siprec::SessionManager manager(
        policy, &media, metrics,
        [&](siprec::SinkRequest r) -> common::Result<std::unique_ptr<media::SessionSink>> {
          if (sink_fails) return common::make_error("spool.create", "injected");
          if (durable_fails) r.on_durable(common::make_error("spool.sync", "injected"));
          else r.on_durable(common::Ok{});
          return std::unique_ptr<media::SessionSink>(std::make_unique<NullSink>());
        },
        nullptr);
    manager.attach(&endpoint);
    manager.on_request(1, req);
    endpoint.run_posted();
    if (endpoint.accepted != 0) {
      sip::DialogId d = endpoint.accepted;
      // The ACK carries the message's body: for a delayed offer it is the SRC's SDP answer.
      sip::Request ack = req;
      ack.method = "ACK";
      manager.on_ack(d, ack);
      // The same message again inside the dialog: a re-INVITE, UPDATE, INFO or BYE as sent.
      sip::Request again = req;
      again.cseq += 1;
      manager.on_dialog_request(d, 2, again);
      endpoint.run_posted();
      manager.on_ack(d, ack);
      sip::Request bye = req;
      bye.method = "BYE";
      bye.cseq += 2;
      bye.body.clear();
      bye.content_type.clear();
      manager.on_dialog_request(d, 3, bye);
      endpoint.run_posted();
      for (auto b : endpoint.byes) manager.on_bye_result(b, 200);
      endpoint.run_posted();
    }
    manager.shutdown();
  }
  return 0;
}
