#include "storage/segment_shipper.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "recording/spool_reader.h"
#include "storage/partials.h"
#include "storage/sigv4.h"

namespace sgw::storage {

namespace {

void bump(common::Counter* c, std::uint64_t n = 1) {
  if (c) c->inc(n);
}

std::string recording_id_of(const std::string& spool_path) {
  std::string name = std::filesystem::path(spool_path).filename().string();
  constexpr std::string_view kExt = ".spool";
  if (name.size() > kExt.size() && name.compare(name.size() - kExt.size(), kExt.size(), kExt) == 0)
    name.resize(name.size() - kExt.size());
  return name;
}

// Reads [offset, end of file) of a spool. False (errno kept) on a read error.
bool read_tail(const std::string& path, std::uint64_t offset, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat sb{};
  if (::fstat(fd, &sb) != 0) {
    ::close(fd);
    return false;
  }
  std::uint64_t size = static_cast<std::uint64_t>(sb.st_size);
  out->clear();
  if (size > offset) {
    out->resize(size - offset);
    std::size_t done = 0;
    while (done < out->size()) {
      ssize_t n = ::pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    out->resize(done);
  }
  ::close(fd);
  return true;
}

}  // namespace

SegmentShipper::SegmentShipper(SegmentShipperOptions options) : options_(std::move(options)) {}

SegmentShipper::~SegmentShipper() { stop(); }

void SegmentShipper::start() {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  thread_ = std::thread([this] {
    common::set_thread_name("sgw-shipper");
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, options_.interval, [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      run_once();
      lock.lock();
    }
  });
}

void SegmentShipper::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::size_t SegmentShipper::run_once() {
  std::vector<std::string> open = options_.open_spools ? options_.open_spools() : std::vector<std::string>{};
  std::map<std::string, State> next;
  std::size_t shipped = 0;
  for (const auto& path : open) {
    State st;
    if (auto it = states_.find(path); it != states_.end()) st = it->second;
    if (ship(path, st)) ++shipped;
    next.emplace(path, std::move(st));
  }
  // Spools no longer open are finished: the final recording supersedes their partials.
  states_ = std::move(next);
  return shipped;
}

bool SegmentShipper::ship(const std::string& path, State& st) {
  auto log = common::logger("shipper");
  const std::string rid = recording_id_of(path);
  std::string bytes;
  if (!read_tail(path, st.offset, &bytes)) {
    if (errno != ENOENT) {  // ENOENT: the session ended and its spool was finalised meanwhile
      bump(options_.errors);
      log->warn("{}: cannot read spool {} for shipping: {}", rid, path, std::strerror(errno));
    }
    return false;
  }
  const std::string file = options_.dir + "/" + partial_file_name(rid, st.seq, st.offset);
  // A copy of spool bytes (durable there): no fsync (docs/failover.md "What it costs a call").
  if (auto w = common::write_file_atomically(file, bytes, common::FileSync::kProcessDeath); !w) {
    bump(options_.errors);
    log->warn("{}: cannot write partial {}: {}", rid, file, w.error().message);
    return false;
  }
  if (st.seq == 0) {
    // The session-start record (the first after the header) names the conversation and the start.
    recording::RecordVisitor v;
    v.on_json = [&](const recording::JsonRecordView& r) {
      if (r.type != recording::RecordType::kSessionStart) return;
      auto j = nlohmann::json::parse(r.json.begin(), r.json.end(), nullptr, false);
      if (!j.is_object()) return;
      if (auto c = j.find("conversation_id"); c != j.end() && c->is_string()) st.conversation_id = *c;
      if (auto s = j.find("start_unix_us"); s != j.end() && s->is_number_integer())
        st.start_unix_ms = s->get<std::int64_t>() / 1000;
    };
    (void)recording::read_spool(file, v);
  }
  DeliveryEntry e;
  char seq[24];
  std::snprintf(seq, sizeof seq, "%08llu", static_cast<unsigned long long>(st.seq));
  e.recording_id = rid + ".p" + seq;
  e.sink = std::string(kPartialSink);
  e.start_unix_ms = st.start_unix_ms;
  e.conversation_id = st.conversation_id;
  DeliveryObject o;
  o.path = file;
  o.key = partial_key(options_.region, rid, st.seq);
  o.content_type = "application/octet-stream";
  o.sha256 = sha256_hex(bytes);
  e.objects.push_back(std::move(o));
  auto q = options_.queue->enqueue(std::move(e));
  if (!q) {
    bump(options_.errors);
    log->warn("{}: cannot queue partial {}: {}", rid, file, q.error().message);
    std::error_code ec;
    std::filesystem::remove(file, ec);
    return false;
  }
  bump(options_.shipped);
  bump(options_.bytes, bytes.size());
  st.offset += bytes.size();
  ++st.seq;
  return true;
}

}  // namespace sgw::storage
