// KeyTemplate: parsing rules, rendering, and that no field value can make a
// key escape its base directory.
#include "storage/key_template.h"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

namespace sgw::storage {
namespace {

using std::chrono::sys_days;
using namespace std::chrono;

KeyFields sample() {
  KeyFields f;
  f.start_time = sys_days{year{2024} / 3 / 7} + hours{9} + minutes{41} + seconds{5};
  f.conversation_id = "3f2a-77";
  f.recording_id = "r-1";
  f.region = "eu-west-1";
  f.node = "gw1";
  f.call_id = "abc@10.0.0.1";
  return f;
}

TEST(KeyTemplate, DefaultTemplateRenders) {
  auto t = KeyTemplate::parse("{region}/{yyyy}/{mm}/{dd}/{conversation_id}/{recording_id}");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->render(sample()), "eu-west-1/2024/03/07/3f2a-77/r-1");
}

TEST(KeyTemplate, AllPlaceholdersAndLiterals) {
  auto t = KeyTemplate::parse("rec/{node}-{hh}/{call_id}.{yyyy}{mm}{dd}/x_{recording_id}");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->render(sample()), "rec/gw1-09/abc_10.0.0.1.20240307/x_r-1");
  EXPECT_EQ(t->text(), "rec/{node}-{hh}/{call_id}.{yyyy}{mm}{dd}/x_{recording_id}");
}

TEST(KeyTemplate, DatesAreUtcAndPadded) {
  auto t = KeyTemplate::parse("{yyyy}/{mm}/{dd}/{hh}");
  ASSERT_TRUE(t.ok());
  KeyFields f;
  f.start_time = sys_days{year{1999} / 12 / 31} + hours{23} + minutes{59};
  EXPECT_EQ(t->render(f), "1999/12/31/23");
  f.start_time = sys_days{year{2025} / 1 / 1};
  EXPECT_EQ(t->render(f), "2025/01/01/00");
  f.start_time = system_clock::time_point{};  // epoch
  EXPECT_EQ(t->render(f), "1970/01/01/00");
}

TEST(KeyTemplate, ParseErrorsNameTheProblem) {
  struct Case {
    std::string text, code, mention;
  } cases[] = {
      {"", "key_template.empty", "empty"},
      {"{region}/{bogus}", "key_template.unknown_placeholder", "{bogus}"},
      {"{Region}", "key_template.unknown_placeholder", "{Region}"},
      {"{}", "key_template.unknown_placeholder", "{}"},
      {"{region", "key_template.unclosed", "position 0"},
      {"/{region}", "key_template.absolute", "'/'"},
      {"a//{region}", "key_template.empty_component", "position 2"},
      {"{region}/", "key_template.empty_component", "ends with"},
      {"../{region}", "key_template.dot_component", "position 0"},
      {"a/../{region}", "key_template.dot_component", "position 2"},
      {"a..b/{region}", "key_template.dotdot", "position 1"},
      {"{region}/.x", "key_template.dot_component", "position 9"},
      {"a b/{region}", "key_template.bad_char", "0x20"},
      {"a\\b/{region}", "key_template.bad_char", "'\\'"},
      {std::string("a\0b", 3), "key_template.bad_char", "0x00"},
      {"a}b", "key_template.bad_char", "'}'"},
      {"{region}/caf\xC3\xA9", "key_template.bad_char", "0xC3"},
      {std::string(1025, 'a'), "key_template.too_long", "1024"},
  };
  for (const auto& c : cases) {
    auto t = KeyTemplate::parse(c.text);
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_EQ(t.error().code, c.code) << c.text << ": " << t.error().message;
    EXPECT_NE(t.error().message.find(c.mention), std::string::npos) << t.error().message;
  }
  // Allowed: dots inside a component, a literal-only component, hyphens, underscores.
  EXPECT_TRUE(KeyTemplate::parse("a.b/c_d-e/{recording_id}.json").ok());
}

