#include "common/task_thread.h"

#include <future>
#include <vector>

#include <gtest/gtest.h>

namespace sgw::common {
namespace {

// Jobs run in the order posted; a full queue refuses (the caller keeps the work); stop() runs
// what was queued before it returns, and refuses what comes after.
TEST(TaskThread, RunsJobsInOrderRefusesWhenFullAndRunsTheRestOnStop) {
  TaskThread t("sgw-test", 2);
  std::promise<void> release;
  auto gate = release.get_future().share();
  std::promise<void> running;
  std::vector<int> ran;  // written by the thread only until stop() joins it
  ASSERT_TRUE(t.post([&] {
    running.set_value();
    gate.wait();
    ran.push_back(0);
  }));
  running.get_future().wait();  // the first job holds the thread: the queue is empty
  EXPECT_TRUE(t.post([&] { ran.push_back(1); }));
  EXPECT_TRUE(t.post([&] { ran.push_back(2); }));
  EXPECT_FALSE(t.post([&] { ran.push_back(3); }));  // two queued: full
  release.set_value();
  t.stop();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
  EXPECT_FALSE(t.post([&] { ran.push_back(4); }));
  t.stop();  // idempotent
  EXPECT_EQ(ran.size(), 3u);
}

}  // namespace
}  // namespace sgw::common
