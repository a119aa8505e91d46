#include "storage/orphan_recovery.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "recording/spool_events.h"
#include "recording/spool_format.h"
#include "recording/spool_reader.h"
#include "recording/spool_writer.h"
#include "storage/partials.h"

namespace sgw::storage {

namespace {

struct Run {
  std::string region, node, prefix;
  std::uint64_t run = 0;
  std::vector<std::pair<std::uint64_t, ObjectVersion>> partials;  // latest versions only
  bool leased = false, adopted = false;
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

// start_unix_us of a spool's session-start record (0 when it has none).
std::int64_t spool_start_unix_us(const std::string& path) {
  std::int64_t start = 0;
  recording::RecordVisitor v;
  v.on_json = [&](const recording::JsonRecordView& r) {
    if (r.type != recording::RecordType::kSessionStart || start != 0) return;
    auto j = nlohmann::json::parse(r.json.begin(), r.json.end(), nullptr, false);
    if (auto s = j.is_object() ? j.find("start_unix_us") : j.end(); j.is_object() && s != j.end() && s->is_number_integer())
      start = s->get<std::int64_t>();
  };
  (void)recording::read_spool(path, v);
  return start;
}

// Places a rebuilt spool: the temporary file `tmp` (the stitched bytes, already written) gets
// a node_lost event and is linked as <spool_dir>/<id>.spool, never replacing one; `tmp` is
// removed either way. False with *problem set otherwise.
bool place_spool(const std::string& spool_dir, const std::string& recording_id, const std::string& tmp,
                 const recording::NodeLost& lost, std::int64_t until_unix_ms, std::string* problem) {
  const std::string spool_path = spool_dir + "/" + recording_id + ".spool";
  bool ok = true;
  auto w = recording::SpoolWriter::open_for_append(tmp);
  if (w) {
    // Audio may have reached the lost node up to one segment after its last shipment.
    const std::int64_t until_us = until_unix_ms * 1000 - spool_start_unix_us(tmp);
    (*w)->append_json(recording::RecordType::kEvent, std::max<std::int64_t>(0, until_us), lost.encode());
    ok = static_cast<bool>((*w)->close());
    if (!ok) *problem = "cannot finish the rebuilt spool " + tmp;
  } else {
    ok = false;
    *problem = "rebuilt spool unreadable: " + w.error().message;
  }
  // link() never replaces: a spool of that id that appeared meanwhile wins.
  if (ok && ::link(tmp.c_str(), spool_path.c_str()) != 0) {
    ok = false;
    *problem = "cannot place the rebuilt spool " + spool_path + ": " + std::strerror(errno);
  }
  ::unlink(tmp.c_str());
  if (!ok) return false;
  int dfd = ::open(spool_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  // Old enough for the finaliser's rescan at once (it skips spools modified in the last seconds).
  struct timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
  (void)::utimensat(AT_FDCWD, spool_path.c_str(), times, 0);
  return true;
}

// A run this node adopted earlier: deleted once every recording it listed is delivered.
void clean_adopted(S3Client& client, const Run& r, const RecoveryOptions& options, RecoveryResult* out) {
  auto got = client.get_object(r.prefix + std::string(kAdoptedName));
  if (!got) {
    out->problems.push_back(r.prefix + ": adopted record: " + got.error().describe());
    return;
  }
  auto j = nlohmann::json::parse(got->body, nullptr, false);
  const std::string by = j.is_object() && j.contains("by") && j["by"].is_string() ? j["by"].get<std::string>() : "";
  if (by != options.node || !options.delivered) {
    out->busy.push_back(r.prefix + ": adopted by " + (by.empty() ? "?" : by) + ", awaiting its deliveries");
    return;
  }
  if (j.contains("recordings") && j["recordings"].is_array())
    for (const auto& id : j["recordings"])
      if (!id.is_string() || !options.delivered(id.get<std::string>())) return;  // not yet
  if (auto st = delete_run(client, r.prefix); !st) {
    out->problems.push_back(r.prefix + ": delete: " + st.error().message);
    return;
  }
  common::logger("recover")->info("{}: every adopted recording delivered: partials deleted", r.prefix);
  out->cleaned.push_back(r.prefix);
}

// One recording being rebuilt: its bytes go straight to a temporary file in the spool
// folder, partial by partial, so memory holds one partial at a time whatever the run's size.
struct Rebuild {
  std::string tmp;
  int fd = -1;
  std::uint64_t expect = 0;  // the next spool offset
  std::uint64_t used = 0;    // chunks stitched
  std::optional<std::uint64_t> first_seq;
  bool broken = false;  // no first chunk (the spool header), or a write failed
  std::vector<std::string> gaps;
};

// A partial fetched and checked (length, footer, index CRC; each chunk's CRC marks it damaged or
// not); nullopt with *why otherwise.
std::optional<DecodedPartial> fetch_partial(S3Client& client, const ObjectVersion& v, std::string* body,
                                            std::string* why) {
  auto got = client.get_object(v.key, v.version_id);
  if (!got) {
    *why = got.error().describe();
    return std::nullopt;
  }
  auto info = PartialInfo::from_metadata(got->head.metadata);
  if (!info) {
    *why = "metadata missing or malformed";
    return std::nullopt;
  }
  if (got->body.size() != info->length) {
    *why = "truncated (" + std::to_string(got->body.size()) + " of " + std::to_string(info->length) + " bytes)";
    return std::nullopt;
  }
  *body = std::move(got->body);
  auto d = decode_partial(*body);
  if (!d) {
    *why = "unreadable: " + d.error().message;
    return std::nullopt;
  }
  return std::move(d).value();
}

void adopt_run(S3Client& client, const Run& r, const RecoveryOptions& options, std::int64_t now,
               RecoveryResult* out) {
  auto log = common::logger("recover");
  const std::string lease_key = r.prefix + std::string(kLeaseName);
  std::string holder, problem;
  if (!take_lease(client, lease_key, options.node, now, &holder, &problem)) {
    if (!problem.empty()) out->problems.push_back(r.prefix + ": lease: " + problem);
    else out->busy.push_back(r.prefix + ": lease held by " + holder);
    return;
  }
  // Relist under the lease: what another node may have deleted meanwhile is gone.
  std::vector<std::pair<std::uint64_t, ObjectVersion>> parts;
  if (auto fresh = client.list_object_versions(r.prefix))
    for (const auto& v : *fresh)
      if (auto k = parse_partial_key(v.key); k && k->seq && v.is_latest && !v.delete_marker)
        parts.emplace_back(*k->seq, v);
  std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> problems;
  std::vector<std::uint64_t> bad;
  auto skip = [&](std::uint64_t seq, const std::string& key, const std::string& why) {
    problems.push_back(key + ": " + why + ": skipped");
    bad.push_back(seq);
    log->error("{}: partial skipped: {}: {}", r.prefix, key, why);
  };
  // 1. The newest readable partial says what is pending.
  std::optional<DecodedPartial> newest;
  std::string newest_body;
  std::size_t newest_at = parts.size();
  while (newest_at > 0 && !newest) {
    --newest_at;
    std::string why;
    newest = fetch_partial(client, parts[newest_at].second, &newest_body, &why);
    if (!newest) skip(parts[newest_at].first, parts[newest_at].second.key, why);
  }
  if (!newest) {
    for (const auto& p : problems) out->problems.push_back(p);
    out->problems.push_back(r.prefix + ": no readable partial: nothing rebuilt; lease released");
    (void)client.delete_object(lease_key);
    return;
  }
  if (newest_at + 1 != parts.size())
    problems.push_back(r.prefix + ": the newest partial is unreadable: the pending list is partial " +
                       std::to_string(parts[newest_at].first) + "'s");
  const PartialIndex index = newest->index;
  // 2. Which pending recordings to rebuild: not those this node still has.
  std::map<std::string, Rebuild> rebuilds;
  for (const auto& rid : index.pending) {
    const std::string spool_path = options.spool_dir + "/" + rid + ".spool";
    if (::access(spool_path.c_str(), F_OK) == 0 || (options.known_locally && options.known_locally(rid))) {
      out->local.push_back(rid);
      continue;
    }
    Rebuild& b = rebuilds[rid];
    b.tmp = options.spool_dir + "/." + rid + ".adopt.tmp";
  }
  // 3. Every partial up to the newest readable, in order; each chunk of a recording being
  //    rebuilt appended to its file.
  for (std::size_t i = 0; i <= newest_at && !rebuilds.empty(); ++i) {
    const auto& [seq, v] = parts[i];
    std::string body, why;
    std::optional<DecodedPartial> fetched;
    if (i != newest_at) fetched = fetch_partial(client, v, &body, &why);  // the newest is fetched already
    const std::optional<DecodedPartial>& d = i == newest_at ? newest : fetched;
    if (!d) {
      skip(seq, v.key, why);
      continue;
    }
    for (std::size_t c = 0; c < d->index.chunks.size(); ++c) {
      const auto& chunk = d->index.chunks[c];
      auto it = rebuilds.find(chunk.recording_id);
      if (it == rebuilds.end() || it->second.broken) continue;
      Rebuild& b = it->second;
      if (d->damaged[c]) {
        // Its bytes become a stated gap (below, at the next chunk), never audio.
        problems.push_back(v.key + ": chunk of " + chunk.recording_id + " (spool bytes " +
                           std::to_string(chunk.offset) + ".." + std::to_string(chunk.offset + chunk.length) +
                           ") damaged (CRC-32C differs): not used");
        log->error("{}: {}: chunk of {} damaged (CRC-32C differs): not used", r.prefix, v.key, chunk.recording_id);
      }
      if (!b.first_seq) {
        b.first_seq = seq;
        if (chunk.offset != 0 || d->damaged[c]) {
          b.broken = true;  // its spool header was in a partial skipped, or damaged
          continue;
        }
        b.fd = ::open(b.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (b.fd < 0) {
          b.broken = true;
          b.gaps.push_back("cannot create " + b.tmp + ": " + std::strerror(errno));
          continue;
        }
      }
      if (d->damaged[c]) continue;
      if (chunk.offset < b.expect) {
        b.gaps.push_back("partial " + std::to_string(seq) + " repeats bytes already stitched: not used");
        continue;
      }
      // Bytes lost in a skipped partial: the spool reader resynchronises on the next valid record.
      if (chunk.offset > b.expect)
        b.gaps.push_back("spool bytes " + std::to_string(b.expect) + ".." + std::to_string(chunk.offset) +
                         " lost (in a partial skipped or a damaged chunk)");
      if (!write_all(b.fd, d->data[c])) {
        b.broken = true;
        b.gaps.push_back("cannot write " + b.tmp + ": " + std::strerror(errno));
        continue;
      }
      b.expect = chunk.offset + chunk.length;
      ++b.used;
    }
  }
  for (const auto& p : problems) out->problems.push_back(p);
  std::string joined;
  for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
  // 4. Each rebuilt spool made durable, given its node_lost event and placed.
  for (auto& [rid, b] : rebuilds) {
    bool ok = !b.broken && b.fd >= 0 && ::fdatasync(b.fd) == 0;
    if (b.fd >= 0) ::close(b.fd);
    if (!ok) {
      ::unlink(b.tmp.c_str());
      out->problems.push_back(rid + ": " +
                              (b.gaps.empty() ? std::string("no usable first partial (the spool header): not rebuilt")
                                              : b.gaps.back() + ": not rebuilt"));
      continue;
    }
    const std::uint64_t first = *b.first_seq;  // (clang: a structured binding is not captured)
    const auto skipped =
        static_cast<std::uint64_t>(std::count_if(bad.begin(), bad.end(), [first](std::uint64_t s) { return s > first; }));
    recording::NodeLost lost;
    lost.node = index.node.empty() ? r.node : index.node;
    lost.region = index.region.empty() ? r.region : index.region;
    lost.adopted_by = options.node;
    lost.last_shipped_unix_ms = r.newest_ms;
    lost.partials = b.used;
    lost.partials_skipped = skipped;
    lost.problems = joined;
    for (const auto& g : b.gaps) lost.problems += (lost.problems.empty() ? "" : "; ") + g;
    std::string why;
    if (!place_spool(options.spool_dir, rid, b.tmp, lost, r.newest_ms + index.segment_ms, &why)) {
      out->problems.push_back(rid + ": " + why);
      continue;
    }
    const std::string spool_path = options.spool_dir + "/" + rid + ".spool";
    log->warn("{}: adopted from node {} ({}): {} partial(s), {} skipped; rebuilt spool {}", rid, lost.node,
              lost.region, b.used, skipped, spool_path);
    out->adopted.push_back({rid, lost.node, lost.region, spool_path, b.used, skipped});
  }
  if (index.pending.empty()) {
    // The node had delivered everything it shipped: what is left is only garbage.
    if (auto st = delete_run(client, r.prefix); st) out->cleaned.push_back(r.prefix);
    else out->problems.push_back(r.prefix + ": delete: " + st.error().message);
    return;
  }
  PutObjectOptions put;
  put.content_type = "application/json";
  put.metadata = {{"node", options.node}};
  const std::string record =
      nlohmann::json{{"by", options.node}, {"unix_ms", now}, {"recordings", index.pending}}.dump();
  if (auto w = client.put_object(r.prefix + std::string(kAdoptedName), record, put); !w)
    out->problems.push_back(r.prefix + ": adopted record: " + w.error().describe() +
                            " (the run's partials stay until deleted by hand)");
}

}  // namespace

RecoveryResult recover_orphans(S3Client& client, const RecoveryOptions& options) {
  RecoveryResult out;
  const std::int64_t now = options.now_ms ? options.now_ms()
                                          : std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count();
  auto all = client.list_object_versions("");
  if (!all) {
    out.problems.push_back("list partials: " + all.error().describe());
    return out;
  }
  std::map<std::string, Run> runs;
  std::map<std::string, std::int64_t> node_newest;  // region/node -> its newest partial, any run
  for (const auto& v : *all) {
    auto k = parse_partial_key(v.key);
    if (!k || v.delete_marker || !v.is_latest) continue;
    const std::string prefix = run_prefix(k->region, k->node, k->run);
    auto& r = runs[prefix];
    r.region = k->region;
    r.node = k->node;
    r.run = k->run;
    r.prefix = prefix;
    if (k->lease) {
      r.leased = true;
    } else if (k->adopted) {
      r.adopted = true;
    } else {
      r.partials.emplace_back(*k->seq, v);
      if (auto t = parse_s3_time_ms(v.last_modified)) {
        r.newest_ms = std::max(r.newest_ms, *t);
        auto& n = node_newest[k->region + "/" + k->node];
        n = std::max(n, *t);
      }
    }
  }
  for (auto& [prefix, r] : runs) {
    const bool own = r.region == options.region && r.node == options.node;
    if (own && r.run == options.current_run) continue;  // this process's own, live
    if (r.leased) {
      if (r.adopted) clean_adopted(client, r, options, &out);
      else out.busy.push_back(prefix + ": lease taken (being adopted)");
      continue;
    }
    if (r.partials.empty()) continue;
    // This gateway's own earlier run (it restarted) is over once it stopped shipping (two
    // intervals); another node's when that node has shipped nothing, in any run, for older_than_ms.
    const bool mine = own && options.current_run != 0;
    if (mine && now - r.newest_ms < options.own_over_after_ms) {
      ++out.live;
      if (r.run > options.current_run)  // started after this process: not its predecessor
        out.problems.push_back(prefix + ": another process ships under this node's name (node.name " + r.node +
                               ", region " + r.region + "): give every gateway its own node.name");
      continue;
    }
    if (!mine) {
      if (!options.adopt_others) continue;
      if (now - node_newest[r.region + "/" + r.node] < options.older_than_ms) {
        ++out.live;
        continue;
      }
    }
    adopt_run(client, r, options, now, &out);
  }
  return out;
}

}  // namespace sgw::storage
