#include "common/logging.h"

#include <pthread.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <fmt/chrono.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>

namespace sgw::common {

namespace {

struct CallFields {
  std::string recording_id, call_id, conversation_id;
};

bool is_uuid(std::string_view t) {
  if (t.size() != 36) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? t[i] != '-' : !std::isxdigit(static_cast<unsigned char>(t[i]))) return false;
  }
  return true;
}

// The one sink behind every logger: formats, redacts, rate-limits, writes stderr.
class GatewaySink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void configure(const LogOptions& o) {
    std::lock_guard lock(mutex_);
    json_ = o.format == "json";
    redact_ = o.redact;
    node_ = o.node;
    region_ = o.region;
  }

  void register_call(const std::string& recording_id, const std::string& call_id,
                     const std::string& conversation_id) {
    std::lock_guard lock(calls_mutex_);
    auto [it, fresh] = calls_.insert_or_assign(recording_id, CallFields{recording_id, call_id, conversation_id});
    if (fresh) order_.push_back(recording_id);
    if (!call_id.empty()) by_call_id_[call_id] = recording_id;
    while (order_.size() > kLoggedCalls) {
      auto old = calls_.find(order_.front());
      if (old != calls_.end()) {
        auto c = by_call_id_.find(old->second.call_id);
        if (c != by_call_id_.end() && c->second == old->first) by_call_id_.erase(c);
        calls_.erase(old);
      }
      order_.pop_front();
    }
  }

  void flush_repeats() {
    std::lock_guard lock(mutex_);
    emit_expired(std::chrono::steady_clock::now(), true);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text(msg.payload.data(), msg.payload.size());
    auto now = std::chrono::steady_clock::now();
    emit_expired(now, false);
    if (msg.level >= spdlog::level::warn) {
      std::string key = fmt::format("{}\x1f{}\x1f{}", std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                                    static_cast<int>(msg.level), text);
      auto it = repeats_.find(key);
      if (it != repeats_.end() && now - it->second.printed < kRepeatWindow) {
        ++it->second.suppressed;
        return;
      }
      if (repeats_.size() >= 1024) emit_expired(now, true);  // bounded: print and forget all
      repeats_[key] = Repeat{now, 0, msg.level, std::string(msg.logger_name.data(), msg.logger_name.size()), text};
    }
    write(msg.time, msg.level, std::string_view(msg.logger_name.data(), msg.logger_name.size()), text);
  }

  void flush_() override { std::fflush(stderr); }

 private:
  struct Repeat {
    std::chrono::steady_clock::time_point printed;
    std::uint64_t suppressed = 0;
    spdlog::level::level_enum level;
    std::string logger, text;
  };

  // Prints "repeated N times" for lines whose window has ended (all: ALL).
  void emit_expired(std::chrono::steady_clock::time_point now, bool all) {
    if (!all && now - last_sweep_ < std::chrono::seconds(1)) return;
    last_sweep_ = now;
    for (auto it = repeats_.begin(); it != repeats_.end();) {
      if (!all && now - it->second.printed < kRepeatWindow) {
        ++it;
        continue;
      }
      if (it->second.suppressed > 0)
        write(std::chrono::system_clock::now(), it->second.level, it->second.logger,
              fmt::format("{} (repeated {} times in {} s)", it->second.text, it->second.suppressed,
                          std::chrono::duration_cast<std::chrono::seconds>(kRepeatWindow).count()));
      it = repeats_.erase(it);
    }
  }

  // The call a line is about: a registered recording id or Call-ID among its words.
  std::optional<CallFields> call_of(std::string_view text) {
    std::lock_guard lock(calls_mutex_);
    if (calls_.empty()) return std::nullopt;
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == '[' || text[i] == '('))
        ++i;
      std::size_t j = i;
      while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
      std::string_view word = text.substr(i, j - i);
      while (!word.empty() && (word.back() == ']' || word.back() == ':' || word.back() == ',' || word.back() == ')'))
        word.remove_suffix(1);
      if (!word.empty()) {
        std::string w(word);
        if (auto r = calls_.find(w); r != calls_.end()) return r->second;
        if (auto c = by_call_id_.find(w); c != by_call_id_.end()) {
          if (auto r = calls_.find(c->second); r != calls_.end()) return r->second;
        }
        // A recording id followed by more (e.g. "ID.wav" or "ID/"): look at its head.
        if (word.size() > 36 && is_uuid(word.substr(0, 36))) {
          if (auto r = calls_.find(std::string(word.substr(0, 36))); r != calls_.end()) return r->second;
        }
      }
      i = j;
    }
    return std::nullopt;
  }

  void write(spdlog::log_clock::time_point time, spdlog::level::level_enum level, std::string_view logger,
             const std::string& raw) {
    std::string text = redact_ ? redact_personal_data(raw) : raw;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::string stamp = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(secs), static_cast<int>(ms % 1000));
    auto lv = spdlog::level::to_string_view(level);
    std::string line;
    if (json_) {
      char name[32] = {};
      ::pthread_getname_np(::pthread_self(), name, sizeof name);
      nlohmann::ordered_json j;
      j["time"] = stamp;
      j["level"] = std::string_view(lv.data(), lv.size());
      j["thread"] = std::string(name);
      j["logger"] = logger;
      j["message"] = text;
      if (auto call = call_of(raw)) {
        j["call_id"] = call->call_id;
        j["recording_id"] = call->recording_id;
        j["conversation_id"] = call->conversation_id;
        j["node"] = node_;
        j["region"] = region_;
      }
      line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      line = fmt::format("{} {:<5} [{}] {}", stamp, std::string_view(lv.data(), lv.size()), logger, text);
    }
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
  }

  bool json_ = false, redact_ = false;
  std::string node_, region_;
  std::map<std::string, Repeat> repeats_;
  std::chrono::steady_clock::time_point last_sweep_{};
  std::mutex calls_mutex_;
  std::unordered_map<std::string, CallFields> calls_;
  std::unordered_map<std::string, std::string> by_call_id_;
  std::deque<std::string> order_;
};

