#include "sip/sofia_headers.h"

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/url.h>

namespace sgw::sip::detail {

namespace {

std::string header_field(msg_header_t const* h) {
  // Large enough for any header we care about; SIPREC bodies are payload, not headers.
  char buf[8192];
  issize_t n = msg_header_field_e(buf, sizeof buf, h, 0);
  if (n < 0 || static_cast<std::size_t>(n) >= sizeof buf) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace

HeaderList collect_headers(msg_header_t const* first) {
  HeaderList out;
  for (msg_header_t const* h = first; h != nullptr; h = h->sh_succ) {
    msg_hclass_t const* hc = h->sh_class;
    if (hc == nullptr || hc == sip_request_class || hc == sip_status_class ||
        hc == sip_separator_class || hc == sip_payload_class || hc == sip_error_class)
      continue;
    std::string name;
    std::string value;
    if (hc == sip_unknown_class) {
      if (h->sh_unknown->un_name) name = h->sh_unknown->un_name;
      if (h->sh_unknown->un_value) value = h->sh_unknown->un_value;
    } else {
      if (hc->hc_name) name = hc->hc_name;
      value = header_field(h);
    }
    if (!name.empty()) out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

Request request_from_sip(sip_t const* sip) {
    Request r;
    if (sip->sip_request) {
      r.method = sip->sip_request->rq_method_name ? sip->sip_request->rq_method_name : "";
      char ubuf[2048];
      if (url_e(ubuf, sizeof ubuf, sip->sip_request->rq_url) > 0) r.request_uri = ubuf;
    }
    if (sip->sip_call_id && sip->sip_call_id->i_id) r.call_id = sip->sip_call_id->i_id;
    if (sip->sip_cseq) r.cseq = sip->sip_cseq->cs_seq;
    r.headers = collect_headers(reinterpret_cast<msg_header_t const*>(sip->sip_request));
    r.from = r.header("From");
    r.to = r.header("To");
    r.contact = r.header("Contact");
    r.content_type = r.header("Content-Type");
    if (sip->sip_payload && sip->sip_payload->pl_data)
      r.body.assign(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
  return r;
}

std::string build_headers(const HeaderList& headers) {
  std::string out;
  for (const auto& [n, v] : headers) {
    out += n;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  return out;
}

}  // namespace sgw::sip::detail
