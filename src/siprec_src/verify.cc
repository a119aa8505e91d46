#include "siprec_src/verify.h"

#include <sndfile.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "siprec_src/tone.h"

namespace sgw::siprec_src {
namespace fs = std::filesystem;

namespace {

struct Audio {
  std::uint32_t rate = 0;
  int channels = 0;
  std::vector<std::vector<float>> chan;
};

bool read_audio(const std::string& path, Audio* a, std::string* err) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (f == nullptr) {
    *err = "cannot open audio " + path + ": " + sf_strerror(nullptr);
    return false;
  }
  a->rate = static_cast<std::uint32_t>(info.samplerate);
  a->channels = info.channels;
  std::vector<float> inter(static_cast<std::size_t>(info.frames) * static_cast<std::size_t>(info.channels));
  sf_count_t got = sf_readf_float(f, inter.data(), info.frames);
  sf_close(f);
  if (got < 0) got = 0;
  a->chan.assign(static_cast<std::size_t>(info.channels), {});
  for (int c = 0; c < info.channels; ++c) {
    auto& v = a->chan[static_cast<std::size_t>(c)];
    v.resize(static_cast<std::size_t>(got));
    for (sf_count_t i = 0; i < got; ++i)
      v[static_cast<std::size_t>(i)] = inter[static_cast<std::size_t>(i * info.channels + c)];
  }
  return true;
}

// Fraction of 100 ms windows that carry sound, and of those the fraction dominated by `hz`.
// edge_misses: of the first and the last sounding window, how many lack the tone (the sound
// starts or stops inside them, so the tone may hold less than half their energy).
struct ChannelCheck {
  std::size_t windows = 0, active = 0, tone = 0, edge_misses = 0;
};

ChannelCheck scan_channel(const std::vector<float>& pcm, std::uint32_t rate, double hz) {
  ChannelCheck c;
  const std::size_t w = rate / 10;
  if (w == 0) return c;
  bool first_miss = false, last_miss = false;
  for (std::size_t off = 0; off + w <= pcm.size(); off += w) {
    ++c.windows;
    std::span<const float> win(pcm.data() + off, w);
    auto t = check_tone(win, hz, rate);
    if (t.rms < 0.01) continue;
    bool tone = hz <= 0 || t.present;
    if (c.active == 0) first_miss = !tone;
    last_miss = !tone;
    ++c.active;
    if (tone) ++c.tone;
  }
  c.edge_misses = (first_miss ? 1 : 0) + (c.active > 1 && last_miss ? 1 : 0);
  return c;
}

const nlohmann::json* find_participant(const nlohmann::json& doc, const std::string& aor) {
  if (!doc.contains("participants") || !doc["participants"].is_array()) return nullptr;
  for (const auto& p : doc["participants"])
    if (p.is_object() && p.value("aor", std::string()) == aor) return &p;
  return nullptr;
}

std::string fmt_ms(double v) {
  std::ostringstream s;
  s << static_cast<long long>(std::llround(v)) << "ms";
  return s.str();
}

}  // namespace

// 100 ms windows: below two of them a fragment cannot be judged by sound.
constexpr std::int64_t kShortestCheckedFragmentMs = 200;

std::multimap<std::string, std::string> index_recordings(const std::string& dir) {
  std::multimap<std::string, std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().extension() != ".json") continue;
    std::ifstream in(it->path());
    auto doc = nlohmann::json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) continue;
    auto cid = doc.find("conversation_id");
    if (cid == doc.end() || !cid->is_string()) continue;
    out.emplace(cid->get<std::string>(), it->path().string());
  }
  return out;
}

std::multimap<std::string, std::string> index_recordings(const std::vector<std::string>& dirs) {
  std::multimap<std::string, std::string> out;
  for (const auto& d : dirs) out.merge(index_recordings(d));
  return out;
}

