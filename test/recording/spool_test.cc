// Spool format and reader: round trips, torn writes, corruption, headers.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "recording/spool_format.h"
#include "recording/spool_reader.h"
#include "recording/spool_writer.h"
#include "spool_test_util.h"

namespace sgw::recording {
namespace {

using testing::FaultyFileSystem;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

// One record, as written and as read back.
struct Rec {
  RecordType type = RecordType::kRtp;
  std::int64_t time = 0;  // time_us or arrival_us
  std::uint8_t stream = 0;
  std::uint16_t seq = 0;
  std::uint32_t ts = 0;
  std::uint32_t ssrc = 0;
  std::uint8_t pt = 0;
  bool marker = false;
  std::string bytes;  // payload, JSON or XML
  bool operator==(const Rec&) const = default;
};

void append(SpoolWriter& w, const Rec& r) {
  switch (r.type) {
    case RecordType::kRtp:
      w.append_rtp(r.stream, r.time, r.seq, r.ts, r.ssrc, r.pt, r.marker,
                   {reinterpret_cast<const std::uint8_t*>(r.bytes.data()), r.bytes.size()});
      break;
    case RecordType::kMetadata:
      w.append_metadata(r.time, r.bytes);
      break;
    default:
      w.append_json(r.type, r.time, r.bytes);
  }
}

struct ReadBack {
  std::vector<Rec> records;
  std::vector<std::uint64_t> offsets;
  RecordVisitor visitor() {
    RecordVisitor v;
    v.on_rtp = [this](const RtpRecordView& r) {
      records.push_back(Rec{RecordType::kRtp, r.arrival_us, r.stream, r.seq, r.ts, r.ssrc,
                            r.payload_type, r.marker,
                            std::string(reinterpret_cast<const char*>(r.payload.data()), r.payload.size())});
      offsets.push_back(r.offset);
    };
    v.on_json = [this](const JsonRecordView& r) {
      Rec x;
      x.type = r.type;
      x.time = r.time_us;
      x.bytes = std::string(r.json);
      records.push_back(x);
      offsets.push_back(r.offset);
    };
    v.on_metadata = [this](const MetadataRecordView& r) {
      Rec x;
      x.type = RecordType::kMetadata;
      x.time = r.time_us;
      x.bytes = std::string(r.xml);
      records.push_back(x);
      offsets.push_back(r.offset);
    };
    return v;
  }
};

Rec random_rtp(std::mt19937& rng, std::size_t max_payload = 1400) {
  Rec r;
  r.type = RecordType::kRtp;
  r.stream = static_cast<std::uint8_t>(rng() % 4);
  r.time = static_cast<std::int64_t>(rng()) * 17 - 5;  // negative values too
  r.seq = static_cast<std::uint16_t>(rng());
  r.ts = static_cast<std::uint32_t>(rng());
  r.ssrc = static_cast<std::uint32_t>(rng());
  r.pt = static_cast<std::uint8_t>(rng() % 128);
  r.marker = (rng() % 2) == 0;
  r.bytes.resize(rng() % (max_payload + 1));
  for (auto& c : r.bytes) c = static_cast<char>(rng());
  return r;
}

Rec json(RecordType t, std::int64_t time, std::string text) {
  Rec r;
  r.type = t;
  r.time = time;
  r.bytes = std::move(text);
  return r;
}

// Writes records, flushing after each so the offset where each record starts is known.
struct Written {
  std::string path;
  std::vector<std::uint64_t> starts;  // offset of each record
  std::uint64_t size = 0;
};
Written write_spool(const std::string& dir, const std::string& id, const std::vector<Rec>& recs,
                    SpoolFileSystem* fs = nullptr) {
  auto w = SpoolWriter::create(dir, id, fs);
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  Written out;
  out.path = (*w)->path();
  for (const auto& r : recs) {
    out.starts.push_back((*w)->bytes_written());
    append(**w, r);
    EXPECT_TRUE((*w)->flush().ok());
  }
  out.size = (*w)->bytes_written();
  EXPECT_TRUE((*w)->close().ok());
  return out;
}

std::vector<Rec> sample_records(std::mt19937& rng, int rtp_count) {
  std::vector<Rec> recs;
  recs.push_back(json(RecordType::kSessionStart, 1700000000000000, R"({"recording_id":"r1","call_id":"abc@x"})"));
  recs.push_back(json(RecordType::kMetadata, 1700000000000100, "<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>"));
  for (int i = 0; i < rtp_count; ++i) {
    recs.push_back(random_rtp(rng));
    if (i == rtp_count / 2) recs.push_back(json(RecordType::kEvent, 1700000000500000, R"({"event":"pause"})"));
  }
  recs.push_back(json(RecordType::kSessionEnd, 1700000001000000, R"({"reason":"bye"})"));
  return recs;
}

TEST(Crc32c, KnownVectors) {
  const std::string s = "123456789";
  EXPECT_EQ(spool::crc32c({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}), 0xE3069283U);
  EXPECT_EQ(spool::crc32c({}), 0U);
  std::vector<std::uint8_t> zeros(32, 0);
  EXPECT_EQ(spool::crc32c(zeros), 0x8A9136AAU);  // RFC 3720 B.4
}

// Bit-at-a-time CRC-32C straight from the definition, to check the
// accelerated one on every length and alignment the hardware paths split on.
std::uint32_t reference_crc32c(const std::uint8_t* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFU;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1U) ? (c >> 1) ^ 0x82F63B78U : (c >> 1);
  }
  return c ^ 0xFFFFFFFFU;
}

