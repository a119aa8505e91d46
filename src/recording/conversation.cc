#include "recording/conversation.h"

#include <sndfile.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "common/ids.h"
#include "recording/audio_writer.h"

namespace sgw::recording {

namespace fs = std::filesystem;
using common::make_error;

namespace {

constexpr std::uint64_t kMaxJsonBytes = 64ull << 20;

// "2024-06-03T13:37:00.010Z" (the gateway's own format) -> Unix ms; nullopt otherwise.
std::optional<std::int64_t> parse_utc_ms(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z) != 8 ||
      z != 'Z' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || ms < 0)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

// Sorted, merged spans.
std::vector<TimeSpan> normalise(std::vector<TimeSpan> v) {
  std::sort(v.begin(), v.end(), [](const TimeSpan& a, const TimeSpan& b) { return a.start < b.start; });
  std::vector<TimeSpan> out;
  for (const auto& s : v) {
    if (s.end <= s.start) continue;
    if (!out.empty() && s.start <= out.back().end)
      out.back().end = std::max(out.back().end, s.end);
    else
      out.push_back(s);
  }
  return out;
}

std::vector<TimeSpan> intersect(const std::vector<TimeSpan>& a, const std::vector<TimeSpan>& b) {
  std::vector<TimeSpan> out;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    std::int64_t s = std::max(a[i].start, b[j].start), e = std::min(a[i].end, b[j].end);
    if (s < e) out.push_back({s, e});
    (a[i].end < b[j].end) ? ++i : ++j;
  }
  return out;
}

// a minus b (both normalised).
std::vector<TimeSpan> subtract(const std::vector<TimeSpan>& a, const std::vector<TimeSpan>& b) {
  std::vector<TimeSpan> out;
  for (auto s : a) {
    for (const auto& c : b) {
      if (c.end <= s.start || c.start >= s.end) continue;
      if (c.start > s.start) out.push_back({s.start, c.start});
      s.start = std::max(s.start, c.end);
      if (s.start >= s.end) break;
    }
    if (s.start < s.end) out.push_back(s);
  }
  return out;
}

std::int64_t total(const std::vector<TimeSpan>& v) {
  std::int64_t t = 0;
  for (const auto& s : v) t += s.length();
  return t;
}

template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}

