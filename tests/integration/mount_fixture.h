// A real tierfs mount for a test: writes a configuration into a temporary
// directory, starts `tierfs mount -f` as a child, waits until the mount is
// live (the mount point's st_dev changes) and unmounts on teardown
// (fusermount3 -u, waitpid, a lazy unmount as the last resort).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <string>
#include <vector>

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
};

struct TestPlacement {
  std::string path_glob;
  std::string min_size;  // empty: no size threshold
  std::string tier;
};

struct TestConfig {
  std::vector<TestTier> tiers;
  std::vector<TestPlacement> placement;
  std::string default_tier;
  std::string cache = "none";
  bool allow_other = false;
};

// The TOML text of a test configuration (the one place that knows the schema).
std::string config_toml(const TestConfig& config);

// One tier "fast" of 64 MiB on numa:0 with 4 KiB granularity.
TestConfig small_config();

class Mount {
 public:
  Mount() = default;
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  // Starts the server; false (with the reason in failure()) when the mount did not come up.
  bool start(const TestConfig& config, const std::vector<std::string>& extra_args = {});
  // Unmounts with fusermount3 -u and waits for the server; returns its exit status.
  int stop();

  const std::string& dir() const { return mountpoint_; }
  const std::string& work_dir() const { return work_dir_; }
  std::string path(const std::string& name) const { return mountpoint_ + "/" + name; }
  pid_t server_pid() const { return pid_; }
  std::string failure() const;  // the server's log, for messages

 private:
  std::string work_dir_, mountpoint_, log_path_;
  pid_t pid_ = -1;
};

// Test helpers on plain paths.
std::string read_all(const std::string& path);
void write_all(const std::string& path, const std::string& data, int flags = 0);
std::string pattern(size_t bytes, unsigned seed);
std::string getxattr_string(const std::string& path, const std::string& name);
bool is_mounted(const std::string& mountpoint);  // listed in /proc/mounts
std::string tierfs_bin();
// lstat that records a test failure (with the path and errno) when it fails.
struct stat stat_of(const std::string& path);
// Timestamp comparisons.
bool later(const timespec& a, const timespec& b);
bool same(const timespec& a, const timespec& b);
// Timestamps come from the server's clock; a pause makes "later" observable.
void tick();
// Runs a command, returns its exit status and puts stdout+stderr in `output`.
int run_command(const std::vector<std::string>& argv, std::string& output);

// A fixture with one mount of small_config(); tests may remount with another config.
class MountTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  bool remount(const TestConfig& config);
  Mount mount_;
};

}  // namespace tierfs::testing