std::string check_recording(const VerifyExpectation& e, const nlohmann::json& doc,
                            const std::string& dir, bool check_duration, std::string* details,
                            bool* too_short) {
  if (too_short) *too_short = false;
  const nlohmann::json* caller = find_participant(doc, e.caller_aor);
  const nlohmann::json* agent = find_participant(doc, e.agent_aor);
  if (caller == nullptr) return "caller " + e.caller_aor + " not among the participants";
  if (agent == nullptr) return "agent " + e.agent_aor + " not among the participants";
  if (caller->value("role", std::string()) != "caller")
    return "caller " + e.caller_aor + " has role '" + caller->value("role", std::string()) + "'";
  if (agent->value("role", std::string()) != "agent")
    return "agent " + e.agent_aor + " has role '" + agent->value("role", std::string()) + "'";
  const auto& cch = (*caller)["channel"];
  const auto& ach = (*agent)["channel"];
  if (!cch.is_number_integer() || !ach.is_number_integer())
    return "caller or agent has no channel";
  if (cch.get<int>() == ach.get<int>()) return "caller and agent share channel " + std::to_string(cch.get<int>());
  std::int64_t dur = doc.value("duration_ms", std::int64_t{-1});
  if (check_duration && e.call_max_ms >= 0) {
    // The recorder starts its clock before sending the 200 OK and stops it when its media
    // worker closes the session after the BYE: never shorter than 200 OK received -> BYE sent
    // (1 ms for the two roundings to ms), and longer than INVITE sent -> BYE answered only by
    // that close and the last packet's duration (kCloseSlackMs).
    constexpr std::int64_t kCloseSlackMs = 200;
    const std::int64_t lo = e.call_min_ms - 1, hi = e.call_max_ms + kCloseSlackMs;
    if (dur < lo || dur > hi)
      return "duration " + std::to_string(dur) + " ms, expected " + std::to_string(lo) + ".." + std::to_string(hi) +
             " ms (200 OK received -> BYE sent .. INVITE sent -> BYE answered + " + std::to_string(kCloseSlackMs) + ")";
  } else if (check_duration) {
    // The gateway records from the INVITE, we send RTP from its 200 OK: the setup time is a
    // late start at the head of the recording, not a longer call.
    const auto want = static_cast<std::int64_t>(e.duration_ms);
    const auto setup = static_cast<std::int64_t>(std::ceil(std::max(0.0, e.setup_ms)));
    if (dur < want - 200 || dur > want + setup + 200)
      return "duration " + std::to_string(dur) + " ms, expected " + std::to_string(e.duration_ms) +
             " ms (+-200)" + (setup > 0 ? " + setup " + std::to_string(setup) + " ms" : "");
  }
  std::string file = (*caller).value("file", std::string());
  if (file.empty() || (*agent).value("file", std::string()) != file)
    return "caller and agent are not in one audio file";
  auto complete = doc.find("complete");
  bool incomplete = complete != doc.end() && complete->is_boolean() && !complete->get<bool>();
  if (!check_duration && dur >= 0 && dur < kShortestCheckedFragmentMs) {
    // A fragment of a re-established call too short for the 100 ms windows below: its gateway
    // was lost before (almost) any of its audio was durable (incomplete, docs/failover.md), or
    // the SRC re-established the call just before its end (complete, a packet or two).
    // verify_call requires sound in another fragment.
    if (details)
      *details = "duration=" + std::to_string(dur) + "ms (" + (incomplete ? "incomplete, " : "") +
                 "too short to check)";
    if (too_short) *too_short = true;
    return {};
  }
  Audio a;
  std::string err;
  if (!read_audio((fs::path(dir) / file).string(), &a, &err)) return err;
  std::ostringstream det;
  det << "duration=" << dur << "ms";
  struct Leg {
    const char* name;
    int ch;
    double hz;
  } legs[2] = {{"caller", cch.get<int>(), e.caller_hz}, {"agent", ach.get<int>(), e.agent_hz}};
  for (const auto& leg : legs) {
    if (leg.ch < 0 || leg.ch >= a.channels)
      return std::string(leg.name) + " channel " + std::to_string(leg.ch) + " not in the file";
    auto c = scan_channel(a.chan[static_cast<std::size_t>(leg.ch)], a.rate, leg.hz);
    double active_ms = static_cast<double>(c.active) * 100;
    double expect_ms = static_cast<double>(e.duration_ms) - static_cast<double>(e.silent_ms);
    if (check_duration && active_ms < 0.8 * expect_ms - 200)
      return std::string(leg.name) + " channel " + std::to_string(leg.ch) + " has sound for " +
             fmt_ms(active_ms) + ", expected about " + fmt_ms(expect_ms);
    if (c.active == 0) return std::string(leg.name) + " channel is silent";
    if (static_cast<double>(c.tone + c.edge_misses) < 0.9 * static_cast<double>(c.active)) {
      std::ostringstream s;
      s << leg.name << " channel " << leg.ch << ": " << leg.hz << " Hz dominates only " << c.tone
        << " of " << c.active << " sounding 100 ms windows";
      return s.str();
    }
    det << " " << leg.name << "=ch" << leg.ch;
    if (leg.hz > 0) det << ":" << leg.hz << "Hz";
  }
  if (details) *details = det.str();
  return {};
}

