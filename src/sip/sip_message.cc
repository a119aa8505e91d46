#include "sip/sip_message.h"

#include "common/strings.h"

namespace sgw::sip {

std::vector<std::string> Request::header_values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers)
    if (common::iequals(n, name)) out.push_back(v);
  return out;
}

std::string Request::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (common::iequals(n, name)) return v;
  return {};
}

std::vector<std::string> Request::option_tags(std::string_view header_name) const {
  std::vector<std::string> out;
  for (const auto& v : header_values(header_name)) {
    for (auto tag : common::split(v, ',')) {
      tag = common::trim(tag);
      if (!tag.empty()) out.push_back(common::to_lower(tag));
    }
  }
  return out;
}

}  // namespace sgw::sip
