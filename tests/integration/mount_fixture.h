// The integration tests' fixture: TestConfig (a test configuration as TOML),
// a mount of it through the mount kit and helpers on plain paths.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <string>
#include <vector>

#include "tests/support/tierfs_mount.h"

namespace tierfs::testing {

// One tier of a test configuration.
struct TestTier {
  std::string name;
  std::vector<std::string>
      regions;       // e.g. "numa:0", "file:@WORK@/x" (@WORK@: the test's directory)
  std::string size;  // e.g. "64MiB"
  std::string granularity = "4KiB";
  bool create_files = false;
  std::vector<std::string> offsets;  // per region, "" or absent: no offset
  std::vector<int> weights;          // empty: equal weights
  std::string extra;                 // more TOML lines of the tier ("high_watermark = 80")
};

struct TestPlacement {
  std::string path_glob;
  std::string min_size;  // empty: no size threshold
  std::string tier;
  bool pin = false;
};

struct TestConfig {
  std::vector<TestTier> tiers;
  std::vector<TestPlacement> placement;
  std::string default_tier;
  std::string cache = "none";
  bool allow_other = false;
  std::string extra;  // more TOML at the end ("[mover]\nrate = ...")
};

// TIERFS_TEST_DATA_PATH=kernel or =server pins every tier that has no
// data_path of its own (see config_toml); unset, tiers take "auto": the
// kernel path where the tier qualifies and the tests run as root.
bool kernel_data_path_run();

// Whether `file` on a mount is served on the kernel path (its
// user.tierfs.map says so): for the few behaviours the two paths differ in.
bool on_kernel_path(const std::string& file);

// The TOML text of a test configuration (the one place that knows the schema).
std::string config_toml(const TestConfig& config);

// One tier "fast" of 64 MiB on numa:0 with 4 KiB granularity.
TestConfig small_config();

// A mount of a TestConfig through the mount kit (tests/support/tierfs_mount.h).
class Mount : public TierfsMount {
 public:
  Mount() : TierfsMount("tierfs-it") {}
  using TierfsMount::start;
  // Starts the server; false (with the reason in failure()) when the mount did not come up.
  bool start(const TestConfig& config, const std::vector<std::string>& extra_args = {},
             Mode mode = Mode::daemon) {
    return start(config_toml(config), extra_args, mode);
  }
  std::string failure() const { return "server log:\n" + log(); }  // for messages
};

// Test helpers on plain paths.
std::string read_all(const std::string& path);
void write_all(const std::string& path, const std::string& data, int flags = 0);
std::string pattern(size_t bytes, unsigned seed);
std::string getxattr_string(const std::string& path, const std::string& name);
// lstat that records a test failure (with the path and errno) when it fails.
struct stat stat_of(const std::string& path);
// Timestamp comparisons.
bool later(const timespec& a, const timespec& b);
bool same(const timespec& a, const timespec& b);
// Sets atime and mtime to a chosen instant long past, so that a change which
// moves them is observably later without a pause. ctime cannot be chosen: it
// moves with the server's nanosecond clock (CLOCK_REALTIME).
void set_past_times(const std::string& path);

// A tmpfs mounted for a test, to compare tierfs's answers with (needs root);
// unmounted and removed when it goes.
class ReferenceTmpfs {
 public:
  ReferenceTmpfs() = default;
  ReferenceTmpfs(const ReferenceTmpfs&) = delete;
  ReferenceTmpfs& operator=(const ReferenceTmpfs&) = delete;
  ~ReferenceTmpfs();
  // False, with errno, when the directory or the mount could not be made.
  bool mount(const std::string& size = "64m");
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// A fixture with one mount of small_config(); tests may remount with another config.
class MountTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  bool remount(const TestConfig& config);
  Mount mount_;
};

}  // namespace tierfs::testing