VerifyResult verify_call(const VerifyExpectation& e, const std::vector<std::string>& paths) {
  VerifyResult r;
  if (paths.empty()) {
    r.line = "FAIL " + e.call_id + " no recording with conversation_id " + e.conversation_id;
    return r;
  }
  if (paths.size() > 1 && !e.fragments_allowed) {
    r.line = "FAIL " + e.call_id + " " + std::to_string(paths.size()) +
             " recordings with conversation_id " + e.conversation_id;
    return r;
  }
  std::int64_t total = 0;
  std::size_t checked = 0;  // fragments long enough to be checked for sound
  std::string all_details;
  for (const auto& p : paths) {
    std::ifstream in(p);
    auto doc = nlohmann::json::parse(in, nullptr, false);
    if (doc.is_discarded()) {
      r.line = "FAIL " + e.call_id + " " + p + " is not JSON";
      return r;
    }
    std::string details;
    bool too_short = false;
    std::string why = check_recording(e, doc, fs::path(p).parent_path().string(),
                                      paths.size() == 1 && !e.fragments_allowed,
                                      &details, &too_short);
    if (!too_short) ++checked;
    if (!why.empty()) {
      r.line = "FAIL " + e.call_id + " " + why + " (" + p + ")";
      return r;
    }
    total += doc.value("duration_ms", std::int64_t{0});
    if (!all_details.empty()) all_details += "; ";
    all_details += details;
  }
  if (e.fragments_allowed && checked == 0) {
    r.line = "FAIL " + e.call_id + " no fragment with audio (" + std::to_string(total) + " ms in all)";
    return r;
  }
  r.pass = true;
  r.line = "PASS " + e.call_id + " conversation=" + e.conversation_id +
           (paths.size() > 1 ? " fragments=" + std::to_string(paths.size()) +
                                   " total=" + std::to_string(total) + "ms "
                             : " ") +
           all_details;
  return r;
}

std::vector<VerifyResult> verify_all(const std::vector<std::string>& dirs,
                                     const std::vector<VerifyExpectation>& expectations,
                                     double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000));
  std::multimap<std::string, std::string> idx;
  while (true) {
    idx = index_recordings(dirs);
    bool all = true;
    for (const auto& e : expectations)
      if (idx.find(e.conversation_id) == idx.end()) all = false;
    if (all || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (!expectations.empty()) {
    // A fragment may still be finalising when the first one appears: give it a moment.
    bool any_frag = false;
    for (const auto& e : expectations) any_frag |= e.fragments_allowed;
    if (any_frag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      idx = index_recordings(dirs);
    }
  }
  std::vector<VerifyResult> out;
  for (const auto& e : expectations) {
    std::vector<std::string> paths;
    auto [b, en] = idx.equal_range(e.conversation_id);
    for (auto it = b; it != en; ++it) paths.push_back(it->second);
    std::sort(paths.begin(), paths.end());
    out.push_back(verify_call(e, paths));
  }
  return out;
}

}  // namespace sgw::siprec_src