// The fragment described by one recording JSON; an error says why it is unusable.
common::Result<Fragment> parse_fragment(const std::string& ref, const nlohmann::json& j) {
  auto bad = [&](const std::string& why) { return make_error("conversation.fragment", why); };
  if (!j.is_object()) return bad("not a recording JSON object");
  Fragment f;
  f.ref = ref;
  f.recording_id = get_or<std::string>(j, "recording_id", "");
  f.fragment_of = get_or<std::string>(j, "fragment_of", "");
  f.previous_fragment = get_or<std::string>(j, "previous_fragment", "");
  f.recording_call_id = get_or<std::string>(j, "recording_call_id", "");
  if (auto g = j.find("gateway"); g != j.end() && g->is_object()) {
    f.node = get_or<std::string>(*g, "node", "");
    f.region = get_or<std::string>(*g, "region", "");
  }
  auto start = parse_utc_ms(get_or<std::string>(j, "start_time", ""));
  auto duration = get_or<std::int64_t>(j, "duration_ms", -1);
  if (f.recording_id.empty() || !start || duration < 0 || duration > 30ll * 86'400'000)
    return bad("recording_id, start_time or duration_ms missing or invalid");
  f.span = {*start, *start + duration};
  f.complete = get_or<bool>(j, "complete", false);
  f.end_cause = get_or<std::string>(j, "incomplete_reason", "");
  if (f.end_cause.empty())
    if (auto ev = j.find("events"); ev != j.end() && ev->is_array())
      for (const auto& e : *ev) {
        auto what = get_or<std::string>(e, "what", "");
        if (what.rfind("end: ", 0) == 0) f.end_cause = what.substr(5);
      }

  // Covered: the span minus what every stream misses (gaps with a null label
  // are every stream's). A recording without streams covers nothing.
  std::vector<std::string> labels;
  if (auto st = j.find("streams"); st != j.end() && st->is_array())
    for (const auto& s : *st) labels.push_back(get_or<std::string>(s, "label", ""));
  std::map<std::string, std::vector<TimeSpan>> by_label;
  std::vector<TimeSpan> all;
  std::vector<FragmentGapInfo> every_gap;  // any stream's, for the shared gaps' causes
  std::size_t n_recording_gaps = 0;        // the first ones: gaps without a stream label
  if (auto g = j.find("gaps"); g != j.end() && g->is_array())
    for (const auto& gap : *g) {
      auto s = get_or<std::int64_t>(gap, "start_ms", -1), l = get_or<std::int64_t>(gap, "length_ms", -1);
      if (s < 0 || l <= 0) continue;
      TimeSpan span{f.span.start + s, std::min(f.span.end, f.span.start + s + l)};
      std::string cause = get_or<std::string>(gap, "cause", "unknown");
      auto lab = gap.find("stream_label");
      if (lab == gap.end() || lab->is_null())
        all.push_back(span);
      else
        by_label[lab->is_string() ? lab->get<std::string>() : lab->dump()].push_back(span);
      // A gap of the whole recording (node_lost, pause...) names the cause before a stream's own.
      if (lab == gap.end() || lab->is_null())
        every_gap.insert(every_gap.begin() + static_cast<std::ptrdiff_t>(n_recording_gaps++), {span, cause});
      else
        every_gap.push_back({span, cause});
    }
  std::vector<TimeSpan> shared;
  if (labels.empty()) {
    shared = {f.span};
  } else {
    shared = normalise(by_label[labels[0]]);
    for (std::size_t i = 1; i < labels.size(); ++i) shared = intersect(shared, normalise(by_label[labels[i]]));
  }
  for (const auto& a : all) shared.push_back(a);
  shared = normalise(shared);
  f.covered = subtract({f.span}, shared);
  for (const auto& s : shared) {
    // The cause: a gap of the whole recording that overlaps the shared gap (node_lost, pause:
    // stream gaps may start a ms apart from it), else the first stream gap holding its start.
    std::string cause = "unknown";
    for (std::size_t i = 0; i < every_gap.size(); ++i) {
      const auto& g = every_gap[i];
      bool hit = i < n_recording_gaps ? g.span.start < s.end && s.start < g.span.end
                                      : g.span.start <= s.start && s.start < g.span.end;
      if (hit) {
        cause = g.cause;
        break;
      }
    }
    f.gaps.push_back({s, cause});
  }

  auto audio = j.find("audio");
  if (audio == j.end() || !audio->is_array() || audio->empty()) return bad("no audio file listed");
  const auto& a = audio->front();
  f.audio_file = get_or<std::string>(a, "file", "");
  f.channels = get_or<unsigned>(a, "channels", 0);
  f.sample_rate = get_or<std::uint32_t>(a, "sample_rate", 0);
  if (f.audio_file.empty() || f.audio_file.find('/') != std::string::npos || f.audio_file == "." ||
      f.audio_file == ".." || f.channels == 0 || f.sample_rate == 0)
    return bad("audio entry invalid");
  if (audio->size() > 1) return bad("more than one audio file (multi_stream_mode mono-files): not joined");
  if (auto p = j.find("participants"); p != j.end() && p->is_array())
    for (const auto& part : *p) {
      auto ch = part.find("channel");
      if (ch == part.end() || !ch->is_number_unsigned()) continue;
      int channel = ch->get<int>();
      if (channel < 0 || static_cast<unsigned>(channel) >= f.channels) continue;
      auto role = get_or<std::string>(part, "role", "");
      if (role == "caller" && f.caller_channel < 0) f.caller_channel = channel;
      if (role == "agent" && f.agent_channel < 0) f.agent_channel = channel;
    }
  return f;
}

std::string fmt_time(std::int64_t unix_ms) { return common::iso8601_from_unix_us(unix_ms * 1000); }

}  // namespace

// ---------------------------------------------------------------------------

DirFragmentStore::DirFragmentStore(std::vector<std::string> dirs,
                                   std::function<std::string(std::string_view)> sanitize)
    : dirs_(std::move(dirs)), sanitize_(std::move(sanitize)) {}

std::string DirFragmentStore::describe() const {
  std::string out;
  for (const auto& d : dirs_) out += (out.empty() ? "" : ", ") + d;
  return out;
}