std::mutex g_mutex;
spdlog::level::level_enum g_level = spdlog::level::info;

const std::shared_ptr<GatewaySink>& sink_ptr() {
  static const auto s = std::make_shared<GatewaySink>();
  return s;
}
GatewaySink& sink() { return *sink_ptr(); }

}  // namespace

bool valid_log_level(std::string_view level) {
  auto l = spdlog::level::from_str(std::string(level));
  return l != spdlog::level::off || level == "off";
}

bool valid_log_format(std::string_view format) { return format == "text" || format == "json"; }

bool init_logging(std::string_view level) {
  LogOptions o;
  o.level = std::string(level);
  return init_logging(o);
}

bool init_logging(const LogOptions& options) {
  if (!valid_log_level(options.level) || !valid_log_format(options.format)) return false;
  sink().configure(options);
  std::lock_guard lock(g_mutex);
  g_level = spdlog::level::from_str(options.level);
  spdlog::set_level(g_level);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
  return true;
}

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
  std::lock_guard lock(g_mutex);
  if (auto l = spdlog::get(component)) return l;
  auto l = std::make_shared<spdlog::logger>(component, sink_ptr());
  l->set_level(g_level);
  spdlog::register_logger(l);
  return l;
}

void log_register_call(const std::string& recording_id, const std::string& call_id,
                       const std::string& conversation_id) {
  sink().register_call(recording_id, call_id, conversation_id);
}

void flush_logging() { sink().flush_repeats(); }

std::string redact_personal_data(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  std::size_t i = 0;
  while (i < in.size()) {
    // URI schemes: mask the user part (sip:alice@ -> sip:***@; tel:+4930123 -> tel:***).
    bool scheme_start = i == 0 || !alnum(in[i - 1]);
    std::size_t scheme_len = 0;
    if (scheme_start) {
      for (std::string_view s : {"sips:", "sip:", "tel:"}) {
        if (in.size() - i >= s.size()) {
          bool eq = true;
          for (std::size_t k = 0; k < s.size(); ++k)
            eq = eq && std::tolower(static_cast<unsigned char>(in[i + k])) == s[k];
          if (eq) {
            scheme_len = s.size();
            break;
          }
        }
      }
    }
    if (scheme_len) {
      out.append(in.substr(i, scheme_len));
      std::size_t j = i + scheme_len;
      std::size_t end = j;
      while (end < in.size() && in[end] != '@' && in[end] != '>' && in[end] != ';' && in[end] != '"' &&
             !std::isspace(static_cast<unsigned char>(in[end])))
        ++end;
      bool tel = scheme_len == 4 && std::tolower(static_cast<unsigned char>(in[i])) == 't';
      if (tel || (end < in.size() && in[end] == '@')) {
        out.append("***");
        i = end;
      } else {
        i = j;  // sip:host only: no user part
      }
      continue;
    }
    // Quoted display names: "Alice Smith" -> "***".
    if (in[i] == '"') {
      std::size_t close = in.find('"', i + 1);
      if (close != std::string_view::npos) {
        out.append("\"***\"");
        i = close + 1;
        continue;
      }
    }
    // Phone numbers: 7+ digits (an optional '+'), not part of a word, UUID or address.
    bool word_start = i == 0 || (!alnum(in[i - 1]) && in[i - 1] != '-' && in[i - 1] != '.');
    if (word_start && (std::isdigit(static_cast<unsigned char>(in[i])) || in[i] == '+')) {
      std::size_t j = i + (in[i] == '+' ? 1 : 0);
      std::size_t digits = 0;
      while (j < in.size() && std::isdigit(static_cast<unsigned char>(in[j]))) ++j, ++digits;
      bool word_end = j == in.size() || (!alnum(in[j]) && in[j] != '-' && in[j] != '.');
      if (digits >= 7 && word_end) {
        out.append("***");
        i = j;
        continue;
      }
      out.append(in.substr(i, j - i == 0 ? 1 : j - i));
      i = j == i ? i + 1 : j;
      continue;
    }
    out.push_back(in[i]);
    ++i;
  }
  return out;
}

}  // namespace sgw::common