TEST(Crc32c, MatchesTheDefinitionOnEveryLengthOffsetAndSplit) {
  std::mt19937 rng(11);
  std::vector<std::uint8_t> buf(4096 + 64);
  for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
  for (std::size_t offset = 0; offset < 9; ++offset) {
    for (std::size_t n : {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 63, 64, 65, 160, 172, 255, 256, 1023, 4096}) {
      const std::uint8_t* p = buf.data() + offset;
      const std::uint32_t want = reference_crc32c(p, n);
      ASSERT_EQ(spool::crc32c({p, n}), want) << "offset " << offset << " length " << n;
      const std::size_t cut = n / 3;
      std::uint32_t st = spool::crc32c_extend(spool::crc32c_init(), {p, cut});
      st = spool::crc32c_extend(st, {p + cut, n - cut});
      ASSERT_EQ(spool::crc32c_final(st), want) << "split at " << cut << " of " << n;
    }
  }
}

TEST(SpoolRoundTrip, AllRecordTypes) {
  TempDir dir;
  std::mt19937 rng(1);
  auto recs = sample_records(rng, 3000);
  // Also empty JSON, empty RTP payload, extreme values.
  recs.push_back(json(RecordType::kEvent, std::numeric_limits<std::int64_t>::min(), ""));
  Rec edge;
  edge.time = std::numeric_limits<std::int64_t>::max();
  edge.seq = 0xFFFF;
  edge.ts = 0xFFFFFFFF;
  edge.ssrc = 0xFFFFFFFF;
  edge.pt = 127;
  edge.marker = true;
  edge.stream = 255;
  recs.push_back(edge);

  auto w = SpoolWriter::create(dir.path(), "rec-1", nullptr);
  ASSERT_TRUE(w.ok());
  for (std::size_t i = 0; i < recs.size(); ++i) {
    append(**w, recs[i]);
    if (i % 100 == 0) {
      ASSERT_TRUE((*w)->flush().ok());
    }
  }
  EXPECT_EQ((*w)->records_appended(), recs.size());
  EXPECT_EQ((*w)->dropped_records(), 0U);
  ASSERT_TRUE((*w)->close().ok());

  ReadBack rb;
  auto s = read_spool(dir.file("rec-1.spool"), rb.visitor());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->recording_id, "rec-1");
  EXPECT_EQ(s->records_ok, recs.size());
  EXPECT_EQ(s->records_corrupt, 0U);
  EXPECT_EQ(s->bytes_skipped, 0U);
  EXPECT_TRUE(s->problems.empty());
  EXPECT_TRUE(s->has_session_start);
  EXPECT_TRUE(s->has_session_end);
  EXPECT_EQ(s->bytes_read, std::filesystem::file_size(dir.file("rec-1.spool")));
  ASSERT_EQ(rb.records.size(), recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) {
    ASSERT_EQ(rb.records[i], recs[i]) << "record " << i;
  }
}

TEST(SpoolRoundTrip, RecordsLargerThanReadChunk) {
  TempDir dir;
  std::mt19937 rng(2);
  std::vector<Rec> recs;
  std::string xml(spool::kMaxPayloadSize - spool::kTimeSize, 'x');  // the largest allowed
  recs.push_back(json(RecordType::kMetadata, 5, xml));
  Rec big = random_rtp(rng, 0);
  big.bytes.assign(spool::kMaxRtpPayloadSize, 'r');
  recs.push_back(big);
  recs.push_back(json(RecordType::kMetadata, 6, std::string(200000, 'y')));
  for (int i = 0; i < 10; ++i) recs.push_back(random_rtp(rng));
  auto written = write_spool(dir.path(), "big", recs);
  ReadBack rb;
  auto s = read_spool(written.path, rb.visitor());
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->problems.empty());
  EXPECT_EQ(rb.records, recs);
}

