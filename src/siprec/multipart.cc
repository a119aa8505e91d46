#include "siprec/multipart.h"

#include "common/strings.h"
#include "siprec/parse_util.h"

namespace sgw::siprec {

namespace {

using common::make_error;
using detail::is_space;

constexpr std::size_t kMaxBoundary = 200;  // RFC 2046 §5.1.1 says 70; tolerate longer

bool is_token_text(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == ';' || c == '"' || c == ',') return false;
  return true;
}

// A delimiter line: "--" boundary ["--"] *LWSP (CRLF | LF | end of body), at the start of the body
// or right after an LF. RFC 2046 §5.1.1: the line break before it belongs to the delimiter.
struct Delimiter {
  std::size_t line_start;     // offset of the first '-'
  std::size_t content_start;  // offset just past the delimiter line's line break
  bool close;
};

std::optional<Delimiter> find_delimiter(std::string_view body, std::string_view dash_boundary,
                                        std::size_t from) {
  std::size_t search = from;
  while (search < body.size()) {
    std::size_t idx = body.find(dash_boundary, search);
    if (idx == std::string_view::npos) return std::nullopt;
    search = idx + 1;
    if (idx != 0 && body[idx - 1] != '\n') continue;
    std::size_t p = idx + dash_boundary.size();
    bool close = false;
    if (body.substr(p, 2) == "--") {
      close = true;
      p += 2;
    }
    while (p < body.size() && is_space(body[p])) ++p;  // transport padding
    if (p == body.size()) return Delimiter{idx, p, close};
    if (body[p] == '\n') return Delimiter{idx, p + 1, close};
    if (body[p] == '\r') {
      if (p + 1 == body.size()) return Delimiter{idx, p + 1, close};
      if (body[p + 1] == '\n') return Delimiter{idx, p + 2, close};
    }
    // "--boundaryX...": the boundary is only a prefix of this line, so it is content.
  }
  return std::nullopt;
}

std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

enum class PartOutcome { kOk, kHeadersCut };

// Parses one encapsulation (RFC 2046 §5.1.1 body-part: MIME-part-headers [CRLF *OCTET]).
// `must_be_complete`: the part is the last one and no close delimiter followed it, so a header
// block with no terminating blank line means the body was cut.
PartOutcome parse_part(std::string_view content, std::size_t index, bool must_be_complete,
                       BodyPart& part, std::vector<std::string>& warnings) {
  const std::string where = "part " + std::to_string(index + 1);
  std::size_t pos = 0;
  std::optional<std::size_t> body_start;
  std::vector<std::pair<std::string, std::string>> headers;
  bool first_line = true;
  bool first_line_is_header = true;
  std::vector<std::string> line_warnings;  // dropped if the part turns out to have no headers
  while (pos < content.size()) {
    std::size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) {
      // Last line without a line break: a header line cut short or body with no headers.
      std::string_view line = strip_cr(content.substr(pos));
      if (first_line && line.find(':') == std::string_view::npos) first_line_is_header = false;
      break;
    }
    std::string_view line = strip_cr(content.substr(pos, nl - pos));
    pos = nl + 1;
    if (common::trim(line).empty()) {
      body_start = pos;
      break;
    }
    if (is_space(line.front()) && !headers.empty()) {
      // RFC 5322 §2.2.3 unfolding.
      headers.back().second += ' ';
      headers.back().second += common::trim(line);
      first_line = false;
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      if (first_line) first_line_is_header = false;
      line_warnings.push_back(where + ": ignored header line without ':'");
      first_line = false;
      continue;
    }
    first_line = false;
    headers.emplace_back(std::string(common::trim(line.substr(0, colon))),
                         std::string(common::trim(line.substr(colon + 1))));
  }

  if (!body_start) {
    if (common::trim(content).empty()) {
      body_start = content.size();  // empty part
      headers.clear();
    } else if (!first_line_is_header) {
      // Some SRCs send a part with neither headers nor the blank line: take it all as body.
      warnings.push_back(where + ": no header block; whole part taken as body");
      body_start = 0;
      headers.clear();
      line_warnings.clear();
    } else if (must_be_complete) {
      return PartOutcome::kHeadersCut;
    } else {
      warnings.push_back(where + ": no blank line after headers; part has an empty body");
      body_start = content.size();
    }
  }

