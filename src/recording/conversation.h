// Fragments of one conversation joined (docs/failover.md "Fragments"): when an
// SRC re-establishes a recording on another gateway, or forks a call to two
// gateways, each gateway publishes its own recording (a fragment) carrying the
// same fragment_of / conversation_id. load_conversation() reads them from a
// FragmentStore (a recordings folder, or an S3 bucket: storage layer), checks
// each one (JSON parses, the audio's size and SHA-256 are the JSON's), and
// computes the conversation's covered time, its gaps with their cause and the
// coverage of its wall time; stitch_conversation() writes one audio file of
// the whole conversation with exact silences for the gaps, and says which
// fragment each stretch came from.
//
// Untrusted input: every document and audio file is checked before use; a
// fragment that is corrupt or truncated is listed in `skipped` with the
// reason and never contributes audio. The conversation id is only compared,
// never used to build a path or key (FragmentStore's contract), so a hostile
// id cannot reach outside the store.
//
// Thread: blocking I/O, any thread (the `siprecd conversation` command).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sgw::recording {

// Where fragments are read from. Refs are opaque names (paths, keys) the store
// itself produced: nothing is derived from the conversation id.
class FragmentStore {
 public:
  virtual ~FragmentStore() = default;
  struct Candidate {
    std::string ref;   // a recording JSON that may belong to the conversation
    bool named = false;  // its location names the conversation (a key template component)
  };
  // Every recording JSON the store holds that may be the conversation's.
  virtual common::Result<std::vector<Candidate>> candidates(const std::string& conversation_id) = 0;
  // The bytes of a JSON document (at most max_bytes; more is an error).
  virtual common::Result<std::string> read(const std::string& ref, std::uint64_t max_bytes) = 0;
  // A local file holding the object `file_name` (no '/') published next to json_ref
  // (a folder store returns its path; a bucket store downloads it into scratch_dir).
  virtual common::Result<std::string> local_copy(const std::string& json_ref, const std::string& file_name,
                                                 const std::string& scratch_dir) = 0;
  virtual std::string describe() const = 0;  // "/var/lib/siprecd/recordings", "s3://bucket/prefix"
};

// Folders of published recordings (recording.dir of one or more gateways): every *.json below them.
// `named` is true when a path component equals sanitize(conversation_id).
class DirFragmentStore final : public FragmentStore {
 public:
  DirFragmentStore(std::vector<std::string> dirs, std::function<std::string(std::string_view)> sanitize);
  common::Result<std::vector<Candidate>> candidates(const std::string& conversation_id) override;
  common::Result<std::string> read(const std::string& ref, std::uint64_t max_bytes) override;
  common::Result<std::string> local_copy(const std::string& json_ref, const std::string& file_name,
                                         const std::string& scratch_dir) override;
  std::string describe() const override;

 private:
  std::vector<std::string> dirs_;
  std::function<std::string(std::string_view)> sanitize_;
};

// Half-open [start, end) in Unix milliseconds.
struct TimeSpan {
  std::int64_t start = 0;
  std::int64_t end = 0;
  std::int64_t length() const { return end - start; }
};

struct FragmentGapInfo {
  TimeSpan span;
  std::string cause;  // the recording's gap cause (no_media, node_lost, end, pause, ...)
};

struct Fragment {
  std::string ref;  // the JSON
  std::string recording_id, node, region, fragment_of, previous_fragment, recording_call_id;
  TimeSpan span;    // start_time .. start_time + duration_ms
  bool complete = true;
  std::string end_cause;  // incomplete_reason, else the "end: ..." event
  // Time with audio of at least one stream: span minus the gaps every stream shares.
  std::vector<TimeSpan> covered;
  std::vector<FragmentGapInfo> gaps;  // those shared gaps, with their cause
  // The audio (one file; checked against the JSON's size and SHA-256).
  std::string audio_file;
  std::string audio_path;  // local copy
  unsigned channels = 0;
  std::uint32_t sample_rate = 0;
  int caller_channel = -1, agent_channel = -1;  // from participants' roles; -1 unknown
};

struct SkippedFragment {
  std::string ref;
  std::string recording_id;  // "" when the JSON could not be read
  std::string reason;
};

struct ConversationGap {
  TimeSpan span;
  std::string cause;   // a fragment's gap cause, "between_fragments" or "fragment_unusable"
  std::string detail;  // which fragment, and why it ended
};

struct Conversation {
  std::string id;
  std::string store;
  std::vector<Fragment> fragments;  // in start order
  std::vector<SkippedFragment> skipped;
  TimeSpan wall;                    // first fragment start .. last fragment end
  std::vector<TimeSpan> covered;    // union over the fragments
  std::vector<ConversationGap> gaps;
  std::vector<std::pair<TimeSpan, std::vector<std::string>>> overlaps;  // covered by >1 fragment (recording ids)
  std::int64_t covered_ms = 0;
  double coverage_percent = 0;      // covered_ms / wall length
};

// Reads and checks every fragment of conversation_id (audio copies of a bucket
// store go to scratch_dir). No fragment at all is an error "conversation.not_found".
common::Result<Conversation> load_conversation(FragmentStore& store, const std::string& conversation_id,
                                               const std::string& scratch_dir);

nlohmann::json to_json(const Conversation& c);
std::string to_text(const Conversation& c);  // the command's table

// One stretch of the stitched file.
struct StitchSegment {
  TimeSpan span;
  std::string source;  // recording id; "" = silence (a gap)
  std::string cause;   // the gap's cause when source is ""
  bool overlap = false;  // more than one fragment covered it; source had the most audio
};

struct StitchResult {
  std::string path;
  std::uint32_t sample_rate = 0;
  unsigned channels = 0;           // 2: caller left, agent right
  std::uint64_t frames = 0;
  std::string sha256;
  std::vector<StitchSegment> segments;
  std::vector<SkippedFragment> skipped;  // fragments left out of the audio (format differs, ...)
};

// Writes the whole conversation to out_path (WAV, 16-bit, at the first usable
// fragment's rate, caller on channel 0 and agent on channel 1 where the roles
// are known), published atomically, and out_path's ".json" sibling stating
// every segment's source or gap. Per interval covered by several fragments,
// the one with the most audio there is taken (and said).
common::Result<StitchResult> stitch_conversation(const Conversation& c, const std::string& out_path);

}  // namespace sgw::recording
