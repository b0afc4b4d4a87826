// Binary-unit sizes in and out.
#include <gtest/gtest.h>

#include "tierfs/core/units.h"

namespace {

TEST(Units, ParsesBinaryUnits) {
  EXPECT_EQ(tierfs::parse_size("4KiB"), 4096u);
  EXPECT_EQ(tierfs::parse_size("2MiB"), 2u << 20);
  EXPECT_EQ(tierfs::parse_size("64GiB"), uint64_t{64} << 30);
  EXPECT_EQ(tierfs::parse_size("3 TiB"), uint64_t{3} << 40);
  EXPECT_EQ(tierfs::parse_size("512"), 512u);
  EXPECT_EQ(tierfs::parse_size("512B"), 512u);
}

TEST(Units, RejectsWhatIsNotASize) {
  EXPECT_FALSE(tierfs::parse_size(""));
  EXPECT_FALSE(tierfs::parse_size("KiB"));
  EXPECT_FALSE(tierfs::parse_size("4KB"));  // decimal units are not accepted
  EXPECT_FALSE(tierfs::parse_size("4 kib"));
  EXPECT_FALSE(tierfs::parse_size("-1MiB"));
  EXPECT_FALSE(tierfs::parse_size("16384PiB"));  // 2^64: does not fit
  EXPECT_FALSE(tierfs::parse_size("1.5GiB"));
}

TEST(Units, FormatsInTheLargestExactUnit) {
  EXPECT_EQ(tierfs::format_size(2u << 20), "2MiB");
  EXPECT_EQ(tierfs::format_size(1536), "1536B");
  EXPECT_EQ(tierfs::format_size(uint64_t{3} << 30), "3GiB");
  EXPECT_EQ(tierfs::format_size(0), "0B");
  EXPECT_EQ(tierfs::format_size_approx(uint64_t{3} << 29), "1.50GiB");
}

}  // namespace
