#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace sgw::common {

namespace {
Error io_error(const std::string& op, const std::string& path) {
  return make_error("io." + op, op + " " + path + ": " + std::strerror(errno));
}
}  // namespace

Status write_file_atomically(const std::string& path, std::string_view content, FileSync sync) {
  std::filesystem::path p(path);
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) return make_error("io.mkdir", "mkdir " + p.parent_path().string() + ": " + ec.message());
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("open", tmp);
  return write_prepared_file_atomically(fd, tmp, path, content, sync);
}

Status write_prepared_file_atomically(int fd, const std::string& tmp, const std::string& path,
                                      std::string_view content, FileSync sync) {
  std::size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto e = io_error("write", tmp);
      ::close(fd);
      return e;
    }
    off += static_cast<std::size_t>(n);
  }
  if (sync == FileSync::kPowerLoss && ::fsync(fd) != 0) {
    auto e = io_error("fsync", tmp);
    ::close(fd);
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error("rename", path);
  if (sync == FileSync::kProcessDeath) return Ok{};
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("open", dir);
  int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return io_error("fsync", dir);
  return Ok{};
}

}  // namespace sgw::common
