#include "storage/orphan_recovery.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "recording/spool_events.h"
#include "recording/spool_format.h"
#include "recording/spool_writer.h"
#include "storage/partials.h"
#include "storage/sigv4.h"

namespace sgw::storage {

namespace {

struct Group {
  std::string region, recording_id;
  std::vector<ObjectVersion> partials;  // latest versions only
  bool leased = false;
  std::int64_t newest_ms = 0;
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Takes the lease; false with *holder set when another node has it.
bool take_lease(S3Client& client, const std::string& key, const std::string& node, std::int64_t now,
                std::string* holder, std::string* problem) {
  PutObjectOptions put;
  put.content_type = "application/json";
  put.if_none_match = "*";
  put.metadata = {{"node", node}};
  std::string body = nlohmann::json{{"node", node}, {"unix_ms", now}}.dump();
  auto r = client.put_object(key, body, put);
  if (!r) {
    if (r.error().http_status == 412) {
      auto h = client.head_object(key, {}, false);
      *holder = h ? h->metadata["node"] : std::string("?");
      return false;
    }
    *problem = r.error().describe();
    return false;
  }
  // A versioned bucket ignores If-None-Match: the oldest version wins.
  auto versions = client.list_object_versions(key);
  if (!versions) {
    (void)client.delete_object(key, r->version_id);
    *problem = versions.error().describe();
    return false;
  }
  std::vector<ObjectVersion> mine;
  for (const auto& v : *versions)
    if (v.key == key && !v.delete_marker) mine.push_back(v);
  if (mine.size() <= 1 || r->version_id.empty()) return true;
  // ListObjectVersions lists a key's versions newest first.
  if (mine.back().version_id == r->version_id) return true;
  (void)client.delete_object(key, r->version_id);
  auto h = client.head_object(key, mine.back().version_id, false);
  *holder = h ? h->metadata["node"] : std::string("?");
  return false;
}

}  // namespace

RecoveryResult recover_orphans(S3Client& client, const RecoveryOptions& options) {
  auto log = common::logger("recover");
  RecoveryResult out;
  auto now = options.now_ms ? options.now_ms() : std::chrono::duration_cast<std::chrono::milliseconds>(
                                                     std::chrono::system_clock::now().time_since_epoch()).count();
  auto all = client.list_object_versions("");
  if (!all) {
    out.problems.push_back("list partials: " + all.error().describe());
    return out;
  }
  std::map<std::string, Group> groups;
  for (const auto& v : *all) {
    auto k = parse_partial_key(v.key);
    if (!k || v.delete_marker || !v.is_latest) continue;
    auto& g = groups[k->region + "/" + k->recording_id];
    g.region = k->region;
    g.recording_id = k->recording_id;
    if (k->lease) {
      g.leased = true;
      continue;
    }
    g.partials.push_back(v);
    if (auto t = parse_s3_time_ms(v.last_modified)) g.newest_ms = std::max(g.newest_ms, *t);
  }
  for (auto& [name, g] : groups) {
    if (g.leased) {
      out.busy.push_back(g.recording_id + ": lease taken (being adopted, or adopted and awaiting delivery)");
      continue;
    }
    if (g.partials.empty()) continue;
    if (now - g.newest_ms < options.older_than_ms) {
      ++out.live;
      continue;
    }
    const std::string spool_path = options.spool_dir + "/" + g.recording_id + ".spool";
    if (::access(spool_path.c_str(), F_OK) == 0) {
      out.busy.push_back(g.recording_id + ": this node's spool folder already has it");
      continue;
    }
    const std::string prefix = partials_prefix(g.region, g.recording_id);
    std::string holder, problem;
    if (!take_lease(client, prefix + std::string(kLeaseName), options.node, now, &holder, &problem)) {
      if (!problem.empty()) out.problems.push_back(g.recording_id + ": lease: " + problem);
      else out.busy.push_back(g.recording_id + ": lease held by " + holder);
      continue;
    }
    // Relist under the lease: what another node may have deleted meanwhile is gone.
    auto fresh = client.list_object_versions(prefix);
    std::vector<std::pair<std::uint64_t, ObjectVersion>> parts;
    if (fresh)
      for (const auto& v : *fresh)
        if (auto k = parse_partial_key(v.key); k && k->seq && v.is_latest && !v.delete_marker)
          parts.emplace_back(*k->seq, v);
    std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string spool;
    std::vector<std::string> problems;
    std::uint64_t used = 0, skipped = 0, expect_seq = 0, expect_offset = 0;
    PartialInfo last;
    bool have_first = false;
    for (const auto& [seq, v] : parts) {
      if (seq != expect_seq) {
        problems.push_back("partials " + std::to_string(expect_seq) + ".." + std::to_string(seq - 1) + " missing");
        skipped += seq - expect_seq;
      }
      expect_seq = seq + 1;
      auto got = client.get_object(v.key, v.version_id);
      if (!got) {
        problems.push_back(v.key + ": " + got.error().describe());
        ++skipped;
        continue;
      }
      auto info = PartialInfo::from_metadata(got->head.metadata);
      if (!info) {
        problems.push_back(v.key + ": metadata missing or malformed: skipped");
        ++skipped;
        continue;
      }
      if (got->body.size() != info->length) {
        problems.push_back(v.key + ": truncated (" + std::to_string(got->body.size()) + " of " +
                           std::to_string(info->length) + " bytes): skipped");
        ++skipped;
        continue;
      }
      if (sha256_hex(got->body) != info->sha256) {
        problems.push_back(v.key + ": corrupt (SHA-256 differs from its metadata): skipped");
        ++skipped;
        continue;
      }
      if (seq == 0) have_first = true;
      if (info->offset != expect_offset && have_first)
        problems.push_back(v.key + ": starts at spool offset " + std::to_string(info->offset) + ", expected " +
                           std::to_string(expect_offset) + " (the bytes between are lost)");
      expect_offset = info->offset + info->length;
      if (have_first) spool += got->body;
      ++used;
      last = *info;
    }
    for (const auto& p : problems) log->error("{}: partial skipped: {}", g.recording_id, p);
    for (const auto& p : problems) out.problems.push_back(g.recording_id + ": " + p);
    if (!have_first || spool.empty()) {
      out.problems.push_back(g.recording_id + ": no usable first partial (the spool header): not rebuilt; lease released");
      auto d = client.delete_object(prefix + std::string(kLeaseName));
      (void)d;
      continue;
    }
    // Write the rebuilt spool under a temporary name, append node_lost, then publish it.
    const std::string tmp = options.spool_dir + "/." + g.recording_id + ".adopt.tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write_all(fd, spool) && ::fdatasync(fd) == 0;
    if (fd >= 0) ::close(fd);
    recording::NodeLost lost;
    lost.node = last.node;
    lost.region = last.region.empty() ? g.region : last.region;
    lost.adopted_by = options.node;
    lost.last_shipped_unix_ms = g.newest_ms;
    lost.partials = used;
    lost.partials_skipped = skipped;
    for (const auto& p : problems) lost.problems += (lost.problems.empty() ? "" : "; ") + p;
    if (ok) {
      auto w = recording::SpoolWriter::open_for_append(tmp);
      if (w) {
        // Audio may have reached the lost node up to one segment after its last shipment.
        std::int64_t until_us = (g.newest_ms + last.segment_ms) * 1000 - last.start_unix_us;
        (*w)->append_json(recording::RecordType::kEvent, std::max<std::int64_t>(0, until_us), lost.encode());
        ok = static_cast<bool>((*w)->close());
      } else {
        ok = false;
        out.problems.push_back(g.recording_id + ": rebuilt spool unreadable: " + w.error().message);
      }
    }
    // link() never replaces: a spool of that id that appeared meanwhile wins.
    if (ok) ok = ::link(tmp.c_str(), spool_path.c_str()) == 0;
    ::unlink(tmp.c_str());
    if (ok) {
      int dfd = ::open(options.spool_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
      }
      // Old enough for the finaliser's rescan at once (it skips spools modified in the last seconds).
      struct timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
      (void)::utimensat(AT_FDCWD, spool_path.c_str(), times, 0);
    }
    if (!ok) {
      out.problems.push_back(g.recording_id + ": cannot place the rebuilt spool " + spool_path + ": " +
                             std::strerror(errno) + "; lease released");
      (void)client.delete_object(prefix + std::string(kLeaseName));
      continue;
    }
    log->warn("{}: adopted from node {} ({}): {} partial(s), {} skipped; rebuilt spool {}", g.recording_id,
              lost.node, lost.region, used, skipped, spool_path);
    out.adopted.push_back({g.recording_id, lost.node, lost.region, spool_path, used, skipped});
  }
  return out;
}

}  // namespace sgw::storage