common::Result<std::vector<FragmentStore::Candidate>> DirFragmentStore::candidates(
    const std::string& conversation_id) {
  const std::string named = sanitize_ ? sanitize_(conversation_id) : conversation_id;
  std::vector<Candidate> out;
  for (const auto& dir : dirs_) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return make_error("conversation.dir", "not a folder: " + dir);
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) return make_error("conversation.dir", "list " + dir + ": " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) return make_error("conversation.dir", "list " + dir + ": " + ec.message());
      if (!it->is_regular_file(ec) || it->path().extension() != ".json") continue;
      Candidate c{it->path().string(), false};
      for (const auto& part : fs::relative(it->path().parent_path(), dir, ec))
        if (part.string() == named) c.named = true;
      out.push_back(std::move(c));
    }
  }
  std::sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.ref < b.ref; });
  return out;
}

common::Result<std::string> DirFragmentStore::read(const std::string& ref, std::uint64_t max_bytes) {
  std::error_code ec;
  auto size = fs::file_size(ref, ec);
  if (ec) return make_error("io.stat", "stat " + ref + ": " + ec.message());
  if (size > max_bytes) return make_error("conversation.too_large", ref + ": " + std::to_string(size) + " bytes");
  std::ifstream in(ref, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return make_error("io.read", "read " + ref);
  return bytes;
}

common::Result<std::string> DirFragmentStore::local_copy(const std::string& json_ref, const std::string& file_name,
                                                         const std::string&) {
  return (fs::path(json_ref).parent_path() / file_name).string();
}

// ---------------------------------------------------------------------------

common::Result<Conversation> load_conversation(FragmentStore& store, const std::string& conversation_id,
                                               const std::string& scratch_dir) {
  Conversation c;
  c.id = conversation_id;
  c.store = store.describe();
  if (conversation_id.empty()) return make_error("conversation.id", "empty conversation id");
  auto cands = store.candidates(conversation_id);
  if (!cands) return cands.error();
  std::vector<Fragment> unusable;  // known times, bad audio: their time is "fragment_unusable"
  std::set<std::string> seen;
  for (const auto& cand : *cands) {
    auto bytes = store.read(cand.ref, kMaxJsonBytes);
    if (!bytes) {
      if (cand.named) c.skipped.push_back({cand.ref, "", bytes.error().message});
      continue;
    }
    auto j = nlohmann::json::parse(*bytes, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      // Not parsable: ours only if its location names the conversation.
      if (cand.named) c.skipped.push_back({cand.ref, "", "JSON does not parse (corrupt or truncated)"});
      continue;
    }
    if (get_or<std::string>(j, "fragment_of", "") != conversation_id &&
        get_or<std::string>(j, "conversation_id", "") != conversation_id)
      continue;
    auto f = parse_fragment(cand.ref, j);
    if (!f) {
      c.skipped.push_back({cand.ref, get_or<std::string>(j, "recording_id", ""), f.error().message});
      continue;
    }
    if (!seen.insert(f->recording_id).second) {
      c.skipped.push_back({cand.ref, f->recording_id, "same recording_id as another fragment (a copy)"});
      continue;
    }
    // The audio must be the bytes the JSON describes.
    std::string why;
    auto path = store.local_copy(cand.ref, f->audio_file, scratch_dir);
    if (!path) {
      why = path.error().message;
    } else {
      f->audio_path = *path;
      auto d = digest_file(*path);
      const auto& a = j["audio"].front();
      if (!d)
        why = d.error().message;
      else if (d->size != get_or<std::uint64_t>(a, "size_bytes", 0))
        why = "audio " + f->audio_file + " is " + std::to_string(d->size) + " bytes, the JSON says " +
              std::to_string(get_or<std::uint64_t>(a, "size_bytes", 0)) + " (truncated?)";
      else if (d->sha256 != get_or<std::string>(a, "sha256", ""))
        why = "audio " + f->audio_file + " SHA-256 differs from the JSON's (corrupt)";
    }
    if (!why.empty()) {
      c.skipped.push_back({cand.ref, f->recording_id, why});
      unusable.push_back(std::move(*f));
      continue;
    }
    c.fragments.push_back(std::move(*f));
  }
  if (c.fragments.empty() && c.skipped.empty())
    return make_error("conversation.not_found", "no fragment of conversation '" + conversation_id + "' in " + c.store);
  std::sort(c.fragments.begin(), c.fragments.end(), [](const Fragment& a, const Fragment& b) {
    return a.span.start != b.span.start ? a.span.start < b.span.start : a.recording_id < b.recording_id;
  });

  std::vector<TimeSpan> spans, covered;
  for (const auto& f : c.fragments) {
    spans.push_back(f.span);
    covered.insert(covered.end(), f.covered.begin(), f.covered.end());
  }
  for (const auto& f : unusable) spans.push_back(f.span);
  spans = normalise(spans);
  if (spans.empty()) return c;
  c.wall = {spans.front().start, spans.back().end};
  // normalise() drops empty spans, but a fragment with no audio still says when its gateway
  // took the call (a node lost before its spool was synced): the wall starts there, and the
  // time until the next fragment is a between_fragments gap, not unstated.
  for (const auto& f : c.fragments) c.wall.start = std::min(c.wall.start, f.span.start);
  for (const auto& f : unusable) c.wall.start = std::min(c.wall.start, f.span.start);
  c.covered = normalise(covered);
  c.covered_ms = total(c.covered);
  c.coverage_percent = c.wall.length() > 0 ? 100.0 * static_cast<double>(c.covered_ms) /
                                                 static_cast<double>(c.wall.length())
                                           : 0.0;
  // Overlaps: stretches more than one fragment covers.
  for (std::size_t i = 0; i < c.fragments.size(); ++i)
    for (std::size_t k = i + 1; k < c.fragments.size(); ++k)
      for (const auto& o : intersect(c.fragments[i].covered, c.fragments[k].covered))
        c.overlaps.push_back({o, {c.fragments[i].recording_id, c.fragments[k].recording_id}});

  // Gaps, each with its cause: a fragment's own gap, an unusable fragment, or
  // the time between two fragments (the previous one's end cause says why).
  for (const auto& g : subtract({c.wall}, c.covered)) {
    std::vector<std::int64_t> cuts{g.start, g.end};
    for (const auto& f : c.fragments)
      for (auto t : {f.span.start, f.span.end})
        if (t > g.start && t < g.end) cuts.push_back(t);
    for (const auto& f : unusable)
      for (auto t : {f.span.start, f.span.end})
        if (t > g.start && t < g.end) cuts.push_back(t);
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
      TimeSpan piece{cuts[i], cuts[i + 1]};
      ConversationGap cg{piece, "", ""};
      for (const auto& f : c.fragments) {
        if (piece.start < f.span.start || piece.end > f.span.end) continue;
        for (const auto& fg : f.gaps)
          if (fg.span.start <= piece.start && piece.start < fg.span.end) {
            cg.cause = fg.cause;
            cg.detail = f.recording_id + " (" + f.node + "): " + fg.cause;
          }
        if (!cg.cause.empty()) break;
      }
      if (cg.cause.empty())
        for (const auto& f : unusable)
          if (piece.start >= f.span.start && piece.end <= f.span.end) {
            cg.cause = "fragment_unusable";
            cg.detail = f.recording_id + " (" + f.node + ") skipped";
          }
      if (cg.cause.empty()) {
        cg.cause = "between_fragments";
        const Fragment* before = nullptr;
        const Fragment* after = nullptr;
        for (const auto& f : c.fragments) {
          if (f.span.end <= piece.start && (!before || f.span.end > before->span.end)) before = &f;
          if (f.span.start >= piece.end && !after) after = &f;
        }
        if (before)
          cg.detail = before->recording_id + " on " + before->node + " ended" +
                      (before->end_cause.empty() ? "" : " (" + before->end_cause + ")");
        if (after)
          cg.detail += (cg.detail.empty() ? "" : "; ") + after->recording_id + " on " + after->node + " began";
      }
      if (!c.gaps.empty() && c.gaps.back().span.end == piece.start && c.gaps.back().cause == cg.cause &&
          c.gaps.back().detail == cg.detail)
        c.gaps.back().span.end = piece.end;
      else
        c.gaps.push_back(cg);
    }
  }
  return c;
}

