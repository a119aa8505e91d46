#include "siprec_src/verdict.h"

namespace sgw::siprec_src {

std::string bye_failure(int status, bool local) {
  if (status >= 200 && status < 300) return "";
  if (local) return "BYE unanswered: no final answer (local " + std::to_string(status) + ")";
  if (status == 481) return "BYE answered 481: the recorder had lost the call";
  return "BYE answered " + std::to_string(status);
}

std::string failure_key(int code, const std::string& reason) {
  std::string key = code > 0 ? std::to_string(code) : reason.substr(0, reason.find(':'));
  return key.empty() ? "unknown" : key;
}

}  // namespace sgw::siprec_src
