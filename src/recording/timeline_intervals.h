// IntervalSet: a set of half-open integer intervals [a, b), kept merged.
// Used by the timeline for sample coverage and loss (recording/timeline.cc).
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <vector>

namespace sgw::recording {

class IntervalSet {
 public:
  // Adds [a, b); overlapping and touching intervals merge. Empty input ignored.
  void add(std::int64_t a, std::int64_t b) {
    if (a >= b) return;
    auto it = map_.upper_bound(a);
    if (it != map_.begin()) {
      auto prev = std::prev(it);
      if (prev->second >= a) {
        a = prev->first;
        if (prev->second > b) b = prev->second;
        map_.erase(prev);
      }
    }
    while (it != map_.end() && it->first <= b) {
      if (it->second > b) b = it->second;
      it = map_.erase(it);
    }
    map_.emplace(a, b);
  }

  bool contains(std::int64_t x) const {
    auto it = map_.upper_bound(x);
    if (it == map_.begin()) return false;
    return x < std::prev(it)->second;
  }

  bool empty() const { return map_.empty(); }
  // Preconditions: !empty().
  std::int64_t first() const { return map_.begin()->first; }
  std::int64_t last() const { return map_.rbegin()->second; }
  std::size_t size() const { return map_.size(); }

  // Appends every interval's two ends to `out`.
  void boundaries(std::vector<std::int64_t>& out) const {
    for (const auto& [a, b] : map_) {
      out.push_back(a);
      out.push_back(b);
    }
  }

  const std::map<std::int64_t, std::int64_t>& intervals() const { return map_; }

 private:
  std::map<std::int64_t, std::int64_t> map_;  // start -> end
};

}  // namespace sgw::recording
