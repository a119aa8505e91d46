#include "recording/spool_reader.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

namespace sgw::recording {

namespace {

constexpr std::size_t kChunk = 64 * 1024;

// A forward-only window over the file. fill(off, n) makes [off, off + n)
// resident (or as much of it as the file has) and may drop everything before
// off, so callers must ask for non-decreasing offsets and re-fetch pointers
// (at()) after every fill().
class Input {
 public:
  Input(SpoolFileSystem* fs, int fd, const std::string& path) : fs_(fs), fd_(fd), path_(path) {}

  common::Result<std::size_t> fill(std::uint64_t off, std::size_t n) {
    if (off + n <= end()) return n;
    if (!eof_) {
      // Drop what lies before off (or everything, if off is beyond what we hold).
      std::size_t drop = static_cast<std::size_t>(std::min<std::uint64_t>(off - base_, size_));
      if (drop > 0) {
        std::memmove(buf_.data(), buf_.data() + drop, size_ - drop);
        size_ -= drop;
        base_ += drop;
      }
      std::size_t want = static_cast<std::size_t>(off - base_) + n;
      if (buf_.size() < want + kChunk) buf_.resize(want + kChunk);
      while (size_ < want && !eof_) {
        ssize_t got = fs_->read(fd_, buf_.data() + size_, buf_.size() - size_);
        if (got < 0) {
          if (errno == EINTR) continue;
          int err = errno;
          return common::make_error("io.read", "read " + path_ + ": " + std::strerror(err));
        }
        if (got == 0) {
          eof_ = true;
        } else {
          size_ += static_cast<std::size_t>(got);
        }
      }
      // The file is read strictly forward; an offset past what exists is past EOF.
      if (off > end()) {
        base_ = end();
        size_ = 0;
      }
    }
    if (off >= end()) return std::size_t{0};
    return static_cast<std::size_t>(std::min<std::uint64_t>(end() - off, n));
  }

  const std::uint8_t* at(std::uint64_t off) const { return buf_.data() + (off - base_); }
  std::uint64_t end() const { return base_ + size_; }

 private:
  SpoolFileSystem* fs_;
  int fd_;
  const std::string& path_;
  std::vector<std::uint8_t> buf_;
  std::size_t size_ = 0;    // valid bytes in buf_
  std::uint64_t base_ = 0;  // file offset of buf_[0]
  bool eof_ = false;
};

enum class Check { kOk, kGarbage, kBadType, kBadLength, kTorn, kBadCrc };

struct Candidate {
  Check check = Check::kGarbage;
  std::uint8_t type = 0;
  std::uint32_t length = 0;
  std::size_t have = 0;  // for kTorn: bytes present
  std::size_t need = 0;  // for kTorn: bytes the record claims
};

class Parser {
 public:
  Parser(Input& in, const std::string& path, const RecordVisitor& visitor, SpoolSummary& summary)
      : in_(in), path_(path), visitor_(visitor), summary_(summary) {}

  common::Status header(std::uint32_t& salt, std::uint64_t& size) {
    auto bad = [&](const std::string& what) {
      return common::make_error("spool.bad_header", "spool " + path_ + ": bad header: " + what);
    };
    auto have = in_.fill(0, spool::kHeaderFixedSize);
    if (!have) return have.error();
    if (*have == 0) return bad("empty file");
    if (*have < spool::kHeaderFixedSize) return bad("short header (" + std::to_string(*have) + " bytes)");
    const std::uint8_t* p = in_.at(0);
    if (std::memcmp(p, spool::kMagic.data(), spool::kMagic.size()) != 0) return bad("bad magic");
    std::uint16_t version = spool::get_u16(p + 8);
    if (version != spool::kVersion) return bad("unsupported version " + std::to_string(version));
    salt = spool::get_u32(p + 10);
    std::size_t id_len = spool::get_u16(p + 14);
    if (id_len == 0 || id_len > spool::kMaxRecordingIdSize) {
      return bad("bad recording id length " + std::to_string(id_len));
    }
    size = spool::kHeaderFixedSize + id_len + 4;
    have = in_.fill(0, size);
    if (!have) return have.error();
    if (*have < size) return bad("short header (" + std::to_string(*have) + " of " + std::to_string(size) + " bytes)");
    p = in_.at(0);
    const std::size_t crc_at = spool::kHeaderFixedSize + id_len;
    if (spool::get_u32(p + crc_at) != spool::crc32c({p, crc_at})) return bad("header CRC mismatch");
    std::string id(reinterpret_cast<const char*>(p + spool::kHeaderFixedSize), id_len);
    if (!spool::valid_recording_id(id)) return bad("bad recording id");
    summary_.recording_id = std::move(id);
    salt_ = salt;
    return common::Ok{};
  }

