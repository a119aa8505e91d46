// Base64 (RFC 4648 §4, standard alphabet, '=' padding).
// Pure functions, any thread. decode() is for peer input: it never throws and
// refuses anything that is not canonical base64 (wrong length, characters
// outside the alphabet, misplaced padding, non-zero bits after the last byte).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sgw::common {

std::string base64_encode(std::span<const std::uint8_t> bytes);
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace sgw::common
