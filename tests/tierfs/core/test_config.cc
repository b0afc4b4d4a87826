// The configuration loader: good files give the values they say, the
// effective configuration reads back to itself, every file of the bad corpus
// gives exactly its expected one-line message, and the command prints them.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "numa/region_claim.h"
#include "tests/tierfs/core/config_fixture.h"
#include "tierfs/core/config.h"

namespace {

namespace fs = std::filesystem;
using tierfs::parse_config;
using tierfs::testing::fake_topology;

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string error_of(const std::string& text, const std::string& name = "c.toml") {
  try {
    parse_config(text, name, fake_topology());
  } catch (const tierfs::ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

const fs::path kSource = TIERFS_TEST_SOURCE_ROOT;

TEST(Config, TwoTierFileGivesItsValues) {
  auto c = parse_config(R"(
[mount]
cache = "kernel"
max_io = "4MiB"
threads = 8
bpf = "off"

[[tier]]
name = "dram"
regions = ["numa:0", "numa:1"]
size = "8GiB"
granularity = "4KiB"
weights = [3, 1]

[[tier]]
name = "cxl"
regions = ["dax:/dev/dax0.0", { region = "dax:/dev/dax1.0", offset = "2GiB" }]

[[placement]]
path = "*.ckpt"
tier = "cxl"

[[placement]]
min_size = "1GiB"
tier = "cxl"

[defaults]
tier = "dram"
)",
                        "two.toml", fake_topology());
  EXPECT_EQ(c.mount.cache, tierfs::CacheMode::kernel);
  EXPECT_EQ(c.mount.max_io_bytes, 4u << 20);
  EXPECT_EQ(c.mount.threads, 8u);
  EXPECT_EQ(c.mount.bpf, tierfs::FeatureMode::off);
  ASSERT_EQ(c.tiers.size(), 2u);
  EXPECT_EQ(c.tiers[0].size_bytes, uint64_t{8} << 30);  // 8GiB is a whole number of 16KiB rows
  EXPECT_EQ(c.tiers[0].geometry.row_bytes, 16u << 10);
  EXPECT_EQ(c.tiers[0].geometry.regions[0].bytes, uint64_t{6} << 30);
  EXPECT_EQ(c.tiers[0].geometry.regions[1].bytes, uint64_t{2} << 30);
  // The dax tier is sized by its smaller region: dax1.0 from 2GiB holds 6GiB, dax0.0 holds 4GiB.
  EXPECT_EQ(c.tiers[1].size_bytes, uint64_t{8} << 30);
  EXPECT_EQ(c.tiers[1].regions[1].offset_bytes, uint64_t{2} << 30);
  EXPECT_EQ(c.tiers[1].granularity_bytes, 2u << 20);  // the default
  EXPECT_EQ(c.tiers[1].weights, (std::vector<uint32_t>{1, 1}));
  ASSERT_EQ(c.placement.size(), 2u);
  EXPECT_EQ(c.placement[0].path_glob, "*.ckpt");
  EXPECT_EQ(c.placement[1].min_size_bytes, uint64_t{1} << 30);
  EXPECT_EQ(c.default_tier, "dram");
  const tierfs_layout& l = c.tiers[0].geometry.layout;
  EXPECT_EQ(l.ways, 2u);
  EXPECT_EQ(l.granularity_shift, 12u);
  EXPECT_EQ(l.weights[0], 3);
  EXPECT_TRUE(c.any_bytes_outlive_machine());  // the dax: tier
  c.tiers.pop_back();
  EXPECT_FALSE(c.any_bytes_outlive_machine());  // numa: memory only
}

TEST(Config, SizeRoundsDownToWholeRows) {
  const auto c = parse_config(R"(
[[tier]]
name = "a"
regions = ["numa:0", "numa:1"]
size = "5MiB"
granularity = "2MiB"
)",
                              "r.toml", fake_topology());
  EXPECT_EQ(c.tiers[0].size_bytes, 4u << 20);
}

// An administrator writes a watermark as a percent: "80%" means what 80 means.
TEST(Config, WatermarksTakeThePercentForm) {
  const std::string two_tiers = R"(
[[tier]]
name = "fast"
regions = ["numa:0"]
size = "4MiB"
HIGH
LOW

[[tier]]
name = "slow"
regions = ["numa:1"]
size = "4MiB"
)";
  auto with = [&](const std::string& high, const std::string& low) {
    std::string text = two_tiers;
    text.replace(text.find("HIGH"), 4, high);
    text.replace(text.find("LOW"), 3, low);
    return text;
  };
  const auto percent = parse_config(with(R"(high_watermark = "80%")", R"(low_watermark = "65%")"),
                                    "c.toml", fake_topology());
  EXPECT_EQ(percent.tiers[0].high_watermark, 80U);
  EXPECT_EQ(percent.tiers[0].low_watermark, 65U);
  const auto mixed = parse_config(with(R"(high_watermark = "100%")", "low_watermark = 0"), "c.toml",
                                  fake_topology());
  EXPECT_EQ(mixed.tiers[0].high_watermark, 100U);
  EXPECT_EQ(mixed.tiers[0].low_watermark, 0U);
  EXPECT_EQ(error_of(with(R"(high_watermark = "150%")", "")),
            "c.toml:6:18: high_watermark 150 of tier \"fast\" must be a percent from 1 to 100");
  for (const char* bad : {"abc%", "80", "80 %", "%", "8.5%", "80%%", ""})
    EXPECT_EQ(error_of(with(fmt::format(R"(high_watermark = "{}")", bad), "")),
              fmt::format("c.toml:6:18: \"high_watermark\" in tier \"fast\" must be a percent "
                          "such as 80 or \"80%\", not \"{}\"",
                          bad))
        << bad;
}

