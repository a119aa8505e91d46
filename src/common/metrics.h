// Metrics: declared once (see metrics.cc / Metrics struct users), exported in
// Prometheus text format. Counters are relaxed atomics: any thread may bump
// them; the exporter reads them from the HTTP thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sgw::common {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// A counter family with one label (e.g. code="200"). Children are created on
// first use under a mutex and never removed, so returned references stay valid.
// Not for the packet path: look the child up once and keep the reference.
class LabelledCounter {
 public:
  explicit LabelledCounter(std::string label) : label_(std::move(label)) {}
  Counter& with(const std::string& value);
  std::vector<std::pair<std::string, std::uint64_t>> snapshot() const;
  const std::string& label() const { return label_; }

 private:
  std::string label_;
  mutable std::mutex mutex_;
  std::map<std::string, Counter> children_;
};

// A histogram with fixed upper bounds (Prometheus "le" buckets, +Inf added).
// observe() is lock-free (relaxed atomics); any thread.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound (+Inf last), the sum and the count.
  std::vector<std::uint64_t> cumulative() const;
  double sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<std::uint64_t> sum_micro_{0};               // sum in millionths
};

// Registry: names and help texts, registered once at start-up.
class MetricsRegistry {
 public:
  Counter& counter(const std::string& name, const std::string& help);
  Gauge& gauge(const std::string& name, const std::string& help);
  LabelledCounter& labelled_counter(const std::string& name, const std::string& help,
                                    const std::string& label);
  Histogram& histogram(const std::string& name, const std::string& help, std::vector<double> bounds);
  // Prometheus text exposition format 0.0.4.
  std::string render() const;

 private:
  struct Entry {
    std::string name, help, type;
    Counter* counter = nullptr;
    Gauge* gauge = nullptr;
    LabelledCounter* labelled = nullptr;
    Histogram* histogram = nullptr;
  };
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
  std::vector<std::unique_ptr<Counter>> counters_;
  std::vector<std::unique_ptr<Gauge>> gauges_;
  std::vector<std::unique_ptr<LabelledCounter>> labelled_;
  std::vector<std::unique_ptr<Histogram>> histograms_;
};

}  // namespace sgw::common
