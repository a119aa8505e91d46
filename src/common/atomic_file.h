// Publishing a file so that a reader never sees half of it: write to a
// temporary name in the same directory, fsync it, rename, fsync the directory.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace sgw::common {

// How far a write must be durable when write_file_atomically returns.
enum class FileSync {
  kPowerLoss,     // fsync of the file and of its folder: survives a power loss
  kProcessDeath,  // write(2) and rename only: survives the process (kill -9, a crash),
                  // the page cache being the kernel's; a power loss may lose it
};

// Creates parent directories as needed. Errors name the path and operation.
// The temporary name is `path` + ".tmp": concurrent writers of one path race.
Status write_file_atomically(const std::string& path, std::string_view content,
                             FileSync sync = FileSync::kPowerLoss);

// The same with the temporary file created beforehand: `fd` is open for
// writing on the empty file `tmp_path`, in path's folder. Writes `content`,
// closes `fd` (in every case) and renames tmp_path to path. For a caller that
// must not pay for creating a file on its own thread: an inode allocation
// costs hundreds of microseconds of CPU on a busy ext4.
Status write_prepared_file_atomically(int fd, const std::string& tmp_path, const std::string& path,
                                      std::string_view content, FileSync sync = FileSync::kPowerLoss);

}  // namespace sgw::common
