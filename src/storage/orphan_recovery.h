// Orphan adoption (docs/failover.md "Adoption"): finds runs of partials
// (storage/partials.h) whose node stopped shipping longer than `older_than_ms`
// ago - and this node's own earlier runs (a restart) at once - takes a lease
// so that exactly one node adopts each run, and rebuilds every recording the
// run's newest partial lists as pending from the run's partials, placing each
// spool in this node's spool folder, where the finaliser publishes it
// (complete:false, a gap of cause node_lost at the end) and the delivery queue
// delivers it like any other recording. A recording this node still has
// (its spool, or a delivery entry: a restart with the disk intact) is left to
// its own recovery, not rebuilt.
//
// The lease, {region}/partial/{node}/{run}/lease:
//  1. PUT with If-None-Match: * ; 412 PreconditionFailed = another node has it.
//     radosgw (Ceph 16, Debian 12) honours this atomically on an unversioned
//     bucket, and ignores it on a versioned one (every PUT succeeds).
//  2. then ListObjectVersions of the lease key: if more than one version exists
//     (a versioned bucket that ignored the condition) the OLDEST version wins;
//     every other contender deletes its own version and backs off. A version
//     written after the winner listed is newer than the winner's, so two nodes
//     can never both see themselves as oldest.
// Then {run}/adopted lists the run's pending recordings. A later pass of the
// lease holder deletes the whole run (partials, adopted, the lease last) once
// every one of them is delivered (`delivered`), so a node that takes the lease
// later finds nothing.
//
// Thread: blocking (S3 and disk); the `recover` command or the adoption
// thread, never a media or SIP thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "storage/s3_client.h"

namespace sgw::storage {

struct RecoveryOptions {
  std::string node;       // this node (written into the lease and the recording)
  std::string region;     // this node's region: with node, which runs are its own
  std::uint64_t current_run = 0;  // this process's own shipping run: never adopted (0: none)
  // With a current run: this node's earlier run is over once its newest partial is older than
  // this (a live run ships every interval: two gateways given the same node.name must not take
  // each other's live runs). Set it to about two shipping intervals.
  std::int64_t own_over_after_ms = 0;
  std::string spool_dir;  // where rebuilt spools are placed
  std::int64_t older_than_ms = 60000;  // another node's run whose newest partial is older: orphan
  bool adopt_others = true;  // false: only this node's own earlier runs (and the clean-up)
  std::function<std::int64_t()> now_ms;  // default: system clock
  // This node still has the recording (a delivery entry, pending or done): not rebuilt. Null: none.
  std::function<bool(const std::string& recording_id)> known_locally;
  // The recording's final copy is delivered and verified (the clean-up of
  // adopted runs). Null: adopted runs are never deleted by this pass.
  std::function<bool(const std::string& recording_id)> delivered;
};

struct RecoveryResult {
  struct Adopted {
    std::string recording_id, node, region, spool_path;
    std::uint64_t partials = 0, skipped = 0;
  };
  std::vector<Adopted> adopted;
  std::vector<std::string> local;     // pending recordings of an own earlier run this node still has
  std::vector<std::string> busy;      // "<run>: lease held by <node>" (someone else adopts it)
  std::vector<std::string> problems;  // corrupt/truncated/missing partials, S3 errors: one line each
  std::vector<std::string> cleaned;   // run prefixes deleted (everything they held is delivered)
  std::size_t live = 0;               // runs whose node still ships
};

RecoveryResult recover_orphans(S3Client& client, const RecoveryOptions& options);

}  // namespace sgw::storage
