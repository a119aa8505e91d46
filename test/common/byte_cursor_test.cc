#include "common/byte_cursor.h"

#include <array>

#include <gtest/gtest.h>

namespace sgw::common {
namespace {

TEST(ByteCursorTest, ReadsBigEndianAndStopsAtEnd) {
  std::array<std::uint8_t, 7> buf{0x80, 0x00, 0x12, 0x34, 0xde, 0xad, 0xbe};
  ByteCursor c(buf);
  EXPECT_EQ(c.u8(), 0x80);
  EXPECT_EQ(c.u8(), 0x00);
  EXPECT_EQ(c.u16be(), 0x1234);
  EXPECT_FALSE(c.u32be().has_value());  // only 3 bytes left
  EXPECT_EQ(c.remaining(), 3u);          // a failed read consumes nothing
  EXPECT_FALSE(c.skip(4));
  auto b = c.bytes(3);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ((*b)[2], 0xbe);
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.u8().has_value());
}

}  // namespace
}  // namespace sgw::common