TEST(Config, KernelPathHeadroomIsAPercent) {
  const std::string tier = "\n[[tier]]\nname = \"fast\"\nregions = [\"numa:0\"]\nsize = \"4MiB\"\n";
  EXPECT_EQ(parse_config(tier, "c.toml", fake_topology()).mount.kernel_path_headroom, 25U);
  EXPECT_EQ(
      parse_config("[mount]\nkernel_path_headroom = \"60%\"\n" + tier, "c.toml", fake_topology())
          .mount.kernel_path_headroom,
      60U);
  EXPECT_EQ(parse_config("[mount]\nkernel_path_headroom = 0\n" + tier, "c.toml", fake_topology())
                .mount.kernel_path_headroom,
            0U);
  EXPECT_EQ(error_of("[mount]\nkernel_path_headroom = 101\n" + tier),
            "c.toml:2:24: kernel_path_headroom 101 must be a percent from 0 to 100");
}

TEST(Config, EffectiveConfigurationReadsBackToItself) {
  for (const auto& entry : fs::directory_iterator(kSource / "tests/configs/good")) {
    const auto first = parse_config(slurp(entry.path()), entry.path().string(), fake_topology());
    const std::string text = tierfs::to_toml(first);
    const auto second = parse_config(text, "effective.toml", fake_topology());
    // Equal configurations print the same; the second print only differs in its source line.
    std::string again = tierfs::to_toml(second);
    again.replace(again.find("effective.toml"), 14, entry.path().string());
    EXPECT_EQ(text, again) << entry.path();
  }
}

TEST(Config, BuiltInDefaultIsOneDramTierOverEveryNode) {
  const auto c = tierfs::default_config(fake_topology());
  ASSERT_EQ(c.tiers.size(), 1u);
  EXPECT_EQ(c.tiers[0].regions.size(), 2u);
  EXPECT_EQ(c.tiers[0].regions[1].spec.node, 1);
  // A quarter of 24GiB free, in whole 4MiB rows.
  EXPECT_EQ(c.tiers[0].size_bytes, uint64_t{6} << 30);
  EXPECT_EQ(c.tiers[0].size_bytes % c.tiers[0].geometry.row_bytes, 0u);
  // And it survives its own validation.
  EXPECT_NO_THROW(parse_config(tierfs::to_toml(c), "d.toml", fake_topology()));
}

