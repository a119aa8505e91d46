#include "sip/tls_via_rewriter.h"

#include <cctype>
#include <charconv>

namespace sgw::sip::detail {

namespace {

constexpr long kMaxBodyBytes = 16L * 1024 * 1024;  // beyond sip.max_message_bytes' range

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Content-Length of a header block ("l" is its compact form, RFC 3261 §7.3.3);
// 0 when absent (RFC 3261 §18.3 requires it on streams; sofia judges that).
// nullopt-like -1 for a value that is not a number.
long content_length(std::string_view headers) {
  std::size_t pos = headers.find('\n');  // skip the start line
  while (pos != std::string_view::npos && pos + 1 < headers.size()) {
    std::size_t start = pos + 1;
    std::size_t end = headers.find('\n', start);
    std::string_view line = headers.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    pos = end;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    if (!iequal(name, "content-length") && !iequal(name, "l")) continue;
    std::string_view value = trim(line.substr(colon + 1));
    long n = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || p != value.data() + value.size() || n < 0) return -1;
    return n;
  }
  return 0;
}

}  // namespace

void TlsViaRewriter::rewrite_top_via(std::string& headers) const {
  bool response = headers.compare(0, 8, "SIP/2.0 ") == 0;
  bool to_sofia = direction_ == Direction::kToSofia;
  if (response == to_sofia) return;  // requests to sofia, responses to the peer
  std::string_view from = to_sofia ? "SIP/2.0/TLS" : "SIP/2.0/TCP";
  std::string_view to = to_sofia ? "SIP/2.0/TCP" : "SIP/2.0/TLS";
  std::size_t pos = headers.find('\n');
  while (pos != std::string::npos && pos + 1 < headers.size()) {
    std::size_t start = pos + 1;
    std::size_t colon = headers.find(':', start);
    std::size_t eol = headers.find('\n', start);
    pos = eol;
    if (colon == std::string::npos || (eol != std::string::npos && colon > eol)) continue;
    std::string_view name = trim(std::string_view(headers).substr(start, colon - start));
    if (!iequal(name, "via") && !iequal(name, "v")) continue;
    std::size_t v = colon + 1;
    while (v < headers.size() && (headers[v] == ' ' || headers[v] == '\t')) ++v;
    if (v + from.size() <= headers.size() && iequal(std::string_view(headers).substr(v, from.size()), from))
      headers.replace(v, to.size(), to);
    return;  // only the top Via
  }
}

void TlsViaRewriter::feed(std::string_view data, std::string& out) {
  if (passthrough_) {
    out.append(data);
    return;
  }
  buffer_.append(data);
  std::size_t done = 0;
  while (done < buffer_.size()) {
    // Keep-alive CRLFs between messages pass as they are.
    if (buffer_[done] == '\r' || buffer_[done] == '\n') {
      out += buffer_[done++];
      continue;
    }
    std::size_t blank = buffer_.find("\r\n\r\n", done);
    if (blank == std::string::npos) {
      if (buffer_.size() - done > kMaxHeaderBytes) {
        passthrough_ = true;
        out.append(buffer_, done, std::string::npos);
        buffer_.clear();
        return;
      }
      break;
    }
    std::size_t header_end = blank + 4;
    long body = content_length(std::string_view(buffer_).substr(done, header_end - done));
    if (body < 0 || body > kMaxBodyBytes || header_end - done > kMaxHeaderBytes) {
      passthrough_ = true;  // sofia rejects what we cannot frame
      out.append(buffer_, done, std::string::npos);
      buffer_.clear();
      return;
    }
    std::size_t end = header_end + static_cast<std::size_t>(body);
    if (end > buffer_.size()) break;
    std::string headers = buffer_.substr(done, header_end - done);
    rewrite_top_via(headers);
    out += headers;
    out.append(buffer_, header_end, static_cast<std::size_t>(body));
    done = end;
  }
  buffer_.erase(0, done);
}

}  // namespace sgw::sip::detail