nlohmann::json to_json(const Conversation& c) {
  using nlohmann::json;
  auto span_json = [&](const TimeSpan& s) {
    return json{{"start", fmt_time(s.start)}, {"start_ms", s.start - c.wall.start}, {"length_ms", s.length()}};
  };
  json frags = json::array();
  for (const auto& f : c.fragments) {
    json cov = json::array(), gaps = json::array();
    for (const auto& s : f.covered) cov.push_back(span_json(s));
    for (const auto& g : f.gaps) {
      auto gj = span_json(g.span);
      gj["cause"] = g.cause;
      gaps.push_back(gj);
    }
    frags.push_back({{"recording_id", f.recording_id}, {"node", f.node}, {"region", f.region},
                     {"start_time", fmt_time(f.span.start)}, {"end_time", fmt_time(f.span.end)},
                     {"duration_ms", f.span.length()}, {"complete", f.complete},
                     {"end_cause", f.end_cause}, {"previous_fragment", f.previous_fragment.empty() ? json(nullptr) : json(f.previous_fragment)},
                     {"recording_call_id", f.recording_call_id},
                     {"covered", cov}, {"covered_ms", total(f.covered)}, {"gaps", gaps},
                     {"json", f.ref}, {"audio", f.audio_path}});
  }
  json gaps = json::array();
  for (const auto& g : c.gaps) {
    auto gj = span_json(g.span);
    gj["cause"] = g.cause;
    gj["detail"] = g.detail;
    gaps.push_back(gj);
  }
  json overlaps = json::array();
  for (const auto& [s, ids] : c.overlaps) {
    auto oj = span_json(s);
    oj["fragments"] = ids;
    overlaps.push_back(oj);
  }
  json skipped = json::array();
  for (const auto& s : c.skipped)
    skipped.push_back({{"json", s.ref}, {"recording_id", s.recording_id.empty() ? json(nullptr) : json(s.recording_id)},
                       {"reason", s.reason}});
  return {{"conversation_id", c.id}, {"store", c.store},
          {"start_time", c.fragments.empty() && c.wall.length() == 0 ? json(nullptr) : json(fmt_time(c.wall.start))},
          {"end_time", c.wall.length() == 0 ? json(nullptr) : json(fmt_time(c.wall.end))},
          {"wall_ms", c.wall.length()}, {"covered_ms", c.covered_ms},
          {"coverage_percent", std::round(c.coverage_percent * 100.0) / 100.0},
          {"fragments", frags}, {"gaps", gaps}, {"overlaps", overlaps}, {"skipped", skipped}};
}

