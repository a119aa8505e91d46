#pragma once

#include <string_view>

namespace sgw::common {

// Names the calling thread (as `ps -L`, `top -H`, `perf` and gdb show it),
// cut to the kernel's 15 characters. Best effort: a failure changes nothing.
void set_thread_name(std::string_view name);

}  // namespace sgw::common
