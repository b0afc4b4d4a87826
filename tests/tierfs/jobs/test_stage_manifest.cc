// Stage manifests: entries, relative paths against the manifest's directory,
// checksums, and one-line errors for what is wrong.
#include <gtest/gtest.h>

#include "tierfs/jobs/stage_manifest.h"

namespace tierfs::jobs {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_stage_manifest(text, "m.toml", "/scratch/42");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(StageManifest, ReadsEntriesAndResolvesRelativePaths) {
  const StageManifest m = parse_stage_manifest(R"(threads = 3
report = "report.json"
[[copy]]
source = "results"
destination = "/home/u/out"
[[copy]]
source = "/data/in.dat"
destination = "in.dat"
xxh3 = "00000000DEADbeef"
)",
                                               "m.toml", "/scratch/42");
  EXPECT_EQ(m.threads, 3u);
  EXPECT_EQ(m.report, "/scratch/42/report.json");
  ASSERT_EQ(m.entries.size(), 2u);
  EXPECT_EQ(m.entries[0].source, "/scratch/42/results");
  EXPECT_EQ(m.entries[0].destination, "/home/u/out");
  EXPECT_FALSE(m.entries[0].xxh3);
  EXPECT_EQ(m.entries[1].source, "/data/in.dat");
  EXPECT_EQ(m.entries[1].destination, "/scratch/42/in.dat");
  ASSERT_TRUE(m.entries[1].xxh3);
  EXPECT_EQ(*m.entries[1].xxh3, 0xdeadbeefULL);
}

TEST(StageManifest, ChecksumHexRoundTrips) {
  EXPECT_EQ(xxh3_hex(0x5e0a1b2c3d4e5f60ULL), "5e0a1b2c3d4e5f60");
  EXPECT_EQ(parse_xxh3_hex("5e0a1b2c3d4e5f60"), 0x5e0a1b2c3d4e5f60ULL);
  EXPECT_FALSE(parse_xxh3_hex("5e0a1b2c3d4e5f6"));   // 15 digits
  EXPECT_FALSE(parse_xxh3_hex("5e0a1b2c3d4e5f6g"));  // not hex
  EXPECT_FALSE(parse_xxh3_hex("+e0a1b2c3d4e5f60"));
}

TEST(StageManifest, ErrorsNameFileLineAndWhat) {
  EXPECT_EQ(error_of(""), "m.toml: the manifest has no [[copy]] entry");
  EXPECT_EQ(error_of("[[copy]]\nsource = \"a\"\n"), "m.toml:1:1: [[copy]] needs a destination");
  EXPECT_EQ(error_of("[[copy]]\nsource = \"a\"\ndestination = \"b\"\nxxh3 = \"12\"\n"),
            "m.toml:4:1: xxh3 \"12\" is not 16 hex digits (XXH3-64)");
  EXPECT_EQ(error_of("[[copy]]\nsrc = \"a\"\n").rfind("m.toml:2:1: unknown key \"src\"", 0), 0u);
  EXPECT_EQ(error_of("threads = 0\n"), "m.toml:1:1: threads must be a whole number from 1 to 256");
  EXPECT_EQ(error_of("copy = 3\n"), "m.toml:1:1: copy must be an array of tables ([[copy]])");
  EXPECT_EQ(error_of("[[copy]\n").rfind("m.toml:1:", 0), 0u);  // TOML syntax, with position
}

}  // namespace
}  // namespace tierfs::jobs
