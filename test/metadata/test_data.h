// Shared by the metadata tests: reads a sample document from test/metadata/data/.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace sgw::metadata::testing {

inline std::string read_sample(const std::string& name) {
  std::ifstream in(std::string(SGW_TEST_DATA_DIR) + "/" + name, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace sgw::metadata::testing