TEST(SpoolRoundTrip, ReaderStreamsInChunks) {
  TempDir dir;
  std::mt19937 rng(3);
  std::vector<Rec> recs;
  for (int i = 0; i < 4000; ++i) recs.push_back(random_rtp(rng));  // ~3 MB
  auto w = SpoolWriter::create(dir.path(), "stream", nullptr);
  ASSERT_TRUE(w.ok());
  for (const auto& r : recs) append(**w, r);
  ASSERT_TRUE((*w)->close().ok());
  FaultyFileSystem fs;
  ReadBack rb;
  auto s = read_spool(dir.file("stream.spool"), rb.visitor(), &fs);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(rb.records.size(), recs.size());
  EXPECT_GT(s->bytes_read, 2'000'000U);
  EXPECT_LE(fs.max_read_request, 200'000U);  // never the whole file
}

TEST(SpoolRoundTrip, HeaderOnlyFile) {
  TempDir dir;
  auto w = SpoolWriter::create(dir.path(), "empty", nullptr);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->close().ok());
  ReadBack rb;
  auto s = read_spool(dir.file("empty.spool"), rb.visitor());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->recording_id, "empty");
  EXPECT_EQ(s->records_ok, 0U);
  EXPECT_TRUE(s->problems.empty());
  EXPECT_FALSE(s->has_session_start);
  EXPECT_FALSE(s->has_session_end);
}

TEST(SpoolRoundTrip, EmptyVisitorCallbacksSkipRecords) {
  TempDir dir;
  std::mt19937 rng(4);
  auto written = write_spool(dir.path(), "r", sample_records(rng, 20));
  auto s = read_spool(written.path, RecordVisitor{});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->records_ok, 24U);
}

// A crash mid-write leaves the last record cut at any byte: every earlier record
// is returned and the torn one is reported, never delivered.
TEST(SpoolCorruption, TornLastRecordAtEveryOffset) {
  TempDir dir;
  std::mt19937 rng(5);
  for (RecordType last_type : {RecordType::kRtp, RecordType::kSessionEnd}) {
    auto recs = sample_records(rng, 8);
    recs.pop_back();
    if (last_type == RecordType::kRtp) {
      Rec r = random_rtp(rng, 0);
      r.bytes.assign(160, 'p');
      recs.push_back(r);
    } else {
      recs.push_back(json(RecordType::kSessionEnd, 9, R"({"reason":"bye","x":"0123456789"})"));
    }
    const std::string id = last_type == RecordType::kRtp ? "torn-rtp" : "torn-json";
    auto written = write_spool(dir.path(), id, recs);
    auto bytes = read_bytes(written.path);
    ASSERT_EQ(bytes.size(), written.size);
    const std::uint64_t last = written.starts.back();
    const std::size_t last_size = bytes.size() - last;
    const std::string cut_path = dir.file("cut.spool");
    for (std::size_t keep = 0; keep < last_size; ++keep) {
      write_bytes(cut_path, {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(last + keep)});
      ReadBack rb;
      auto s = read_spool(cut_path, rb.visitor());
      ASSERT_TRUE(s.ok()) << keep;
      ASSERT_EQ(rb.records.size(), recs.size() - 1) << keep;
      EXPECT_TRUE(std::equal(rb.records.begin(), rb.records.end(), recs.begin())) << keep;
      EXPECT_FALSE(s->has_session_end);
      if (keep == 0) {
        EXPECT_TRUE(s->problems.empty());
        EXPECT_EQ(s->records_corrupt, 0U);
        continue;
      }
      EXPECT_EQ(s->records_corrupt, 1U) << keep;
      EXPECT_EQ(s->bytes_skipped, keep);
      ASSERT_EQ(s->problems.size(), 1U) << keep;
      const std::size_t need = keep < spool::kRecordHeaderSize ? spool::kRecordHeaderSize : last_size;
      EXPECT_EQ(s->problems[0], "torn record at end: offset " + std::to_string(last) + " (" +
                                    std::to_string(keep) + " of " + std::to_string(need) + " bytes)");
    }
  }
}

