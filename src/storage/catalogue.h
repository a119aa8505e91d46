// Catalogue: every delivered (recording, sink), compacted out of the delivery
// queue's hot folder into an indexed SQLite file (schema and durability:
// docs/storage.md, "The catalogue"). The queue writes a row when an entry is
// verified and then forgets the entry, so its per-pick work depends only on
// what is pending. Rows keep what a compliance reviewer (and issue 11's
// per-conversation stitching) asks: conversation, times, bucket, keys,
// version ids, SHA-256s.
//
// Thread: thread-compatible (one connection); the queue calls it under its
// mutex. Another process may read the same file at the same time (WAL).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "storage/delivery_entry.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sgw::storage {

class Catalogue {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  // Creates the file and schema in kReadWrite mode. Errors (catalogue.open,
  // catalogue.schema) name the file.
  static common::Result<std::unique_ptr<Catalogue>> open(const std::string& path, Mode mode);
  ~Catalogue();
  Catalogue(const Catalogue&) = delete;
  Catalogue& operator=(const Catalogue&) = delete;

  const std::string& path() const { return path_; }

  // Writes delivered entries (rows and their objects) in one transaction,
  // replacing rows of the same (recording, sink). Durable when it returns.
  common::Status put(const std::vector<const DeliveryEntry*>& entries);
  common::Status put(const DeliveryEntry& entry) { return put(std::vector<const DeliveryEntry*>{&entry}); }

  common::Result<bool> contains(const std::string& recording_id, const std::string& sink);
  // Every row of one recording (all sinks), with its objects.
  common::Result<std::vector<DeliveryEntry>> recording(const std::string& recording_id);
  // The `local` row of the latest recording of a conversation that started
  // before before_unix_ms (index deliveries_by_conversation); nullopt: none.
  common::Result<std::optional<DeliveryEntry>> previous_in_conversation(const std::string& conversation_id,
                                                                        std::int64_t before_unix_ms);
  // Every row in (recording, sink) order (the `deliveries` command, tests).
  common::Status for_each(const std::function<void(DeliveryEntry&&)>& fn);
  common::Result<std::int64_t> count();

  // Local retention: the `local` row's deletion time (0: not scheduled), the
  // rows due at `now_ms` (at most `limit`, oldest first), and their deletion.
  common::Status set_local_delete_due(const std::string& recording_id, std::int64_t due_unix_ms);
  common::Result<std::vector<DeliveryEntry>> local_copies_due(std::int64_t now_ms, std::size_t limit);
  common::Status set_local_deleted(const std::string& recording_id, std::int64_t unix_ms);

 private:
  Catalogue(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  common::Error error(const std::string& what) const;
  common::Status exec(const char* sql);
  sqlite3_stmt* prepare(const char* sql);  // cached per SQL text; nullptr on error
  common::Result<std::vector<DeliveryEntry>> select(const char* sql,
                                                    const std::function<void(sqlite3_stmt*)>& bind);

  std::string path_;
  sqlite3* db_ = nullptr;
  std::vector<std::pair<const char*, sqlite3_stmt*>> statements_;
};

}  // namespace sgw::storage