  warnings.insert(warnings.end(), line_warnings.begin(), line_warnings.end());
  part.headers = std::move(headers);
  part.body = std::string(content.substr(*body_start));
  part.content_type = "text/plain";  // RFC 2046 §5.1: default when a part has no Content-Type
  part.media_type = "text/plain";
  bool have_type = false;
  for (const auto& [name, value] : part.headers) {
    if (common::iequals(name, "Content-Type")) {
      if (have_type) continue;
      have_type = true;
      part.content_type = value;
      if (auto mt = parse_media_type(value)) {
        part.media_type = mt->essence();
      } else {
        part.media_type = common::to_lower(common::trim(value.substr(0, value.find(';'))));
        warnings.push_back(where + ": malformed Content-Type '" + detail::printable(value) + "'");
      }
    } else if (common::iequals(name, "Content-Disposition") && part.content_disposition.empty()) {
      part.content_disposition = value;
    } else if (common::iequals(name, "Content-ID") && part.content_id.empty()) {
      part.content_id = value;
    } else if (common::iequals(name, "Content-Transfer-Encoding") &&
               part.content_transfer_encoding.empty()) {
      part.content_transfer_encoding = value;
    } else if (common::iequals(name, "Content-Length") && !part.content_length) {
      part.content_length = detail::parse_uint<std::size_t>(value);
    }
  }
  return PartOutcome::kOk;
}

bool is_metadata_type(std::string_view essence) {
  // RFC 7866 §12.2 registers application/rs-metadata+xml; early drafts and some SRCs used
  // application/rs-metadata.
  return essence == "application/rs-metadata+xml" || essence == "application/rs-metadata";
}

}  // namespace

const std::string* MediaType::param(std::string_view name) const {
  for (const auto& [n, v] : params)
    if (common::iequals(n, name)) return &v;
  return nullptr;
}

const std::string* BodyPart::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (common::iequals(n, name)) return &v;
  return nullptr;
}

common::Result<MediaType> parse_media_type(std::string_view value) {
  std::string_view v = common::trim(value);
  auto semi = v.find(';');
  std::string_view essence = common::trim(v.substr(0, semi));
  auto slash = essence.find('/');
  if (slash == std::string_view::npos)
    return make_error("media_type.malformed", "no type/subtype in '" + detail::printable(v) + "'");
  std::string_view type = common::trim(essence.substr(0, slash));
  std::string_view subtype = common::trim(essence.substr(slash + 1));
  if (!is_token_text(type) || !is_token_text(subtype))
    return make_error("media_type.malformed", "bad type/subtype '" + detail::printable(essence) + "'");
  MediaType mt;
  mt.type = common::to_lower(type);
  mt.subtype = common::to_lower(subtype);
  if (semi == std::string_view::npos) return mt;

  // RFC 2045 §5.1: parameter := attribute "=" value; value := token / quoted-string.
  std::size_t p = semi;
  while (p < v.size()) {
    if (v[p] == ';' || is_space(v[p])) {
      ++p;
      continue;
    }
    std::size_t name_start = p;
    while (p < v.size() && v[p] != '=' && v[p] != ';') ++p;
    std::string_view name = common::trim(v.substr(name_start, p - name_start));
    if (p >= v.size() || v[p] == ';') continue;  // parameter without '=': skipped
    ++p;                                          // '='
    while (p < v.size() && is_space(v[p])) ++p;
    std::string val;
    if (p < v.size() && v[p] == '"') {
      ++p;
      while (p < v.size() && v[p] != '"') {
        if (v[p] == '\\' && p + 1 < v.size()) ++p;  // quoted-pair
        val += v[p];
        ++p;
      }
      if (p < v.size()) ++p;  // closing quote; an unterminated quote runs to the end
      while (p < v.size() && v[p] != ';') ++p;
    } else {
      std::size_t vs = p;
      while (p < v.size() && v[p] != ';') ++p;
      val = std::string(common::trim(v.substr(vs, p - vs)));
    }
    if (!name.empty()) mt.params.emplace_back(common::to_lower(name), std::move(val));
  }
  return mt;
}

