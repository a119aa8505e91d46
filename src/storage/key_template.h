// KeyTemplate: the storage key (S3 object key, or path under the filesystem
// sink's base) of a recording, from a template such as
// "{region}/{yyyy}/{mm}/{dd}/{conversation_id}/{recording_id}". Rules in
// docs/key-template.md: the template is validated once at parse; every
// substituted value is sanitised so a rendered key never escapes its base.
// Thread: immutable after parse; render() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sgw::storage {

struct KeyFields {
  std::chrono::system_clock::time_point start_time{};  // {yyyy} {mm} {dd} {hh}, in UTC
  std::string conversation_id;
  std::string recording_id;
  std::string region;
  std::string node;
  std::string call_id;
};

class KeyTemplate {
 public:
  static constexpr std::size_t kMaxTemplateSize = 1024;
  static constexpr std::size_t kMaxValueSize = 128;      // per substituted value
  static constexpr std::size_t kMaxComponentSize = 255;  // per '/'-separated component (NAME_MAX)

  // Errors: key_template.{empty, too_long, bad_char, unclosed, unknown_placeholder, absolute,
  // empty_component, dotdot, dot_component}, each message naming the offending part.
  static common::Result<KeyTemplate> parse(std::string_view text);

  std::string render(const KeyFields& fields) const;
  const std::string& text() const { return text_; }

  // One value made into a safe path component (exposed for tests and for sinks
  // that need the same rule for other names).
  static std::string sanitize(std::string_view value);

 private:
  enum class Field : std::uint8_t { kLiteral, kYear, kMonth, kDay, kHour, kConversationId, kRecordingId, kRegion, kNode, kCallId };
  struct Segment {
    Field field = Field::kLiteral;
    std::string literal;  // for kLiteral; may contain '/'
  };

  std::string text_;
  std::vector<Segment> segments_;
};

}  // namespace sgw::storage
