#include "common/metrics.h"

#include <sstream>

namespace sgw::common {

Counter& LabelledCounter::with(const std::string& value) {
  std::lock_guard lock(mutex_);
  return children_[value];
}

std::vector<std::pair<std::string, std::uint64_t>> LabelledCounter::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (const auto& [k, c] : children_) out.emplace_back(k, c.value());
  return out;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  counters_.push_back(std::make_unique<Counter>());
  entries_.push_back({name, help, "counter", counters_.back().get(), nullptr, nullptr});
  return *counters_.back();
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  gauges_.push_back(std::make_unique<Gauge>());
  entries_.push_back({name, help, "gauge", nullptr, gauges_.back().get(), nullptr});
  return *gauges_.back();
}

LabelledCounter& MetricsRegistry::labelled_counter(const std::string& name, const std::string& help,
                                                   const std::string& label) {
  std::lock_guard lock(mutex_);
  labelled_.push_back(std::make_unique<LabelledCounter>(label));
  entries_.push_back({name, help, "counter", nullptr, nullptr, labelled_.back().get()});
  return *labelled_.back();
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  for (const auto& e : entries_) {
    out << "# HELP " << e.name << ' ' << e.help << '\n' << "# TYPE " << e.name << ' ' << e.type << '\n';
    if (e.counter) out << e.name << ' ' << e.counter->value() << '\n';
    if (e.gauge) out << e.name << ' ' << e.gauge->value() << '\n';
    if (e.labelled) {
      for (const auto& [v, n] : e.labelled->snapshot())
        out << e.name << '{' << e.labelled->label() << "=\"" << v << "\"} " << n << '\n';
    }
  }
  return out.str();
}

}  // namespace sgw::common