  common::Status records(std::uint64_t pos) {
    while (true) {
      auto any = in_.fill(pos, 1);
      if (!any) return any.error();
      if (*any == 0) break;
      auto c = check_at(pos);
      if (!c) return c.error();
      if (c->check == Check::kOk) {
        deliver(pos, *c);
        pos += spool::kRecordHeaderSize + c->length;
        continue;
      }
      auto next = resync(pos + 1);
      if (!next) return next.error();
      const std::uint64_t end = next->value_or(in_.end());
      report(pos, *c, end - pos, !next->has_value());
      if (!next->has_value()) break;
      pos = **next;
    }
    summary_.bytes_read = in_.end();
    if (suppressed_ > 0) summary_.problems.push_back("... " + std::to_string(suppressed_) + " more problems");
    return common::Ok{};
  }

 private:
  common::Result<Candidate> check_at(std::uint64_t off) {
    Candidate c;
    auto have = in_.fill(off, spool::kRecordHeaderSize);
    if (!have) return have.error();
    const std::uint8_t* p = in_.at(off);
    const std::size_t marker_bytes = std::min(*have, spool::kSyncMarker.size());
    if (std::memcmp(p, spool::kSyncMarker.data(), marker_bytes) != 0) return c;  // kGarbage
    if (*have < spool::kRecordHeaderSize) {
      c.check = Check::kTorn;
      c.have = *have;
      c.need = spool::kRecordHeaderSize;
      return c;
    }
    c.length = spool::get_u32(p + 4);
    c.type = p[8];
    const std::uint32_t stored_crc = spool::get_u32(p + 9);
    if (!spool::known_type(c.type)) {
      c.check = Check::kBadType;
      return c;
    }
    const auto range = spool::payload_range(c.type);
    if (c.length < range.min || c.length > range.max) {
      c.check = Check::kBadLength;
      return c;
    }
    const std::size_t need = spool::kRecordHeaderSize + c.length;
    have = in_.fill(off, need);
    if (!have) return have.error();
    if (*have < need) {
      c.check = Check::kTorn;
      c.have = *have;
      c.need = need;
      return c;
    }
    p = in_.at(off);  // fill() may have moved the buffer
    if (spool::record_crc(salt_, c.length, c.type, {p + spool::kRecordHeaderSize, c.length}) != stored_crc) {
      c.check = Check::kBadCrc;
      return c;
    }
    c.check = Check::kOk;
    return c;
  }

  // Offset of the next record at or after `from` that passes every check, or
  // nullopt if none does before EOF.
  common::Result<std::optional<std::uint64_t>> resync(std::uint64_t from) {
    std::uint64_t s = from;
    while (true) {
      auto avail = in_.fill(s, kChunk);
      if (!avail) return avail.error();
      if (*avail == 0) return std::optional<std::uint64_t>{};
      const std::uint8_t* p = in_.at(s);
      const void* hit = std::memchr(p, spool::kSyncMarker[0], *avail);
      if (hit == nullptr) {
        s += *avail;
        continue;
      }
      const std::uint64_t c = s + static_cast<std::uint64_t>(static_cast<const std::uint8_t*>(hit) - p);
      auto cand = check_at(c);
      if (!cand) return cand.error();
      if (cand->check == Check::kOk) return std::optional<std::uint64_t>{c};
      s = c + 1;
    }
  }

