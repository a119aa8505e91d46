#include "storage/catalogue.h"

#include <sqlite3.h>

namespace sgw::storage {

namespace {

constexpr int kSchemaVersion = 1;

// docs/storage.md, "The catalogue" (keep the two in step).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS deliveries (
  recording_id TEXT NOT NULL,
  sink TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  bucket TEXT NOT NULL,
  start_unix_ms INTEGER NOT NULL,
  end_unix_ms INTEGER NOT NULL,
  created_unix_ms INTEGER NOT NULL,
  delivered_unix_ms INTEGER NOT NULL,
  local_delete_due_unix_ms INTEGER NOT NULL,
  local_deleted_unix_ms INTEGER NOT NULL,
  PRIMARY KEY (recording_id, sink)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_conversation ON deliveries (conversation_id, start_unix_ms);
CREATE INDEX IF NOT EXISTS deliveries_local_due ON deliveries (local_delete_due_unix_ms)
  WHERE local_delete_due_unix_ms > 0 AND local_deleted_unix_ms = 0;
CREATE TABLE IF NOT EXISTS objects (
  recording_id TEXT NOT NULL, sink TEXT NOT NULL, seq INTEGER NOT NULL,
  key TEXT NOT NULL, path TEXT NOT NULL, content_type TEXT NOT NULL,
  size INTEGER NOT NULL, sha256 TEXT NOT NULL, etag TEXT NOT NULL,
  version_id TEXT NOT NULL, verified TEXT NOT NULL,
  PRIMARY KEY (recording_id, sink, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_key ON objects (key);
)sql";

constexpr const char* kDeliveryColumns =
    "recording_id, sink, conversation_id, bucket, start_unix_ms, end_unix_ms, created_unix_ms, "
    "delivered_unix_ms, local_deleted_unix_ms";

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

// A row of `deliveries` (kDeliveryColumns) as a delivered entry, without objects.
DeliveryEntry entry_of_row(sqlite3_stmt* s) {
  DeliveryEntry e;
  e.recording_id = column_text(s, 0);
  e.sink = column_text(s, 1);
  e.conversation_id = column_text(s, 2);
  e.bucket = column_text(s, 3);
  e.start_unix_ms = sqlite3_column_int64(s, 4);
  e.end_unix_ms = sqlite3_column_int64(s, 5);
  e.created_unix_ms = sqlite3_column_int64(s, 6);
  e.delivered_unix_ms = sqlite3_column_int64(s, 7);
  e.updated_unix_ms = e.delivered_unix_ms;
  e.local_deleted_unix_ms = sqlite3_column_int64(s, 8);
  e.state = DeliveryState::kDelivered;
  return e;
}

// Resets a cached statement when the scope ends.
struct Reset {
  sqlite3_stmt* s;
  ~Reset() {
    if (s) {
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
    }
  }
};

}  // namespace

common::Result<std::unique_ptr<Catalogue>> Catalogue::open(const std::string& path, Mode mode) {
  sqlite3* db = nullptr;
  int flags = mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return common::make_error("catalogue.open", "catalogue " + path + ": " + why);
  }
  std::unique_ptr<Catalogue> c(new Catalogue(path, db));
  sqlite3_busy_timeout(db, 10'000);
  if (mode == Mode::kReadWrite) {
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"})
      if (auto st = c->exec(pragma); !st) return st.error();
  }
  auto* version = c->prepare("PRAGMA user_version");
  if (!version) return c->error("read the schema version");
  int v = 0;
  {
    Reset r{version};
    if (sqlite3_step(version) == SQLITE_ROW) v = sqlite3_column_int(version, 0);
  }
  if (v == 0 && mode == Mode::kReadWrite) {
    if (auto st = c->exec(kSchema); !st) return st.error();
    if (auto st = c->exec("PRAGMA user_version=1"); !st) return st.error();
    v = kSchemaVersion;
  }
  if (v != kSchemaVersion && !(v == 0 && mode == Mode::kReadOnly))
    return common::make_error("catalogue.schema", "catalogue " + path + ": schema version " + std::to_string(v) +
                                                      ", this siprecd reads " + std::to_string(kSchemaVersion));
  return c;
}

Catalogue::~Catalogue() {
  for (auto& [sql, s] : statements_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

common::Error Catalogue::error(const std::string& what) const {
  return common::make_error("catalogue.sqlite", "catalogue " + path_ + ": " + what + ": " + sqlite3_errmsg(db_));
}

common::Status Catalogue::exec(const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string why = msg ? msg : "error";
    sqlite3_free(msg);
    return common::make_error("catalogue.sqlite", "catalogue " + path_ + ": " + why);
  }
  return common::Ok{};
}

sqlite3_stmt* Catalogue::prepare(const char* sql) {
  for (auto& [text, s] : statements_)
    if (text == sql) return s;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) return nullptr;
  statements_.emplace_back(sql, s);
  return s;
}

common::Status Catalogue::put(const std::vector<const DeliveryEntry*>& entries) {
  static constexpr const char* kRow =
      "INSERT OR REPLACE INTO deliveries (recording_id, sink, conversation_id, bucket, start_unix_ms, end_unix_ms, "
      "created_unix_ms, delivered_unix_ms, local_delete_due_unix_ms, local_deleted_unix_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
      "COALESCE((SELECT local_delete_due_unix_ms FROM deliveries WHERE recording_id = ?1 AND sink = ?2), 0), ?9)";
  static constexpr const char* kDropObjects = "DELETE FROM objects WHERE recording_id = ?1 AND sink = ?2";
  static constexpr const char* kObject =
      "INSERT INTO objects (recording_id, sink, seq, key, path, content_type, size, sha256, etag, version_id, "
      "verified) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
  auto* row = prepare(kRow);
  auto* drop = prepare(kDropObjects);
  auto* obj = prepare(kObject);
  if (!row || !drop || !obj) return error("prepare");
  if (auto st = exec("BEGIN IMMEDIATE"); !st) return st;
  auto rollback = [&](const std::string& what) {
    common::Error e = error(what);
    (void)exec("ROLLBACK");
    return e;
  };
  for (const DeliveryEntry* e : entries) {
    {
      Reset r{row};
      bind_text(row, 1, e->recording_id);
      bind_text(row, 2, e->sink);
      bind_text(row, 3, e->conversation_id);
      bind_text(row, 4, e->bucket);
      sqlite3_bind_int64(row, 5, e->start_unix_ms);
      sqlite3_bind_int64(row, 6, e->end_unix_ms);
      sqlite3_bind_int64(row, 7, e->created_unix_ms);
      sqlite3_bind_int64(row, 8, e->delivered_unix_ms);
      sqlite3_bind_int64(row, 9, e->local_deleted_unix_ms);
      if (sqlite3_step(row) != SQLITE_DONE) return rollback("insert " + e->recording_id + " (" + e->sink + ")");
    }
    {
      Reset r{drop};
      bind_text(drop, 1, e->recording_id);
      bind_text(drop, 2, e->sink);
      if (sqlite3_step(drop) != SQLITE_DONE) return rollback("replace objects of " + e->recording_id);
    }
    for (std::size_t i = 0; i < e->objects.size(); ++i) {
      const auto& o = e->objects[i];
      Reset r{obj};
      bind_text(obj, 1, e->recording_id);
      bind_text(obj, 2, e->sink);
      sqlite3_bind_int64(obj, 3, static_cast<sqlite3_int64>(i));
      bind_text(obj, 4, o.key);
      bind_text(obj, 5, o.path);
      bind_text(obj, 6, o.content_type);
      sqlite3_bind_int64(obj, 7, static_cast<sqlite3_int64>(o.size));
      bind_text(obj, 8, o.sha256);
      bind_text(obj, 9, o.etag);
      bind_text(obj, 10, o.version_id);
      bind_text(obj, 11, o.verified);
      if (sqlite3_step(obj) != SQLITE_DONE) return rollback("insert object " + o.key);
    }
  }
  if (auto st = exec("COMMIT"); !st) {
    (void)exec("ROLLBACK");
    return st;
  }
  return common::Ok{};
}

common::Result<std::vector<DeliveryEntry>> Catalogue::select(const char* sql,
                                                             const std::function<void(sqlite3_stmt*)>& bind) {
  static constexpr const char* kObjects =
      "SELECT key, path, content_type, size, sha256, etag, version_id, verified FROM objects "
      "WHERE recording_id = ?1 AND sink = ?2 ORDER BY seq";
  auto* s = prepare(sql);
  auto* objs = prepare(kObjects);
  if (!s || !objs) return error("prepare");
  std::vector<DeliveryEntry> out;
  {
    Reset r{s};
    bind(s);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.push_back(entry_of_row(s));
    if (rc != SQLITE_DONE) return error("select");
  }
  for (auto& e : out) {
    Reset r{objs};
    bind_text(objs, 1, e.recording_id);
    bind_text(objs, 2, e.sink);
    int rc;
    while ((rc = sqlite3_step(objs)) == SQLITE_ROW) {
      DeliveryObject o;
      o.key = column_text(objs, 0);
      o.path = column_text(objs, 1);
      o.content_type = column_text(objs, 2);
      o.size = static_cast<std::uint64_t>(sqlite3_column_int64(objs, 3));
      o.sha256 = column_text(objs, 4);
      o.etag = column_text(objs, 5);
      o.version_id = column_text(objs, 6);
      o.verified = column_text(objs, 7);
      o.delivered = true;
      e.objects.push_back(std::move(o));
    }
    if (rc != SQLITE_DONE) return error("select objects of " + e.recording_id);
  }
  return out;
}

common::Result<bool> Catalogue::contains(const std::string& recording_id, const std::string& sink) {
  auto* s = prepare("SELECT 1 FROM deliveries WHERE recording_id = ?1 AND sink = ?2");
  if (!s) return error("prepare");
  Reset r{s};
  bind_text(s, 1, recording_id);
  bind_text(s, 2, sink);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return error("select " + recording_id);
}

common::Result<std::vector<DeliveryEntry>> Catalogue::recording(const std::string& recording_id) {
  static const std::string sql =
      std::string("SELECT ") + kDeliveryColumns + " FROM deliveries WHERE recording_id = ?1 ORDER BY sink";
  return select(sql.c_str(), [&](sqlite3_stmt* s) { bind_text(s, 1, recording_id); });
}

common::Result<std::optional<DeliveryEntry>> Catalogue::previous_in_conversation(
    const std::string& conversation_id, std::int64_t before_unix_ms) {
  static const std::string sql = std::string("SELECT ") + kDeliveryColumns +
                                 " FROM deliveries WHERE conversation_id = ?1 AND start_unix_ms < ?2"
                                 " AND sink = 'local' ORDER BY start_unix_ms DESC LIMIT 1";
  auto rows = select(sql.c_str(), [&](sqlite3_stmt* s) {
    bind_text(s, 1, conversation_id);
    sqlite3_bind_int64(s, 2, before_unix_ms);
  });
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<DeliveryEntry>{};
  return std::optional<DeliveryEntry>(std::move(rows->front()));
}

common::Status Catalogue::for_each(const std::function<void(DeliveryEntry&&)>& fn) {
  // Pages of rows by primary key, so a million rows never sit in memory at once.
  static const std::string sql = std::string("SELECT ") + kDeliveryColumns +
                                 " FROM deliveries WHERE (recording_id, sink) > (?1, ?2) "
                                 "ORDER BY recording_id, sink LIMIT 1000";
  std::string last_id, last_sink;
  while (true) {
    auto page = select(sql.c_str(), [&](sqlite3_stmt* s) {
      bind_text(s, 1, last_id);
      bind_text(s, 2, last_sink);
    });
    if (!page) return page.error();
    if (page->empty()) return common::Ok{};
    last_id = page->back().recording_id;
    last_sink = page->back().sink;
    for (auto& e : *page) fn(std::move(e));
  }
}

common::Result<std::int64_t> Catalogue::count() {
  auto* s = prepare("SELECT COUNT(*) FROM deliveries");
  if (!s) return error("prepare");
  Reset r{s};
  if (sqlite3_step(s) != SQLITE_ROW) return error("count");
  return static_cast<std::int64_t>(sqlite3_column_int64(s, 0));
}

common::Status Catalogue::set_local_delete_due(const std::string& recording_id, std::int64_t due_unix_ms) {
  auto* s = prepare(
      "UPDATE deliveries SET local_delete_due_unix_ms = ?2 WHERE recording_id = ?1 AND sink = 'local' "
      "AND local_deleted_unix_ms = 0");
  if (!s) return error("prepare");
  Reset r{s};
  bind_text(s, 1, recording_id);
  sqlite3_bind_int64(s, 2, due_unix_ms);
  if (sqlite3_step(s) != SQLITE_DONE) return error("schedule deletion of " + recording_id);
  return common::Ok{};
}

common::Result<std::vector<DeliveryEntry>> Catalogue::local_copies_due(std::int64_t now_ms, std::size_t limit) {
  static const std::string sql = std::string("SELECT ") + kDeliveryColumns +
                                 " FROM deliveries WHERE local_delete_due_unix_ms > 0 AND local_deleted_unix_ms = 0"
                                 " AND local_delete_due_unix_ms <= ?1 ORDER BY local_delete_due_unix_ms LIMIT ?2";
  return select(sql.c_str(), [&](sqlite3_stmt* s) {
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(limit));
  });
}

common::Status Catalogue::set_local_deleted(const std::string& recording_id, std::int64_t unix_ms) {
  auto* s = prepare("UPDATE deliveries SET local_deleted_unix_ms = ?2 WHERE recording_id = ?1 AND sink = 'local'");
  if (!s) return error("prepare");
  Reset r{s};
  bind_text(s, 1, recording_id);
  sqlite3_bind_int64(s, 2, unix_ms);
  if (sqlite3_step(s) != SQLITE_DONE) return error("mark deletion of " + recording_id);
  return common::Ok{};
}

}  // namespace sgw::storage