std::string to_text(const Conversation& c) {
  std::ostringstream o;
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.2f", c.coverage_percent);
  o << "conversation " << c.id << " (" << c.store << ")\n";
  o << "wall " << (c.wall.length() ? fmt_time(c.wall.start) + " .. " + fmt_time(c.wall.end) : std::string("-"))
    << "  " << c.wall.length() << " ms, covered " << c.covered_ms << " ms (" << pct << " %)\n";
  o << c.fragments.size() << " fragment(s):\n";
  for (const auto& f : c.fragments) {
    o << "  " << f.recording_id << "  node " << f.node << "  region " << f.region << "  "
      << fmt_time(f.span.start) << " +" << f.span.length() << " ms  complete=" << (f.complete ? "true" : "false");
    if (!f.end_cause.empty()) o << "  end: " << f.end_cause;
    o << "\n    covered:";
    for (const auto& s : f.covered) o << " [" << s.start - c.wall.start << ", " << s.end - c.wall.start << ") ms";
    o << "\n";
  }
  o << c.gaps.size() << " gap(s):\n";
  for (const auto& g : c.gaps)
    o << "  [" << g.span.start - c.wall.start << ", " << g.span.end - c.wall.start << ") ms  " << g.span.length()
      << " ms  " << g.cause << (g.detail.empty() ? "" : "  (" + g.detail + ")") << "\n";
  for (const auto& [s, ids] : c.overlaps) {
    o << "overlap [" << s.start - c.wall.start << ", " << s.end - c.wall.start << ") ms:";
    for (const auto& id : ids) o << " " << id;
    o << "\n";
  }
  for (const auto& s : c.skipped)
    o << "SKIPPED " << s.ref << (s.recording_id.empty() ? "" : " (" + s.recording_id + ")") << ": " << s.reason << "\n";
  return o.str();
}

// ---------------------------------------------------------------------------
// Stitching

namespace {

struct SndCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};

