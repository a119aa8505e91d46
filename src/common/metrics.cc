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

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  if (v > 0) sum_micro_.fetch_add(static_cast<std::uint64_t>(v * 1e6), std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::cumulative() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t run = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) out[i] = run += counts_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum() const { return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6; }

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help, std::vector<double> bounds) {
  std::lock_guard lock(mutex_);
  histograms_.push_back(std::make_unique<Histogram>(std::move(bounds)));
  Entry e{name, help, "histogram", nullptr, nullptr, nullptr};
  e.histogram = histograms_.back().get();
  entries_.push_back(e);
  return *histograms_.back();
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
    if (e.histogram) {
      auto cum = e.histogram->cumulative();
      const auto& b = e.histogram->bounds();
      for (std::size_t i = 0; i < b.size(); ++i) out << e.name << "_bucket{le=\"" << b[i] << "\"} " << cum[i] << '\n';
      out << e.name << "_bucket{le=\"+Inf\"} " << cum.back() << '\n'
          << e.name << "_sum " << e.histogram->sum() << '\n'
          << e.name << "_count " << cum.back() << '\n';
    }
    if (e.labelled) {
      for (const auto& [v, n] : e.labelled->snapshot())
        out << e.name << '{' << e.labelled->label() << "=\"" << v << "\"} " << n << '\n';
    }
  }
  return out.str();
}

}  // namespace sgw::common
