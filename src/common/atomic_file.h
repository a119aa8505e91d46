// Publishing a file so that a reader never sees half of it: write to a
// temporary name in the same directory, fsync it, rename, fsync the directory.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace sgw::common {

// Creates parent directories as needed. Errors name the path and operation.
Status write_file_atomically(const std::string& path, std::string_view content);

}  // namespace sgw::common