// Reads `frames` frames of fragment f from its audio file starting at `frame`
// into out (interleaved, out_channels, caller/agent remapped). Short reads are zeros.
class FragmentReader {
 public:
  static common::Result<std::unique_ptr<FragmentReader>> open(const Fragment& f) {
    SF_INFO info{};
    std::unique_ptr<SNDFILE, SndCloser> sf(sf_open(f.audio_path.c_str(), SFM_READ, &info));
    if (!sf) return make_error("audio.open", "open " + f.audio_path + ": " + sf_strerror(nullptr));
    if (static_cast<unsigned>(info.channels) != f.channels ||
        static_cast<std::uint32_t>(info.samplerate) != f.sample_rate)
      return make_error("audio.invalid", f.audio_path + ": channels/rate differ from its JSON");
    auto r = std::unique_ptr<FragmentReader>(new FragmentReader);
    r->sf_ = std::move(sf);
    r->frames_ = info.frames;
    r->channels_ = f.channels;
    // Output channel 0 = caller, 1 = agent where known; else the file's order.
    r->map_[0] = f.caller_channel >= 0 ? f.caller_channel : 0;
    r->map_[1] = f.agent_channel >= 0 ? f.agent_channel : (f.channels > 1 ? 1 : 0);
    return r;
  }
  void read(std::int64_t frame, std::size_t frames, std::vector<std::int16_t>& out0, std::vector<std::int16_t>& out1) {
    out0.assign(frames, 0);
    out1.assign(frames, 0);
    if (frame < 0 || frame >= frames_) return;
    buf_.assign(frames * channels_, 0);
    if (sf_seek(sf_.get(), frame, SEEK_SET) < 0) return;
    sf_count_t got = sf_readf_short(sf_.get(), buf_.data(), static_cast<sf_count_t>(frames));
    for (sf_count_t i = 0; i < got; ++i) {
      out0[static_cast<std::size_t>(i)] = buf_[static_cast<std::size_t>(i) * channels_ + map_[0]];
      out1[static_cast<std::size_t>(i)] = buf_[static_cast<std::size_t>(i) * channels_ + map_[1]];
    }
  }

 private:
  std::unique_ptr<SNDFILE, SndCloser> sf_;
  sf_count_t frames_ = 0;
  unsigned channels_ = 1;
  unsigned map_[2] = {0, 0};
  std::vector<std::int16_t> buf_;
};

constexpr std::size_t kChunk = 8192;

std::int64_t frame_at(std::int64_t unix_ms, std::int64_t origin_ms, std::uint32_t rate) {
  return (unix_ms - origin_ms) * static_cast<std::int64_t>(rate) / 1000;
}

}  // namespace

