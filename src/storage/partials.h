// Partials: what a node ships of its recordings' spools while the calls run,
// so that a node destroyed with its disk loses at most one segment interval of
// each call (docs/failover.md "Segment shipping").
//
// One partial per node and interval, not one per recording: every interval the
// shipper cuts the bytes each open spool gained since the last cut and ships
// them together, with an index, as one object. No copy is made: the upload
// reads the spools' page cache straight into the socket's buffer and computes
// a CRC-32C on the way (one read, one CRC, one send per byte).
//
// Object layout in the partials bucket (s3.partials_bucket, never under
// Object Lock). `run` is the shipping process's start (Unix ms): a restarted
// node ships under a new run, and its previous run is adopted like any other.
//   {region}/partial/{node}/{run}/{seq:08}   one partial (below)
//   {region}/partial/{node}/{run}/lease      the adopting node's lease (orphan_recovery.h)
//   {region}/partial/{node}/{run}/adopted    what the adopter took over (JSON)
//
// A partial's body (SGWPART2): the chunks first, streamed from the spools
// while they are sent, then the index, so that the index carries each chunk's
// CRC-32C computed in that same pass:
//   "SGWPART2\n"
//   each chunk's spool bytes, in index order
//   the index (JSON)
//   "\nSGWIDX <index length: 12 digits> <index CRC-32C: 8 hex>\n"   (30 bytes)
// The index names the node, region, run, seq, cut time and segment interval;
// each chunk (recording id, spool offset, length, crc32c as 8 hex digits: a
// fixed width, so the body's length is known before its CRCs are); and
// `pending`: every recording of the run whose bytes were shipped and whose
// final recording was not yet delivered and verified when the partial was
// cut. The newest partial's pending list is what an adopter rebuilds. User
// metadata: node, region, run, seq, length, segment-ms.
//
// Integrity: nothing hashes the body as a whole (it is sent UNSIGNED-PAYLOAD,
// S3Client::put_object_stream: a SHA-256 of every spool byte was most of what
// shipping cost). The adopter checks the length, the index's CRC and each
// chunk's CRC; a chunk whose CRC differs is reported and never stitched (its
// bytes are a stated gap), and inside a chunk every spool record still
// carries its own CRC (docs/spool.md).
//
// Two delivery-queue sinks (delivery_queue.h), so shipping and deletion are
// as durable as any delivery:
//   "partial"          one entry per partial: its body is held in this process
//                      only as an open descriptor and a range per spool
//                      (PartialBodies), streamed by the PUT; HEAD to verify.
//                      After a restart the entry is dropped: that run is over
//                      and is adopted from what it did ship (orphan_recovery.h);
//   "partials-delete"  deletes the listed keys in order (every version of
//                      each): partials nobody needs any more.
//
// Thread: the sinks are one per delivery thread (each owns an S3Client).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "storage/delivery_queue.h"
#include "storage/s3_client.h"
#include "storage/s3_sink.h"

namespace sgw::storage {

inline constexpr std::string_view kPartialSink = "partial";
inline constexpr std::string_view kPartialsDeleteSink = "partials-delete";
inline constexpr std::string_view kLeaseName = "lease";
inline constexpr std::string_view kAdoptedName = "adopted";
inline constexpr std::string_view kPartialMagic = "SGWPART2\n";
inline constexpr std::string_view kPartialFooterTag = "\nSGWIDX ";
inline constexpr std::size_t kPartialFooterSize = 30;

// "{region}/partial/{node}/{run}/"
std::string run_prefix(std::string_view region, std::string_view node, std::uint64_t run);
// run_prefix + seq as 8 decimal digits (keys sort in shipping order).
std::string partial_key(std::string_view region, std::string_view node, std::uint64_t run, std::uint64_t seq);

// A key of the partials bucket, split. nullopt for anything else.
struct PartialKey {
  std::string region, node;
  std::uint64_t run = 0;
  std::optional<std::uint64_t> seq;  // a partial
  bool lease = false;                // the lease object
  bool adopted = false;              // the adopter's record
};
std::optional<PartialKey> parse_partial_key(std::string_view key);

// A partial's index (its body's head).
struct PartialChunk {
  std::string recording_id;
  std::uint64_t offset = 0, length = 0;  // spool bytes [offset, offset+length)
  std::uint32_t crc32c = 0;                // of those bytes
  bool operator==(const PartialChunk&) const = default;
};
struct PartialIndex {
  std::string node, region;
  std::uint64_t run = 0, seq = 0;
  std::int64_t unix_ms = 0;     // when it was cut
  std::int64_t segment_ms = 0;  // the shipping interval
  std::vector<PartialChunk> chunks;
  std::vector<std::string> pending;
  bool operator==(const PartialIndex&) const = default;
};
// The index as it goes in the body (each chunk's crc32c as 8 hex digits).
std::string encode_partial_index(const PartialIndex& index);
// The footer (kPartialFooterSize bytes) that ends a body with this index.
std::string encode_partial_footer(std::string_view index_json);
// A whole body from an index and each chunk's bytes (the chunks' crc32c are
// computed here): for tests, fuzzing and tools; the shipper streams the same
// bytes (PartialBody).
std::string encode_partial(PartialIndex index, const std::vector<std::string_view>& data);
// A body split into its index and each chunk's bytes (views into `body`). An
// error naming the problem when the magic, the footer, the index (or its CRC)
// or the lengths do not add up: such a partial is never stitched. A chunk
// whose bytes do not match its CRC is `damaged` (its view is empty): the rest
// of the partial is usable.
struct DecodedPartial {
  PartialIndex index;
  std::vector<std::string_view> data;  // one per index.chunks
  std::vector<bool> damaged;           // one per index.chunks
};
common::Result<DecodedPartial> decode_partial(std::string_view body);

// A partial's body as the shipper cuts it: an open descriptor and a byte range
// per chunk (the spools hold these bytes durably: no copy is written), read
// while the PUT sends it, each chunk's CRC computed on the way, the index
// produced after the last chunk. Reads are sequential from 0; a read at 0
// starts again (curl's rewind). A spool that ends before its range (it never
// shrinks: damage) fails the read, and the upload is retried.
class PartialBody : public BodySource {
 public:
  // `fds`: one per index.chunks, owned (closed by the destructor).
  PartialBody(PartialIndex index, std::vector<int> fds);
  ~PartialBody() override;
  PartialBody(const PartialBody&) = delete;
  PartialBody& operator=(const PartialBody&) = delete;
  std::uint64_t size() const override { return size_; }
  std::int64_t read(std::uint64_t pos, char* buf, std::size_t n) override;
  const PartialIndex& index() const { return index_; }

