#include "common/thread_name.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace sgw::common {

void set_thread_name(std::string_view name) {
  std::array<char, 16> buf{};  // 15 characters and the terminator (TASK_COMM_LEN)
  std::memcpy(buf.data(), name.data(), std::min(name.size(), buf.size() - 1));
  (void)pthread_setname_np(pthread_self(), buf.data());
}

}  // namespace sgw::common
