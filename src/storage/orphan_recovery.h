// Orphan adoption (docs/failover.md "Adoption"): finds recordings whose node
// stopped shipping partials (storage/partials.h) longer than `older_than_ms`
// ago, takes a lease so that exactly one node adopts each, rebuilds the spool
// from the partials and places it in this node's spool folder, where the
// finaliser publishes it (complete:false, a gap of cause node_lost at the
// end) and the delivery queue delivers it like any other recording.
//
// The lease, {region}/partial/{recording_id}/lease:
//  1. PUT with If-None-Match: * ; 412 PreconditionFailed = another node has it.
//     radosgw (Ceph 16, Debian 12) honours this atomically on an unversioned
//     bucket, and ignores it on a versioned one (every PUT succeeds).
//  2. then ListObjectVersions of the lease key: if more than one version exists
//     (a versioned bucket that ignored the condition) the OLDEST version wins;
//     every other contender deletes its own version and backs off. A version
//     written after the winner listed is newer than the winner's, so two nodes
//     can never both see themselves as oldest.
// The lease is deleted with the partials, last, once the final recording is
// delivered (partials-delete), so a node that takes it later finds nothing.
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
  std::string spool_dir;  // where rebuilt spools are placed
  std::int64_t older_than_ms = 60000;  // newest partial older than this: orphan
  std::function<std::int64_t()> now_ms;  // default: system clock
};

struct RecoveryResult {
  struct Adopted {
    std::string recording_id, node, region, spool_path;
    std::uint64_t partials = 0, skipped = 0;
  };
  std::vector<Adopted> adopted;
  std::vector<std::string> busy;      // "<id>: lease held by <node>" (someone else adopts it)
  std::vector<std::string> problems;  // corrupt/truncated/missing partials, S3 errors: one line each
  std::size_t live = 0;               // recordings whose node still ships
};

RecoveryResult recover_orphans(S3Client& client, const RecoveryOptions& options);

}  // namespace sgw::storage
