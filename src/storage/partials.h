// Partials: what a node ships of its recordings' spools while the calls run,
// so that a node destroyed with its disk loses at most one segment interval of
// each call (docs/failover.md "Segment shipping").
//
// One partial per node and interval, not one per recording: every interval the
// shipper cuts the bytes each open spool gained since the last cut and ships
// them together, with an index, as one object. The cost of shipping is then
// per byte (one read, one hash, one upload), not per recording and interval.
//
// Object layout in the partials bucket (s3.partials_bucket, never under
// Object Lock). `run` is the shipping process's start (Unix ms): a restarted
// node ships under a new run, and its previous run is adopted like any other.
//   {region}/partial/{node}/{run}/{seq:08}   one partial (below)
//   {region}/partial/{node}/{run}/lease      the adopting node's lease (orphan_recovery.h)
//   {region}/partial/{node}/{run}/adopted    what the adopter took over (JSON)
//
// A partial's body: the line "SGWPART1 <index length>\n", the index (JSON),
// then each chunk's bytes in index order. The index names the node, region,
// run, seq, cut time and segment interval; each chunk (recording id, spool
// offset, length); and `pending`: every recording of the run whose bytes were
// shipped and whose final recording was not yet delivered and verified when
// the partial was cut. The newest partial's pending list is what an adopter
// rebuilds. User metadata: node, region, run, seq, length, sha256 (hex, of
// the body), segment-ms.
//
// Two delivery-queue sinks (delivery_queue.h), so shipping and deletion are
// as durable as any delivery:
//   "partial"          one entry per partial: PUT (the SigV4 payload hash: the
//                      server checks the body), HEAD to verify, then the local
//                      partial file is removed;
//   "partials-delete"  deletes the listed keys in order (every version of
//                      each): partials nobody needs any more.
//
// Thread: the sinks are one per delivery thread (each owns an S3Client).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
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
inline constexpr std::string_view kPartialMagic = "SGWPART1";

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
// The head of a partial's body: the magic line and the index. The chunks'
// bytes follow it, in index order.
std::string encode_partial_head(const PartialIndex& index);
// A partial's body split into its index and each chunk's bytes (views into
// `body`). An error naming the problem when the magic, the index or the
// lengths do not add up: such a partial is never stitched.
struct DecodedPartial {
  PartialIndex index;
  std::vector<std::string_view> data;  // one per index.chunks
};
common::Result<DecodedPartial> decode_partial(std::string_view body);

// What a partial says about itself (its user metadata).
struct PartialInfo {
  std::string node, region;
  std::uint64_t run = 0, seq = 0, length = 0;
  std::string sha256;  // hex
  std::int64_t segment_ms = 0;
  std::map<std::string, std::string> to_metadata() const;
  // nullopt when a field is missing or malformed.
  static std::optional<PartialInfo> from_metadata(const std::map<std::string, std::string>& m);
};

// Local partial file names in the shipper's folder: "<run>.<seq>.part".
std::string partial_file_name(std::uint64_t run, std::uint64_t seq);
struct PartialFileName {
  std::uint64_t run = 0, seq = 0;
};
std::optional<PartialFileName> parse_partial_file_name(std::string_view name);

// The delivery entry's recording id of a partial: "partial.<run>.<seq:08>"
// (parse: nullopt for any other id).
std::string partial_entry_id(std::uint64_t run, std::uint64_t seq);
std::optional<PartialFileName> parse_partial_entry_id(std::string_view id);

struct PartialSinkOptions {
  S3ClientConfig client;  // the partials bucket
  std::string node, region;
  std::int64_t segment_ms = 0;
  // This process's run. A partial of an earlier run still queued (a restart)
  // is dropped, not uploaded: that run is over and adopted by this node
  // (orphan_recovery.h), and the spools hold its bytes. 0: every run ships.
  std::uint64_t run = 0;
};

// Sink "partial". An entry has one object: path = the local partial file
// (named by partial_file_name), key = partial_key(). When the object carries a
// sha256 (hex), a file that no longer matches it is a permanent failure. The
// body is hashed once, for the request's payload hash (which the server
// checks) and the metadata. Partials are not locked, so a retry after a lost
// reply simply overwrites the same bytes.
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
