// TempDir: a fresh directory under the system's temporary directory for one test, removed with
// everything in it when the test ends. Shared by the unit tests (include "test_support/temp_dir.h").
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

namespace sgw::test_support {

class TempDir {
 public:
  // prefix: the directory name's start, so a leftover says which test made it.
  explicit TempDir(const std::string& prefix = "sgw-test") {
    std::string t = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(t.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << t << " failed";
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace sgw::test_support
