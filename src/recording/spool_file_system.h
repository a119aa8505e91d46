// SpoolFileSystem: the seam between the spool and the kernel. Methods mirror the
// POSIX calls they wrap (return -1 and set errno on failure) so the default
// implementation is a one-liner each and tests can fault any call: short
// writes, EINTR, EIO, ENOSPC, a "crash" after N bytes.
// Thread: the POSIX implementation is stateless and safe from any thread; a
// test implementation must be safe for the threads it is used on (the syncer
// calls fdatasync from its own thread).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace sgw::recording {

class SpoolFileSystem {
 public:
  virtual ~SpoolFileSystem() = default;

  virtual int open(const std::string& path, int flags, mode_t mode) = 0;
  virtual ssize_t write(int fd, const void* data, std::size_t size) = 0;
  virtual ssize_t read(int fd, void* data, std::size_t size) = 0;
  virtual int fdatasync(int fd) = 0;
  virtual int fsync(int fd) = 0;
  virtual int syncfs(int fd) = 0;  // the whole filesystem fd is on (Linux syncfs(2))
  virtual int close(int fd) = 0;
  virtual int unlink(const std::string& path) = 0;

  // The process-wide POSIX implementation (never null, never destroyed).
  static SpoolFileSystem* posix();
};

// Pass-through to another implementation; tests derive from it and override
// only the calls they fault.
class ForwardingSpoolFileSystem : public SpoolFileSystem {
 public:
  explicit ForwardingSpoolFileSystem(SpoolFileSystem* base = SpoolFileSystem::posix())
      : base_(base) {}
  int open(const std::string& path, int flags, mode_t mode) override {
    return base_->open(path, flags, mode);
  }
  ssize_t write(int fd, const void* data, std::size_t size) override {
    return base_->write(fd, data, size);
  }
  ssize_t read(int fd, void* data, std::size_t size) override { return base_->read(fd, data, size); }
  int fdatasync(int fd) override { return base_->fdatasync(fd); }
  int fsync(int fd) override { return base_->fsync(fd); }
  int syncfs(int fd) override { return base_->syncfs(fd); }
  int close(int fd) override { return base_->close(fd); }
  int unlink(const std::string& path) override { return base_->unlink(path); }

 protected:
  SpoolFileSystem* base() const { return base_; }

 private:
  SpoolFileSystem* base_;  // not owned
};

}  // namespace sgw::recording