common::Result<StitchResult> stitch_conversation(const Conversation& c, const std::string& out_path) {
  StitchResult res;
  res.path = out_path;
  res.channels = 2;
  std::map<std::string, std::unique_ptr<FragmentReader>> readers;
  std::vector<const Fragment*> usable;
  for (const auto& f : c.fragments) {
    if (res.sample_rate == 0) res.sample_rate = f.sample_rate;
    if (f.sample_rate != res.sample_rate) {
      res.skipped.push_back({f.ref, f.recording_id, "sample rate " + std::to_string(f.sample_rate) +
                                                        " differs from the stitch's " + std::to_string(res.sample_rate)});
      continue;
    }
    auto r = FragmentReader::open(f);
    if (!r) {
      res.skipped.push_back({f.ref, f.recording_id, r.error().message});
      continue;
    }
    readers[f.recording_id] = std::move(r).value();
    usable.push_back(&f);
  }
  if (usable.empty()) return make_error("conversation.stitch", "no usable fragment to stitch");
  const std::uint32_t rate = res.sample_rate;
  const std::int64_t origin = c.wall.start;

  // Elementary intervals between every boundary of every usable fragment's coverage.
  std::vector<std::int64_t> cuts{c.wall.start, c.wall.end};
  for (const auto* f : usable)
    for (const auto& s : f->covered) {
      cuts.push_back(s.start);
      cuts.push_back(s.end);
    }
  for (const auto& g : c.gaps) {
    cuts.push_back(g.span.start);
    cuts.push_back(g.span.end);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<std::int16_t> a0, a1;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    TimeSpan piece{cuts[i], cuts[i + 1]};
    if (piece.start < c.wall.start || piece.end > c.wall.end) continue;
    std::vector<const Fragment*> cand;
    for (const auto* f : usable)
      for (const auto& s : f->covered)
        if (s.start <= piece.start && piece.end <= s.end) cand.push_back(f);
    StitchSegment seg{piece, "", "", cand.size() > 1};
    if (cand.empty()) {
      for (const auto& g : c.gaps)
        if (g.span.start <= piece.start && piece.start < g.span.end) seg.cause = g.cause;
      if (seg.cause.empty()) seg.cause = "fragment_unusable";
    } else {
      // The fragment that has audio here: the most energy over the interval.
      const Fragment* best = cand.front();
      if (cand.size() > 1) {
        double best_energy = -1;
        for (const auto* f : cand) {
          double energy = 0;
          auto& r = *readers[f->recording_id];
          std::int64_t from = frame_at(piece.start, f->span.start, rate), to = frame_at(piece.end, f->span.start, rate);
          for (std::int64_t p = from; p < to; p += static_cast<std::int64_t>(kChunk)) {
            auto n = static_cast<std::size_t>(std::min<std::int64_t>(static_cast<std::int64_t>(kChunk), to - p));
            r.read(p, n, a0, a1);
            for (std::size_t k = 0; k < n; ++k) energy += std::abs(static_cast<double>(a0[k])) + std::abs(static_cast<double>(a1[k]));
          }
          if (energy > best_energy) {
            best_energy = energy;
            best = f;
          }
        }
      }
      seg.source = best->recording_id;
    }
    if (!res.segments.empty() && res.segments.back().source == seg.source && res.segments.back().cause == seg.cause &&
        res.segments.back().overlap == seg.overlap && res.segments.back().span.end == seg.span.start)
      res.segments.back().span.end = seg.span.end;
    else
      res.segments.push_back(seg);
  }

  const std::int64_t total_frames = frame_at(c.wall.end, origin, rate);
  auto writer = AudioFileWriter::open(out_path, AudioFormat::kWavPcm16, rate, 2, static_cast<std::uint64_t>(total_frames));
  if (!writer) return writer.error();
  for (const auto& seg : res.segments) {
    std::int64_t from = frame_at(seg.span.start, origin, rate), to = frame_at(seg.span.end, origin, rate);
    const Fragment* f = nullptr;
    for (const auto* u : usable)
      if (u->recording_id == seg.source) f = u;
    for (std::int64_t p = from; p < to; p += static_cast<std::int64_t>(kChunk)) {
      auto n = static_cast<std::size_t>(std::min<std::int64_t>(static_cast<std::int64_t>(kChunk), to - p));
      if (f) {
        // The fragment's frame for output frame p: same instant on its own clock.
        readers[f->recording_id]->read(p - frame_at(f->span.start, origin, rate), n, a0, a1);
      } else {
        a0.assign(n, 0);  // exact silence for the gap
        a1.assign(n, 0);
      }
      std::span<const std::int16_t> chans[2] = {a0, a1};
      if (auto st = (*writer)->write(chans); !st) return st.error();
    }
  }
  auto info = (*writer)->commit();
  if (!info) return info.error();
  res.frames = info->frames;
  res.sha256 = info->sha256;

  // The JSON that states every segment's source or gap.
  nlohmann::json segs = nlohmann::json::array();
  for (const auto& s : res.segments) {
    nlohmann::json sj = {{"start_ms", s.span.start - origin}, {"length_ms", s.span.length()},
                         {"start", fmt_time(s.span.start)}};
    if (s.source.empty()) {
      sj["gap"] = true;
      sj["cause"] = s.cause;
      sj["silence_frames"] = frame_at(s.span.end, origin, rate) - frame_at(s.span.start, origin, rate);
    } else {
      sj["source"] = s.source;
      for (const auto* u : usable)
        if (u->recording_id == s.source) sj["node"] = u->node;
      sj["overlap"] = s.overlap;
    }
    segs.push_back(sj);
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& s : c.skipped) skipped.push_back({{"json", s.ref}, {"reason", s.reason}});
  for (const auto& s : res.skipped) skipped.push_back({{"json", s.ref}, {"reason", s.reason}});
  nlohmann::json doc = {{"conversation_id", c.id},
                        {"file", fs::path(out_path).filename().string()},
                        {"sha256", res.sha256},
                        {"sample_rate", rate},
                        {"channels", {{{"channel", 0}, {"role", "caller"}}, {{"channel", 1}, {"role", "agent"}}}},
                        {"start_time", fmt_time(c.wall.start)},
                        {"duration_ms", c.wall.length()},
                        {"frames", res.frames},
                        {"covered_ms", c.covered_ms},
                        {"coverage_percent", std::round(c.coverage_percent * 100.0) / 100.0},
                        {"segments", segs},
                        {"gaps", to_json(c)["gaps"]},
                        {"skipped", skipped}};
  std::string json_path = (fs::path(out_path).parent_path() / (fs::path(out_path).stem().string() + ".json")).string();
  if (auto st = common::write_file_atomically(json_path, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
      !st)
    return st.error();
  return res;
}

}  // namespace sgw::recording