 private:
  PartialIndex index_;
  std::vector<int> fds_;
  std::uint64_t size_ = 0;
  std::uint64_t data_end_ = 0;  // where the chunks end and the index begins
  std::size_t index_size_ = 0;  // of the encoded index (fixed before the CRCs are known)
  std::uint64_t pos_ = 0;       // the next byte expected
  std::size_t chunk_ = 0;       // the chunk being read
  std::uint64_t in_chunk_ = 0;  // bytes of it read
  std::uint32_t crc_ = 0;       // running CRC of the chunk being read
  std::string tail_;            // index + footer, once every chunk is read
};

// The bodies of this process's partials not uploaded yet, by delivery entry id
// (partial_entry_id): the shipper adds one per cut, the "partial" sink finds
// it and removes it once the object is verified. Thread-safe.
class PartialBodies {
 public:
  void add(const std::string& entry_id, std::shared_ptr<PartialBody> body);
  std::shared_ptr<PartialBody> find(const std::string& entry_id) const;
  void remove(const std::string& entry_id);
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<PartialBody>> bodies_;
};

// What a partial says about itself (its user metadata).
struct PartialInfo {
  std::string node, region;
  std::uint64_t run = 0, seq = 0, length = 0;
  std::int64_t segment_ms = 0;
  std::map<std::string, std::string> to_metadata() const;
  // nullopt when a field is missing or malformed.
  static std::optional<PartialInfo> from_metadata(const std::map<std::string, std::string>& m);
};

struct RunSeq {
  std::uint64_t run = 0, seq = 0;
};

// The delivery entry's recording id of a partial: "partial.<run>.<seq:08>"
// (parse: nullopt for any other id).
std::string partial_entry_id(std::uint64_t run, std::uint64_t seq);
std::optional<RunSeq> parse_partial_entry_id(std::string_view id);

struct PartialSinkOptions {
  S3ClientConfig client;  // the partials bucket
  std::string node, region;
  std::int64_t segment_ms = 0;
  // This process's run. A partial of an earlier run still queued (a restart)
  // is dropped, not uploaded: that run is over and adopted by this node
  // (orphan_recovery.h), and the spools hold its bytes. 0: every run ships.
  std::uint64_t run = 0;
  // The bodies the shipper cut (shared with it; not null).
  std::shared_ptr<PartialBodies> bodies;
};

// Sink "partial". An entry (recording id partial_entry_id()) has one object:
// key = partial_key(), no local path; its body is bodies->find(recording id).
// An entry whose body this process does not hold (an earlier run's, queued
// before a restart) is dropped: that run is adopted instead. Partials are not
// locked, so a retry after a lost reply simply overwrites the same bytes.
class PartialSink : public DeliverySink {
 public:
  static common::Result<std::unique_ptr<PartialSink>> create(PartialSinkOptions options);
  DeliveryOutcome check() override;
  DeliveryOutcome deliver(DeliveryEntry& entry,
                          const std::function<void(const DeliveryEntry&)>& checkpoint) override;

 private:
  PartialSink(PartialSinkOptions options, std::unique_ptr<S3Client> client)
      : options_(std::move(options)), client_(std::move(client)) {}
  PartialSinkOptions options_;
  std::unique_ptr<S3Client> client_;
};

// Sink "partials-delete". Each object's key is a key of the partials bucket
// (parse_partial_key); every version of it is deleted, in the entry's order.
class PartialsDeleteSink : public DeliverySink {
 public:
  static common::Result<std::unique_ptr<PartialsDeleteSink>> create(S3ClientConfig client);
  DeliveryOutcome deliver(DeliveryEntry& entry,
                          const std::function<void(const DeliveryEntry&)>& checkpoint) override;

 private:
  explicit PartialsDeleteSink(std::unique_ptr<S3Client> client) : client_(std::move(client)) {}
  std::unique_ptr<S3Client> client_;
};

// Deletes every version of `key` (that exact key).
common::Status delete_key_versions(S3Client& client, std::string_view key);
// Deletes every version under a run's prefix: the partials in seq order, then
// the adopter's record, the lease last (so a node that can still take the
// lease finds nothing left to adopt, and none ever finds an older partial as
// the newest).
common::Status delete_run(S3Client& client, std::string_view prefix);

// The partials-delete entry of a run's keys (in the order given); recording id
// "partials-delete.<run>": at most one is pending per run (the queue refuses a
// second), so deletions of one run never overtake each other.
DeliveryEntry partials_delete_entry(std::uint64_t run, const std::vector<std::string>& keys);

// "2026-12-04T06:20:01.123Z" -> Unix ms; nullopt when malformed.
std::optional<std::int64_t> parse_s3_time_ms(std::string_view iso);

}  // namespace sgw::storage