TEST(KeyTemplate, SanitizeRules) {
  EXPECT_EQ(KeyTemplate::sanitize("ok.A-z_9"), "ok.A-z_9");
  EXPECT_EQ(KeyTemplate::sanitize(""), "unknown");
  EXPECT_EQ(KeyTemplate::sanitize("."), "_");
  EXPECT_EQ(KeyTemplate::sanitize(".."), "_.");
  EXPECT_EQ(KeyTemplate::sanitize(".hidden"), "_hidden");
  EXPECT_EQ(KeyTemplate::sanitize("../../etc/passwd"), "_._.._etc_passwd");
  EXPECT_EQ(KeyTemplate::sanitize("/abs"), "_abs");
  EXPECT_EQ(KeyTemplate::sanitize("a/b\\c"), "a_b_c");
  EXPECT_EQ(KeyTemplate::sanitize(std::string("a\0b", 3)), "a_b");
  EXPECT_EQ(KeyTemplate::sanitize("caf\xC3\xA9"), "caf__");
  EXPECT_EQ(KeyTemplate::sanitize("a b\tc\r\n"), "a_b_c__");
  EXPECT_EQ(KeyTemplate::sanitize(std::string(1000, 'x')).size(), KeyTemplate::kMaxValueSize);
}

// Every hostile value in every field: the key stays relative, has no "." / ".."
// or empty components, components are bounded, and it resolves under the base.
TEST(KeyTemplate, NoFieldValueEscapesTheBase) {
  const std::vector<std::string> hostile = {
      "../../etc/passwd", "..", ".", "/abs", "/", "a/b", "a/../../b", "..\\..\\windows",
      std::string("x\0/../y", 7), std::string(1, '\0'), "", " ", "caf\xC3\xA9/\xE2\x80\xAE..",
      "%2e%2e%2f", "....//....//", std::string(5000, '.'), std::string(300, '/'),
      std::string(129, 'a') + "/..", "\n../", "~root", "${HOME}", "{region}", ".a/.b/..c"};
  const std::vector<std::string> templates = {
      "{region}/{yyyy}/{mm}/{dd}/{conversation_id}/{recording_id}",
      "{conversation_id}{recording_id}{region}{node}{call_id}",
      "x/{call_id}/{node}.{region}-{conversation_id}/{recording_id}",
  };
  const std::filesystem::path base = std::filesystem::temp_directory_path() / "sgw-key-base";
  const auto canonical_base = std::filesystem::weakly_canonical(base);
  int checked = 0;
  for (const auto& text : templates) {
    auto t = KeyTemplate::parse(text);
    ASSERT_TRUE(t.ok()) << text;
    for (int field = 0; field < 5; ++field) {
      for (const auto& value : hostile) {
        KeyFields f = sample();
        std::string* target[] = {&f.conversation_id, &f.recording_id, &f.region, &f.node, &f.call_id};
        *target[field] = value;
        const std::string key = t->render(f);
        SCOPED_TRACE(text + " field " + std::to_string(field) + " key " + key);
        ASSERT_FALSE(key.empty());
        ASSERT_NE(key.front(), '/');
        ASSERT_EQ(key.find('\0'), std::string::npos);
        ASSERT_EQ(key.find('\\'), std::string::npos);
        std::size_t start = 0;
        while (true) {
          std::size_t slash = key.find('/', start);
          std::string comp = key.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
          ASSERT_FALSE(comp.empty());
          ASSERT_NE(comp.front(), '.');
          ASSERT_LE(comp.size(), KeyTemplate::kMaxComponentSize);
          for (char c : comp) {
            ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') << c;
          }
          if (slash == std::string::npos) break;
          start = slash + 1;
        }
        const auto resolved = std::filesystem::weakly_canonical(base / key);
        const auto rel = resolved.lexically_relative(canonical_base);
        ASSERT_FALSE(rel.empty());
        ASSERT_NE(rel.begin()->string(), "..");
        ASSERT_EQ(resolved.string().rfind(canonical_base.string() + "/", 0), 0U);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 3 * 5 * static_cast<int>(hostile.size()));
}

TEST(KeyTemplate, LongComponentsAreCapped) {
  auto t = KeyTemplate::parse("{conversation_id}{recording_id}{call_id}");
  ASSERT_TRUE(t.ok());
  KeyFields f = sample();
  f.conversation_id = std::string(500, 'a');
  f.recording_id = std::string(500, 'b');
  f.call_id = std::string(500, 'c');
  const std::string key = t->render(f);
  EXPECT_EQ(key.size(), KeyTemplate::kMaxComponentSize);
  EXPECT_EQ(key, std::string(128, 'a') + std::string(127, 'b'));
}

}  // namespace
}  // namespace sgw::storage
