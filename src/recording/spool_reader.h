// Reading spool files back (finaliser and crash recovery). Byte layout and the
// corruption rules are in docs/spool.md.
//
// read_spool streams the file in chunks (memory: one chunk + one maximal
// record, never the whole file). Records that fail any check are reported in
// the summary and skipped; the reader resynchronises on the next sync marker
// whose record validates. Nothing read from disk is trusted or asserted on.
// Thread: any; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "recording/spool_file_system.h"
#include "recording/spool_format.h"

namespace sgw::recording {

// Views handed to the visitor: the spans/strings point into the reader's
// buffer and are valid only during the call. Copy what must outlive it.
struct RtpRecordView {
  std::uint64_t offset = 0;  // of the record in the file
  std::uint8_t stream = 0;
  std::int64_t arrival_us = 0;
  std::uint16_t seq = 0;
  std::uint32_t ts = 0;
  std::uint32_t ssrc = 0;
  std::uint8_t payload_type = 0;  // 7 bits
  bool marker = false;
  std::span<const std::uint8_t> payload;
};

struct JsonRecordView {  // kSessionStart, kEvent, kSessionEnd
  std::uint64_t offset = 0;
  RecordType type = RecordType::kEvent;
  std::int64_t time_us = 0;
  std::string_view json;  // not validated
};

struct MetadataRecordView {  // kMetadata
  std::uint64_t offset = 0;
  std::int64_t time_us = 0;
  std::string_view xml;  // not validated
};

// Callbacks per record kind, called in file order on the reading thread; an
// empty one skips that kind.
struct RecordVisitor {
  std::function<void(const RtpRecordView&)> on_rtp;
  std::function<void(const JsonRecordView&)> on_json;
  std::function<void(const MetadataRecordView&)> on_metadata;
};

struct SpoolSummary {
  std::string recording_id;
  std::uint64_t records_ok = 0;
  std::uint64_t records_corrupt = 0;  // skipped regions (each is one problem)
  std::uint64_t bytes_skipped = 0;
  std::uint64_t bytes_read = 0;       // file size as read, header included
  // "bad CRC at offset 1234 (180 bytes skipped)", "torn record at end: offset 1234 (23 of 180
  // bytes)", ... At most kMaxProblems entries, then one "... N more problems".
  std::vector<std::string> problems;
  bool has_session_start = false;
  bool has_session_end = false;
  std::uint32_t salt = 0;  // the file's record CRC salt (set by read_spool_header only)

  static constexpr std::size_t kMaxProblems = 100;
};

// Errors: "io.open"/"io.read" naming the path; "spool.bad_header" naming the
// path (empty file, short header, wrong magic/version, bad id, header CRC).
// fs defaults to SpoolFileSystem::posix().
common::Result<SpoolSummary> read_spool(const std::string& path, const RecordVisitor& visitor,
                                        SpoolFileSystem* fs = nullptr);

// Only the header: the recording id and the salt an appender needs
// (SpoolWriter::open_for_append). Same errors as read_spool.
struct SpoolHeaderInfo {
  std::string recording_id;
  std::uint32_t salt = 0;
};
common::Result<SpoolHeaderInfo> read_spool_header(const std::string& path, SpoolFileSystem* fs = nullptr);

// Full paths of the regular files in dir whose names end in ".spool", sorted.
// A missing or unreadable directory gives an empty list.
std::vector<std::string> list_spools(const std::string& dir);

}  // namespace sgw::recording