// Flipping any bit pattern in any byte of a middle record (marker, length, type,
// CRC or payload) loses exactly that record; all following records are read.
TEST(SpoolCorruption, ByteFlipInMiddleRecordAtEveryOffset) {
  TempDir dir;
  std::mt19937 rng(6);
  auto recs = sample_records(rng, 30);
  auto written = write_spool(dir.path(), "flip", recs);
  const auto bytes = read_bytes(written.path);
  const std::size_t victim = recs.size() / 2;
  const std::uint64_t begin = written.starts[victim];
  const std::uint64_t end = written.starts[victim + 1];
  std::vector<Rec> expected = recs;
  expected.erase(expected.begin() + static_cast<std::ptrdiff_t>(victim));
  const std::string path = dir.file("flipped.spool");
  for (std::uint64_t off = begin; off < end; ++off) {
    for (std::uint8_t mask : {std::uint8_t{0x01}, std::uint8_t{0x80}, std::uint8_t{0xFF}}) {
      auto copy = bytes;
      copy[off] ^= mask;
      write_bytes(path, copy);
      ReadBack rb;
      auto s = read_spool(path, rb.visitor());
      ASSERT_TRUE(s.ok());
      ASSERT_EQ(rb.records, expected) << "offset " << off << " mask " << int{mask};
      EXPECT_EQ(s->records_corrupt, 1U);
      EXPECT_EQ(s->bytes_skipped, end - begin);
      ASSERT_EQ(s->problems.size(), 1U);
      EXPECT_NE(s->problems[0].find("at offset " + std::to_string(begin)), std::string::npos)
          << s->problems[0];
      EXPECT_TRUE(s->has_session_end);
    }
  }
}

TEST(SpoolCorruption, ProblemTexts) {
  TempDir dir;
  std::mt19937 rng(7);
  auto recs = sample_records(rng, 4);
  auto written = write_spool(dir.path(), "texts", recs);
  const auto bytes = read_bytes(written.path);
  const std::uint64_t at = written.starts[3];
  const std::size_t rec_size = written.starts[4] - at;
  struct Case {
    std::size_t byte;
    std::uint8_t value;
    std::string expect;
  } cases[] = {
      {0, 0x00, "garbage at offset " + std::to_string(at) + " (" + std::to_string(rec_size) + " bytes skipped)"},
      {8, 0x09, "bad type 9 at offset " + std::to_string(at)},
      {4, 0x7F, "bad length " },
      {spool::kRecordHeaderSize + 3, 0x00, "bad CRC at offset " + std::to_string(at)},
  };
  for (const auto& c : cases) {
    auto copy = bytes;
    copy[at + c.byte] = c.value == copy[at + c.byte] ? static_cast<std::uint8_t>(c.value + 1) : c.value;
    write_bytes(dir.file("t.spool"), copy);
    auto s = read_spool(dir.file("t.spool"), RecordVisitor{});
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(s->problems.size(), 1U);
    EXPECT_EQ(s->problems[0].rfind(c.expect, 0), 0U) << s->problems[0];
  }
}

TEST(SpoolCorruption, GarbageBetweenRecordsIsSkipped) {
  TempDir dir;
  std::mt19937 rng(8);
  auto recs = sample_records(rng, 20);
  auto written = write_spool(dir.path(), "garbage", recs);
  auto bytes = read_bytes(written.path);
  // Garbage with sync markers, a plausible header with a wrong CRC, and a whole
  // valid-looking record from another spool file (different salt).
  std::vector<std::uint8_t> garbage = {'n', 'o', 'i', 's', 'e'};
  garbage.insert(garbage.end(), spool::kSyncMarker.begin(), spool::kSyncMarker.end());
  garbage.insert(garbage.end(), {0, 0, 0, 30, 4, 1, 2, 3, 4});
  for (int i = 0; i < 40; ++i) garbage.push_back(static_cast<std::uint8_t>(rng()));
  auto other = write_spool(dir.path(), "other", {random_rtp(rng, 50)});
  auto other_bytes = read_bytes(other.path);
  garbage.insert(garbage.end(), other_bytes.begin() + static_cast<std::ptrdiff_t>(other.starts[0]), other_bytes.end());
  garbage.insert(garbage.end(), spool::kSyncMarker.begin(), spool::kSyncMarker.begin() + 3);

  const std::size_t insert_before = 10;
  const std::uint64_t at = written.starts[insert_before];
  bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), garbage.begin(), garbage.end());
  write_bytes(written.path, bytes);
  ReadBack rb;
  auto s = read_spool(written.path, rb.visitor());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(rb.records, recs);
  EXPECT_EQ(s->records_corrupt, 1U);
  EXPECT_EQ(s->bytes_skipped, garbage.size());
  ASSERT_EQ(s->problems.size(), 1U);
  EXPECT_EQ(s->problems[0], "garbage at offset " + std::to_string(at) + " (" + std::to_string(garbage.size()) +
                                " bytes skipped)");
}

