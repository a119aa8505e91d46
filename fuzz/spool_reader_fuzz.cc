// Fuzz target: read_spool must accept, report or refuse any file contents
// without reading outside its buffers, and its summary must be consistent.
// The file is served from memory through the SpoolFileSystem seam; reads are
// cut into odd sizes to exercise the reader's chunk boundaries.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "recording/spool_reader.h"

namespace {

class MemoryFileSystem final : public sgw::recording::SpoolFileSystem {
 public:
  MemoryFileSystem(std::span<const std::uint8_t> data, std::size_t max_read)
      : data_(data), max_read_(max_read) {}
  int open(const std::string&, int, mode_t) override { return 3; }
  ssize_t write(int, const void*, std::size_t) override {
    errno = EBADF;
    return -1;
  }
  ssize_t read(int, void* out, std::size_t size) override {
    std::size_t n = std::min({size, max_read_, data_.size() - pos_});
    if (n > 0) std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  int fdatasync(int) override { return 0; }
  int fsync(int) override { return 0; }
  int syncfs(int) override { return 0; }
  int close(int) override { return 0; }
  int unlink(const std::string&) override { return 0; }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t max_read_;
  std::size_t pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The last input byte picks the read size (1..256 bytes, or unlimited).
  std::size_t max_read = SIZE_MAX;
  if (size > 0 && data[size - 1] < 0x40) max_read = std::size_t{data[size - 1]} * 4 + 1;
  MemoryFileSystem fs({data, size}, max_read);

  std::uint64_t seen_bytes = 0;
  std::uint64_t records = 0;
  sgw::recording::RecordVisitor v;
  v.on_rtp = [&](const sgw::recording::RtpRecordView& r) {
    ++records;
    for (auto b : r.payload) seen_bytes += b;
    if (r.payload_type > 127) std::abort();
  };
  v.on_json = [&](const sgw::recording::JsonRecordView& r) {
    ++records;
    for (char c : r.json) seen_bytes += static_cast<unsigned char>(c);
  };
  v.on_metadata = [&](const sgw::recording::MetadataRecordView& r) {
    ++records;
    for (char c : r.xml) seen_bytes += static_cast<unsigned char>(c);
  };
  auto s = sgw::recording::read_spool("fuzz.spool", v, &fs);
  if (s.ok()) {
    if (s->records_ok != records) std::abort();
    if (s->bytes_skipped > size || s->bytes_read != size) std::abort();
    if (s->problems.size() > sgw::recording::SpoolSummary::kMaxProblems + 1) std::abort();
    if (s->records_corrupt < s->problems.size() && s->problems.size() <= sgw::recording::SpoolSummary::kMaxProblems)
      std::abort();
  } else if (s.error().code != "spool.bad_header") {
    std::abort();
  }
  volatile std::uint64_t sink = seen_bytes;
  (void)sink;
  return 0;
}
