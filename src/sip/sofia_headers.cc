#include "sip/sofia_headers.h"

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>

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
