#include "recording/spool_file_system.h"

#include <fcntl.h>
#include <unistd.h>

namespace sgw::recording {

namespace {
class PosixSpoolFileSystem final : public SpoolFileSystem {
 public:
  int open(const std::string& path, int flags, mode_t mode) override {
    return ::open(path.c_str(), flags, mode);
  }
  ssize_t write(int fd, const void* data, std::size_t size) override { return ::write(fd, data, size); }
  ssize_t read(int fd, void* data, std::size_t size) override { return ::read(fd, data, size); }
  int fdatasync(int fd) override { return ::fdatasync(fd); }
  int fsync(int fd) override { return ::fsync(fd); }
  int syncfs(int fd) override { return ::syncfs(fd); }
  int close(int fd) override { return ::close(fd); }
  int unlink(const std::string& path) override { return ::unlink(path.c_str()); }
};
}  // namespace

SpoolFileSystem* SpoolFileSystem::posix() {
  static PosixSpoolFileSystem* fs = new PosixSpoolFileSystem();  // never destroyed: usable at exit
  return fs;
}

}  // namespace sgw::recording