// Every file in tests/configs/bad starts with "# expect: LINE:COLUMN: message".
TEST(Config, BadCorpusGivesExactlyTheExpectedLine) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "tests/configs/bad")) {
    const std::string text = slurp(entry.path());
    const std::string marker = "# expect: ";
    ASSERT_EQ(text.rfind(marker, 0), 0u) << entry.path() << " has no expect line";
    const std::string expected = text.substr(marker.size(), text.find('\n') - marker.size());
    EXPECT_EQ(error_of(text, "bad.toml"), "bad.toml:" + expected) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 30);
}

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/tierfs-config-XXXXXX";
    path_ = mkdtemp(templ);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(Config, FileRegions) {
  TempDir dir;
  const std::string existing = (dir.path() / "spill").string();
  { std::ofstream(existing).put('x'); }
  fs::resize_file(existing, 64 << 20);
  const std::string absent = (dir.path() / "absent").string();
  // Not tierfs's (numa/region_claim.h): refused unless the region takes it over.
  EXPECT_EQ(error_of("[[tier]]\nname = \"s\"\nregions = [\"file:" + existing + "\"]\n"),
            "c.toml:3:12: region \"file:" + existing +
                "\" of tier \"s\": exists and has no tierfs signature (user.tierfs.region): tierfs "
                "did not make it and will not overwrite it (take_over = true on the region gives "
                "it to tierfs)");
  EXPECT_EQ(error_of("[[tier]]\nname = \"s\"\nregions = [{ region = \"file:" + existing +
                     "\", take_over = true }]\n"),
            "(accepted)");
  EXPECT_EQ(error_of("[[tier]]\nname = \"s\"\nregions = [{ region = \"numa:0\", take_over = "
                     "true }]\nsize = \"8MiB\"\n"),
            "c.toml:3:45: region \"numa:0\" of tier \"s\": take_over is for file: regions only");
  ASSERT_EQ(setxattr(existing.c_str(), tierfs::numa::kRegionXattr, tierfs::numa::kRegionXattrValue,
                     std::strlen(tierfs::numa::kRegionXattrValue), 0),
            0);
  // An existing file sizes its tier.
  auto c = parse_config("[[tier]]\nname = \"s\"\nregions = [\"file:" + existing + "\"]\n", "f.toml",
                        fake_topology());
  EXPECT_EQ(c.tiers[0].size_bytes, 64u << 20);
  // Too small for the size asked.
  EXPECT_EQ(
      error_of("[[tier]]\nname = \"s\"\nregions = [\"file:" + existing + "\"]\nsize = \"1GiB\"\n"),
      "c.toml:4:8: size 1GiB of tier \"s\" needs 1.00GiB of region \"file:" + existing +
          "\", which holds 64.00MiB");
  // Missing without create.
  EXPECT_EQ(
      error_of("[[tier]]\nname = \"s\"\nregions = [\"file:" + absent + "\"]\nsize = \"1GiB\"\n"),
      "c.toml:3:12: region \"file:" + absent +
          "\" of tier \"s\": no such file (set create = true to create it)");
  // Create without size.
  EXPECT_EQ(
      error_of("[[tier]]\nname = \"s\"\nregions = [\"file:" + absent + "\"]\ncreate = true\n"),
      "c.toml:1:1: tier \"s\" needs a size: region \"file:" + absent + "\" has no size of its own");
  // Two tiers sharing bytes of one file.
  EXPECT_EQ(error_of("[[tier]]\nname = \"a\"\nregions = [\"file:" + existing +
                     "\"]\nsize = \"32MiB\"\n"
                     "[[tier]]\nname = \"b\"\nregions = [{ region = \"file:" +
                     existing + "\", offset = \"16MiB\" }]\n"),
            "c.toml:7:12: region \"file:" + existing + "\" of tier \"b\" overlaps region \"file:" +
                existing + "\" of tier \"a\" (32.00MiB from offset 0B)");
  // Created files are fine with a size.
  EXPECT_EQ(error_of("[[tier]]\nname = \"s\"\nregions = [\"file:" + absent +
                     "\"]\nsize = \"8MiB\"\ncreate = true\n"),
            "(accepted)");
  EXPECT_FALSE(fs::exists(absent)) << "checking a configuration creates nothing";
}

