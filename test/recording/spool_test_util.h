// Shared helpers for the spool tests: a temporary directory and a
// fault-injecting SpoolFileSystem.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "recording/spool_file_system.h"
#include "test_support/temp_dir.h"

namespace sgw::recording::testing {

using test_support::TempDir;

inline std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Faults, all off by default. Writes and opens happen on the test thread;
// fdatasync may be called from the syncer thread, so its knobs are atomic.
class FaultyFileSystem : public ForwardingSpoolFileSystem {
 public:
  // Each write() passes at most this many bytes (short writes).
  std::size_t max_write = std::numeric_limits<std::size_t>::max();
  // Every Nth write() call fails with EINTR before writing anything.
  int eintr_every = 0;
  // Once this many bytes have been written in total, write() fails with
  // write_errno; a write that crosses the limit is cut at it (torn write).
  std::uint64_t write_limit = std::numeric_limits<std::uint64_t>::max();
  int write_errno = EIO;
  std::atomic<int> fdatasync_errno{0};
  int fsync_errno = 0;
  int read_errno = 0;

  std::uint64_t written = 0;
  int write_calls = 0;
  std::size_t max_read_request = 0;
  std::atomic<int> fdatasync_calls{0};
  std::atomic<int> syncfs_errno{0};
  std::atomic<int> syncfs_calls{0};
  std::atomic<int> fsync_calls{0};

  ssize_t write(int fd, const void* data, std::size_t size) override {
    ++write_calls;
    if (eintr_every > 0 && write_calls % eintr_every == 0) {
      errno = EINTR;
      return -1;
    }
    if (written >= write_limit) {
      errno = write_errno;
      return -1;
    }
    std::size_t n = std::min<std::uint64_t>({size, max_write, write_limit - written});
    ssize_t r = base()->write(fd, data, n);
    if (r > 0) written += static_cast<std::uint64_t>(r);
    return r;
  }
  ssize_t read(int fd, void* data, std::size_t size) override {
    max_read_request = std::max(max_read_request, size);
    if (read_errno != 0) {
      errno = read_errno;
      return -1;
    }
    return base()->read(fd, data, size);
  }
  int fdatasync(int fd) override {
    ++fdatasync_calls;
    if (int e = fdatasync_errno.load(); e != 0) {
      errno = e;
      return -1;
    }
    return base()->fdatasync(fd);
  }
  int syncfs(int fd) override {
    ++syncfs_calls;
    if (int e = syncfs_errno.load(); e != 0) {
      errno = e;
      return -1;
    }
    return base()->syncfs(fd);
  }
  int fsync(int fd) override {
    ++fsync_calls;
    if (fsync_errno != 0) {
      errno = fsync_errno;
      return -1;
    }
    return base()->fsync(fd);
  }
};

}  // namespace sgw::recording::testing
