// Loads sample bodies from test/siprec/data (SGW_TEST_DATA_DIR). The same files seed the fuzzers.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace sgw::siprec::test {

inline std::string load(const std::string& name) {
  std::ifstream in(std::string(SGW_TEST_DATA_DIR) + "/" + name, std::ios::binary);
  if (!in) throw std::runtime_error("missing test data file " + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "a\nb\n" -> "a\r\nb\r\n": lets tests write CRLF bodies readably.
inline std::string crlf(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

}  // namespace sgw::siprec::test