TEST(Config, StateDirAndPersistentTiers) {
  TempDir dir;
  const std::string spill = (dir.path() / "spill").string();
  const std::string state = (dir.path() / "state" / "m").string();
  const std::string file_tier = "[[tier]]\nname = \"s\"\nregions = [\"file:" + spill +
                                "\"]\nsize = \"8MiB\"\ncreate = true\n";
  EXPECT_EQ(error_of("[mount]\nstate_dir = \"var/tierfs\"\n" + file_tier),
            "c.toml:2:13: state_dir \"var/tierfs\" must be an absolute path");
  EXPECT_EQ(error_of(file_tier + "persistent = true\n"),
            "c.toml:6:14: tier \"s\" is persistent: set [mount] state_dir to a directory on "
            "persistent storage (e.g. /var/lib/tierfs/NAME) to keep its metadata");
  EXPECT_EQ(error_of("[mount]\nstate_dir = \"" + state +
                     "\"\n[[tier]]\nname = \"d\"\nregions = [\"numa:0\"]\nsize = "
                     "\"8MiB\"\npersistent = true\n"),
            "c.toml:7:14: tier \"d\" is persistent but region \"numa:0\" is memory that goes with "
            "the server; only file: and dax: regions can be persistent");
  auto c =
      parse_config("[mount]\nstate_dir = \"" + state + "/\"\n" + file_tier + "persistent = true\n",
                   "p.toml", fake_topology());
  EXPECT_EQ(c.mount.state_dir, state);
  EXPECT_TRUE(c.tiers[0].persistent);
  EXPECT_TRUE(c.any_persistent());
  EXPECT_FALSE(fs::exists(state)) << "checking a configuration creates nothing";
  const auto again = parse_config(tierfs::to_toml(c), "again.toml", fake_topology());
  EXPECT_EQ(again.mount.state_dir, state);
  EXPECT_TRUE(again.tiers[0].persistent);
  // An existing state directory others can read is refused where it is named.
  fs::create_directories(state);
  fs::permissions(state, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  EXPECT_EQ(error_of("[mount]\nstate_dir = \"" + state + "\"\n" + file_tier),
            "c.toml:2:13: state_dir: " + state +
                ": has mode 0750; a mount's state directory must be 0700 (it names the mount's "
                "shared memory)");
}

TEST(Config, UnreadableFileIsOneLine) {
  try {
    tierfs::load_config("/nonexistent/tierfs.toml", fake_topology());
    FAIL() << "accepted a missing file";
  } catch (const tierfs::ConfigError& e) {
    EXPECT_EQ(
        std::string(e.what()),
        "/nonexistent/tierfs.toml: cannot read the configuration file: No such file or directory");
  }
}

struct CommandRun {
  int status;
  std::string out, err;
};

CommandRun run_check_config(const std::string& file) {
  const std::string err_path =
      fs::temp_directory_path() / ("tierfs-cc-err-" + std::to_string(getpid()));
  const std::string cmd =
      std::string(std::getenv("TIERFS_BIN")) + " check-config " + file + " 2>" + err_path;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = pclose(pipe);
  CommandRun run{WEXITSTATUS(status), out, slurp(err_path)};
  fs::remove(err_path);
  return run;
}

TEST(CheckConfigCommand, PrintsTheEffectiveConfigurationOrOneLine) {
  if (std::getenv("TIERFS_BIN") == nullptr) GTEST_SKIP() << "TIERFS_BIN not set";
  TempDir dir;
  const fs::path good = dir.path() / "good.toml";
  std::ofstream(good) << "[[tier]]\nname = \"t\"\nregions = [\"numa:0\"]\nsize = \"64MiB\"\n";
  CommandRun ok = run_check_config(good.string());
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_NE(ok.out.find("size = '64MiB'"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("granularity = '2MiB'"), std::string::npos) << ok.out;
  EXPECT_EQ(ok.err, "");

  const fs::path bad = dir.path() / "bad.toml";
  std::ofstream(bad) << "[[tier]]\nname = \"t\"\nregions = [\"numa:0\"]\nsize = "
                        "\"64MiB\"\ngranularity = \"3MiB\"\n";
  CommandRun fail = run_check_config(bad.string());
  EXPECT_EQ(fail.status, 1);
  EXPECT_EQ(fail.out, "");
  EXPECT_EQ(fail.err,
            bad.string() + ":5:15: granularity \"3MiB\" of tier \"t\" is not a power of two\n");
}

TEST(Config, ExamplesParse) {
  int examples = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "examples")) {
    if (entry.path().extension() != ".toml") continue;
    std::string text = slurp(entry.path());
    EXPECT_NO_THROW(parse_config(text, entry.path().string(), fake_topology())) << error_of(text);
    ++examples;
  }
  EXPECT_GE(examples, 4);
}

// Found by the fuzzer: a file path the system refuses to resolve used to escape as
// std::filesystem::filesystem_error instead of one FILE:LINE:COLUMN line.
TEST(Config, UnresolvableFilePathGivesOneLine) {
  const std::string path = "/" + std::string(5000, 'a');
  const std::string error = error_of("[[tier]]\nname = \"s\"\nregions = [\"file:" + path +
                                     "\"]\ncreate = true\nsize = \"8MiB\"\n");
  // The value is quoted as a short prefix, not 5000 bytes.
  EXPECT_EQ(error, "c.toml:3:12: region \"file:" + path.substr(0, 59) +
                       "... (5006 bytes)\" of tier \"s\": File name too long");
}

TEST(Config, LongValuesAreQuotedAsAShortPrefix) {
  const std::string name(10 << 20, 'x');
  const std::string error =
      error_of("[[tier]]\nname = \"" + name + "\"\nregions = [\"numa:0\"]\nsize = \"8MiB\"\n");
  EXPECT_EQ(error, "c.toml:2:8: tier name \"" + name.substr(0, 64) + "... (" +
                       std::to_string(name.size()) +
                       " bytes)\" must be 1-32 letters, digits, '-' or '_'");
}

}  // namespace