common::Result<std::vector<BodyPart>> parse_multipart(std::string_view content_type_header_value,
                                                      std::string_view body,
                                                      std::vector<std::string>* warnings_out) {
  auto mt = parse_media_type(content_type_header_value);
  if (!mt || mt->type != "multipart")
    return make_error("multipart.not_multipart",
                      "Content-Type is not multipart: '" +
                          detail::printable(content_type_header_value) + "'");
  const std::string* boundary = mt->param("boundary");
  if (!boundary || boundary->empty())
    return make_error("multipart.no_boundary", "multipart Content-Type without boundary parameter");
  if (boundary->size() > kMaxBoundary)
    return make_error("multipart.no_boundary",
                      "boundary parameter longer than " + std::to_string(kMaxBoundary));
  if (body.size() > kMaxMultipartBytes)
    return make_error("multipart.too_large", "multipart body of " + std::to_string(body.size()) +
                                                 " bytes exceeds " +
                                                 std::to_string(kMaxMultipartBytes));

  std::vector<std::string> local_warnings;
  std::vector<std::string>& warnings = warnings_out ? *warnings_out : local_warnings;
  const std::string dash_boundary = "--" + *boundary;

  // Everything before the first delimiter is preamble (RFC 2046 §5.1.1) and is ignored.
  auto cur = find_delimiter(body, dash_boundary, 0);
  if (!cur || cur->close)
    return make_error("multipart.no_parts", "no body part delimited by boundary '" +
                                                detail::printable(*boundary) + "'");
  std::vector<BodyPart> parts;
  while (true) {
    auto next = find_delimiter(body, dash_boundary, cur->content_start);
    if (!next) {
      // No close delimiter. Real SBCs sometimes omit the final "--": accept what is there.
      std::string_view rest = body.substr(cur->content_start);
      if (!common::trim(rest).empty()) {
        if (parts.size() >= kMaxMultipartParts)
          return make_error("multipart.too_many_parts",
                            "more than " + std::to_string(kMaxMultipartParts) + " body parts");
        BodyPart part;
        if (parse_part(rest, parts.size(), true, part, warnings) == PartOutcome::kHeadersCut)
          return make_error("multipart.unterminated",
                            "no close delimiter and part " + std::to_string(parts.size() + 1) +
                                " ends inside its headers");
        parts.push_back(std::move(part));
      }
      if (parts.empty())
        return make_error("multipart.no_parts", "no body part before the end of the body");
      warnings.push_back("multipart: missing close delimiter '" + detail::printable(dash_boundary) +
                         "--'; accepted " + std::to_string(parts.size()) + " part(s)");
      break;
    }
    if (parts.size() >= kMaxMultipartParts)
      return make_error("multipart.too_many_parts",
                        "more than " + std::to_string(kMaxMultipartParts) + " body parts");
    // The line break before the delimiter belongs to it (RFC 2046 §5.1.1), unless the part is
    // empty and that line break already ended the previous delimiter line.
    std::size_t end = next->line_start;
    if (end > cur->content_start && body[end - 1] == '\n') {
      --end;
      if (end > cur->content_start && body[end - 1] == '\r') --end;
    }
    BodyPart part;
    (void)parse_part(body.substr(cur->content_start, end - cur->content_start), parts.size(), false,
                     part, warnings);
    parts.push_back(std::move(part));
    if (next->close) break;  // anything after is epilogue
    cur = next;
  }
  return parts;
}

common::Result<RecordingBody> split_recording_body(std::string_view content_type,
                                                   std::string_view body) {
  RecordingBody out;
  if (common::trim(content_type).empty()) {
    if (body.empty()) return out;
    return make_error("body.unsupported_type", "body without Content-Type");
  }
  auto mt = parse_media_type(content_type);
  if (!mt)
    return make_error("body.unsupported_type",
                      "unparsable Content-Type '" + detail::printable(content_type) + "'");
  const std::string essence = mt->essence();
  if (essence == "application/sdp") {
    out.sdp = std::string(body);
    return out;
  }
  if (is_metadata_type(essence)) {
    out.metadata_docs.emplace_back(body);
    return out;
  }
  // RFC 7866 §9.1 uses multipart/mixed; multipart/related is tolerated.
  if (essence != "multipart/mixed" && essence != "multipart/related")
    return make_error("body.unsupported_type",
                      "unsupported body type '" + detail::printable(essence) + "'");
  if (essence != "multipart/mixed")
    out.warnings.push_back("body: " + essence + " treated as multipart/mixed");

  auto parts = parse_multipart(content_type, body, &out.warnings);
  if (!parts) return parts.error();
  for (std::size_t i = 0; i < parts->size(); ++i) {
    BodyPart& p = (*parts)[i];
    const std::string& cte = p.content_transfer_encoding;
    if (!cte.empty() && !common::iequals(cte, "binary") && !common::iequals(cte, "8bit") &&
        !common::iequals(cte, "7bit"))
      out.warnings.push_back("part " + std::to_string(i + 1) + ": Content-Transfer-Encoding '" +
                             detail::printable(cte) + "' not decoded");
    if (p.media_type == "application/sdp") {
      if (out.sdp)
        return make_error("body.multiple_sdp", "more than one application/sdp part (part " +
                                                   std::to_string(i + 1) + ")");
      out.sdp = std::move(p.body);
    } else if (is_metadata_type(p.media_type)) {
      out.metadata_docs.push_back(std::move(p.body));
    } else {
      out.warnings.push_back("part " + std::to_string(i + 1) + ": ignored part of type '" +
                             detail::printable(p.media_type) + "'");
    }
  }
  return out;
}

}  // namespace sgw::siprec
