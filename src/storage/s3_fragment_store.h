// S3FragmentStore: the recording fragments of one conversation read from an S3
// bucket (`siprecd conversation ID --s3`, docs/failover.md). Lists every object
// version under the prefix (latest versions only, delete markers ignored) and
// offers the recording JSONs as candidates; a candidate is `named` when a key
// component equals KeyTemplate::sanitize(conversation id). Keys are only ever
// taken from the listing, never built from the conversation id, so a hostile
// id cannot reach outside the prefix. Audio objects are downloaded into the
// scratch folder (whole objects in memory: a CLI tool, not the daemon).
//
// Thread: one caller at a time (the S3Client is single-threaded).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "recording/conversation.h"
#include "storage/s3_client.h"

namespace sgw::storage {

class S3FragmentStore final : public recording::FragmentStore {
 public:
  struct Bucket {
    std::string name;
    std::unique_ptr<S3Api> client;  // for that bucket
  };
  // One or more buckets (each region's, with the same credentials); prefix:
  // s3.prefix ("" = the whole bucket). Refs are "s3://BUCKET/KEY".
  S3FragmentStore(std::vector<Bucket> buckets, std::string prefix);
  common::Result<std::vector<Candidate>> candidates(const std::string& conversation_id) override;
  common::Result<std::string> read(const std::string& ref, std::uint64_t max_bytes) override;
  common::Result<std::string> local_copy(const std::string& json_ref, const std::string& file_name,
                                         const std::string& scratch_dir) override;
  std::string describe() const override;

 private:
  // The bucket and key of a ref this store produced; nullptr when it is not one.
  S3Api* resolve(const std::string& ref, std::string* key) const;
  std::vector<Bucket> buckets_;
  std::string prefix_;
  std::size_t copies_ = 0;
};

}  // namespace sgw::storage