  void deliver(std::uint64_t off, const Candidate& c) {
    const std::uint8_t* p = in_.at(off) + spool::kRecordHeaderSize;
    ++summary_.records_ok;
    const auto type = static_cast<RecordType>(c.type);
    if (type == RecordType::kRtp) {
      if (!visitor_.on_rtp) return;
      RtpRecordView v;
      v.offset = off;
      v.stream = p[0];
      v.arrival_us = static_cast<std::int64_t>(spool::get_u64(p + 1));
      v.seq = spool::get_u16(p + 9);
      v.ts = spool::get_u32(p + 11);
      v.ssrc = spool::get_u32(p + 15);
      v.payload_type = static_cast<std::uint8_t>(p[19] & 0x7FU);
      v.marker = (p[19] & 0x80U) != 0;
      v.payload = {p + spool::kRtpFixedSize, c.length - spool::kRtpFixedSize};
      visitor_.on_rtp(v);
      return;
    }
    const auto time_us = static_cast<std::int64_t>(spool::get_u64(p));
    std::string_view text(reinterpret_cast<const char*>(p + spool::kTimeSize), c.length - spool::kTimeSize);
    if (type == RecordType::kSessionStart) summary_.has_session_start = true;
    if (type == RecordType::kSessionEnd) summary_.has_session_end = true;
    if (type == RecordType::kMetadata) {
      if (visitor_.on_metadata) visitor_.on_metadata(MetadataRecordView{off, time_us, text});
      return;
    }
    if (visitor_.on_json) visitor_.on_json(JsonRecordView{off, type, time_us, text});
  }

  void report(std::uint64_t off, const Candidate& c, std::uint64_t skipped, bool to_end) {
    ++summary_.records_corrupt;
    summary_.bytes_skipped += skipped;
    if (summary_.problems.size() >= SpoolSummary::kMaxProblems) {
      ++suppressed_;
      return;
    }
    const std::string at = " at offset " + std::to_string(off);
    const std::string tail = " (" + std::to_string(skipped) + " bytes skipped)";
    std::string what;
    switch (c.check) {
      case Check::kGarbage:
        what = "garbage" + at + tail;
        break;
      case Check::kBadType:
        what = "bad type " + std::to_string(c.type) + at + tail;
        break;
      case Check::kBadLength:
        what = "bad length " + std::to_string(c.length) + at + tail;
        break;
      case Check::kBadCrc:
        what = "bad CRC" + at + tail;
        break;
      case Check::kTorn:
        if (to_end) {
          what = "torn record at end: offset " + std::to_string(off) + " (" + std::to_string(c.have) +
                 " of " + std::to_string(c.need) + " bytes)";
        } else {
          // Valid records follow, so the length (not the file) is what is wrong.
          what = "bad length " + std::to_string(c.length) + at + ": runs past a later valid record" + tail;
        }
        break;
      case Check::kOk:
        break;
    }
    summary_.problems.push_back(std::move(what));
  }

  Input& in_;
  const std::string& path_;
  const RecordVisitor& visitor_;
  SpoolSummary& summary_;
  std::uint32_t salt_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace

namespace {

common::Result<SpoolSummary> read(const std::string& path, const RecordVisitor& visitor,
                                  SpoolFileSystem* fs, bool header_only) {
  if (fs == nullptr) fs = SpoolFileSystem::posix();
  int fd = fs->open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    return common::make_error("io.open", "open " + path + ": " + std::strerror(err));
  }
  struct Closer {
    SpoolFileSystem* fs;
    int fd;
    ~Closer() { fs->close(fd); }
  } closer{fs, fd};

  SpoolSummary summary;
  Input in(fs, fd, path);
  Parser parser(in, path, visitor, summary);
  std::uint32_t salt = 0;
  std::uint64_t header_size = 0;
  if (auto h = parser.header(salt, header_size); !h) return h.error();
  if (header_only) {
    summary.salt = salt;
    return summary;
  }
  if (auto r = parser.records(header_size); !r) return r.error();
  return summary;
}

}  // namespace

common::Result<SpoolSummary> read_spool(const std::string& path, const RecordVisitor& visitor,
                                        SpoolFileSystem* fs) {
  return read(path, visitor, fs, /*header_only=*/false);
}

common::Result<SpoolHeaderInfo> read_spool_header(const std::string& path, SpoolFileSystem* fs) {
  auto s = read(path, RecordVisitor{}, fs, /*header_only=*/true);
  if (!s) return s.error();
  return SpoolHeaderInfo{s->recording_id, s->salt};
}

std::vector<std::string> list_spools(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) return out;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const auto& entry = *it;
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;
    const std::string name = entry.path().filename().string();
    constexpr std::string_view kExt = ".spool";
    if (name.size() > kExt.size() && name.ends_with(kExt)) out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace sgw::recording