TEST(SpoolCorruption, GarbageAtEndAndManyProblemsCapped) {
  TempDir dir;
  std::mt19937 rng(9);
  std::vector<Rec> recs;
  for (int i = 0; i < 300; ++i) recs.push_back(random_rtp(rng, 40));
  auto written = write_spool(dir.path(), "many", recs);
  auto bytes = read_bytes(written.path);
  // Insert 3 junk bytes before every record (back to front so offsets stay valid).
  for (std::size_t i = written.starts.size(); i-- > 0;) {
    bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(written.starts[i]), {'j', 'u', 'k'});
  }
  bytes.insert(bytes.end(), {'t', 'a', 'i', 'l'});
  write_bytes(written.path, bytes);
  ReadBack rb;
  auto s = read_spool(written.path, rb.visitor());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(rb.records, recs);
  EXPECT_EQ(s->records_corrupt, 301U);
  EXPECT_EQ(s->bytes_skipped, 300U * 3 + 4);
  ASSERT_EQ(s->problems.size(), SpoolSummary::kMaxProblems + 1);
  EXPECT_EQ(s->problems.back(), "... 201 more problems");
}

TEST(SpoolHeader, TruncatedAtEveryOffsetIsBadHeader) {
  TempDir dir;
  auto written = write_spool(dir.path(), "hdr-1", {});
  const auto bytes = read_bytes(written.path);
  ASSERT_EQ(bytes.size(), spool::kHeaderFixedSize + 5 + 4);
  const std::string path = dir.file("cut.spool");
  for (std::size_t keep = 0; keep < bytes.size(); ++keep) {
    write_bytes(path, {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep)});
    auto s = read_spool(path, RecordVisitor{});
    ASSERT_FALSE(s.ok()) << keep;
    EXPECT_EQ(s.error().code, "spool.bad_header");
    EXPECT_NE(s.error().message.find(path), std::string::npos);
    if (keep == 0) {
      EXPECT_NE(s.error().message.find("empty file"), std::string::npos);
    }
  }
}

TEST(SpoolHeader, AnyChangedHeaderByteIsBadHeader) {
  TempDir dir;
  auto written = write_spool(dir.path(), "hdr-2", {json(RecordType::kEvent, 1, "{}")});
  const auto bytes = read_bytes(written.path);
  for (std::size_t i = 0; i < written.starts[0]; ++i) {
    auto copy = bytes;
    copy[i] ^= 0x20;
    write_bytes(written.path, copy);
    auto s = read_spool(written.path, RecordVisitor{});
    ASSERT_FALSE(s.ok()) << i;
    EXPECT_EQ(s.error().code, "spool.bad_header") << i;
  }
}

TEST(SpoolHeader, NotASpoolFile) {
  TempDir dir;
  write_bytes(dir.file("x.spool"), {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E', 0, 0, 0, 0, 0, 0});
  auto s = read_spool(dir.file("x.spool"), RecordVisitor{});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "spool.bad_header");
  EXPECT_NE(s.error().message.find("bad magic"), std::string::npos);
}

TEST(SpoolReader, MissingFileAndReadErrorNameThePath) {
  TempDir dir;
  auto s = read_spool(dir.file("nope.spool"), RecordVisitor{});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "io.open");
  EXPECT_NE(s.error().message.find(dir.file("nope.spool")), std::string::npos);

  auto written = write_spool(dir.path(), "rd", {json(RecordType::kEvent, 1, "{}")});
  FaultyFileSystem fs;
  fs.read_errno = EIO;
  auto r = read_spool(written.path, RecordVisitor{}, &fs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "io.read");
  EXPECT_NE(r.error().message.find(written.path), std::string::npos);
}

TEST(SpoolReader, ListSpools) {
  TempDir dir;
  write_bytes(dir.file("b.spool"), {});
  write_bytes(dir.file("a.spool"), {});
  write_bytes(dir.file("c.json"), {});
  write_bytes(dir.file(".spool"), {});
  write_bytes(dir.file("a.spool.tmp"), {});
  std::filesystem::create_directory(dir.file("d.spool"));
  EXPECT_EQ(list_spools(dir.path()), (std::vector<std::string>{dir.file("a.spool"), dir.file("b.spool")}));
  EXPECT_TRUE(list_spools(dir.file("missing")).empty());
}

}  // namespace
}  // namespace sgw::recording
