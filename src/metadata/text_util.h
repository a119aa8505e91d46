// Internal helpers of the metadata layer (not part of its public API).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sgw::metadata::detail {

// Returns s with every invalid UTF-8 sequence replaced by U+FFFD (overlongs, surrogates and
// code points above U+10FFFF count as invalid), so JSON serialisation cannot fail on it.
std::string sanitize_utf8(std::string_view s);

// Local part of a possibly prefixed XML name: "rs:recording" -> "recording".
std::string_view local_name(std::string_view qname);

// Folds the spellings SRCs use for one name: lower case, '-' and '_' dropped, so
// "dataMode", "datamode", "start-time", "participant_id" and "sipSessionID" compare as
// "datamode", "starttime", "participantid", "sipsessionid".
std::string fold_name(std::string_view name);

// Appends to dst each element of src not already in dst or earlier in src, keeping order.
// Linear time (hash set), so a hostile list of thousands of ids costs nothing quadratic.
void append_unique(std::vector<std::string>& dst, const std::vector<std::string>& src);

// Removes repeated strings, keeping the first occurrence of each.
void dedupe(std::vector<std::string>& v);

// Appends a warning unless the list is already at its cap (a hostile document could
// otherwise make the list as large as the document).
inline constexpr std::size_t kMaxWarnings = 32;
void add_warning(std::vector<std::string>& warnings, std::string text);

}  // namespace sgw::metadata::detail
