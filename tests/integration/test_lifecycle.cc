// Mount lifecycle: bad mount points and bad configurations give one line and
// leave nothing mounted; SIGTERM and fusermount3 -u unmount cleanly, also
// with files still open; the daemon's parent returns once the mount is live.
// (Shared mmap on every cache mode: test_mmap.cc.)
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    char tmpl[] = "/tmp/tierfs-life-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    mnt_ = dir_ + "/mnt";
    mkdir(mnt_.c_str(), 0755);
  }
  void TearDown() override {
    std::string out;
    if (is_mounted(mnt_)) run_command({"umount", "-l", mnt_}, out);
    run_command({"rm", "-rf", dir_}, out);
  }
  std::string write_config(const std::string& text) {
    std::string path = dir_ + "/tierfs.toml";
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_, mnt_;
};

size_t lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST_F(LifecycleTest, MissingMountPointGivesOneLineAndMountsNothing) {
  std::string config = write_config(config_toml(small_config()));
  std::string out;
  std::string missing = dir_ + "/does-not-exist";
  EXPECT_NE(run_command({tierfs_bin(), "mount", "--config", config, missing}, out), 0);
  EXPECT_EQ(lines(out), 1u) << out;
  EXPECT_NE(out.find("does-not-exist"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(missing));
}

TEST_F(LifecycleTest, MountPointThatIsAFileIsRefused) {
  std::string config = write_config(config_toml(small_config()));
  std::string file = dir_ + "/plain";
  std::ofstream(file) << "x";
  std::string out;
  EXPECT_NE(run_command({tierfs_bin(), "mount", "-f", "--config", config, file}, out), 0);
  EXPECT_EQ(lines(out), 1u) << out;
  EXPECT_NE(out.find("not a directory"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(file));
}

TEST_F(LifecycleTest, BadConfigGivesOneLineWithTheFileAndMountsNothing) {
  std::string config = write_config("[mount]\ncache = \"sometimes\"\n");
  std::string out;
  EXPECT_NE(run_command({tierfs_bin(), "mount", "--config", config, mnt_}, out), 0);
  EXPECT_EQ(lines(out), 1u) << out;
  EXPECT_NE(out.find("tierfs.toml"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(mnt_));
}

TEST_F(LifecycleTest, UnopenableRegionGivesOneLineAndMountsNothing) {
  TestConfig bad;
  bad.tiers.push_back({"spill", {"file:/nonexistent-dir/region.img"}, "16MiB", "64KiB"});
  std::string config = write_config(config_toml(bad));
  std::string out;
  EXPECT_NE(run_command({tierfs_bin(), "mount", "--config", config, mnt_}, out), 0);
  EXPECT_EQ(lines(out), 1u) << out;
  EXPECT_FALSE(is_mounted(mnt_));
}

TEST_F(LifecycleTest, UnknownMountOptionGivesOneLineAndMountsNothing) {
  std::string config = write_config(config_toml(small_config()));
  std::string out;
  EXPECT_NE(
      run_command({tierfs_bin(), "mount", "-o", "no_such_option", "--config", config, mnt_}, out),
      0);
  EXPECT_EQ(lines(out), 1u) << out;
  EXPECT_NE(out.find("no_such_option"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(mnt_));
}

TEST_F(LifecycleTest, DaemonParentReturnsWithTheMountLive) {
  std::string config = write_config(config_toml(small_config()));
  std::string out;
  ASSERT_EQ(run_command({tierfs_bin(), "mount", "--config", config, mnt_}, out), 0) << out;
  EXPECT_TRUE(is_mounted(mnt_));
  write_all(mnt_ + "/f", "daemon");
  EXPECT_EQ(read_all(mnt_ + "/f"), "daemon");
  ASSERT_EQ(run_command({"fusermount3", "-u", mnt_}, out), 0) << out;
  EXPECT_FALSE(is_mounted(mnt_));
}

TEST_F(LifecycleTest, SigtermUnmountsAndTheServerExits) {
  Mount mount;
  ASSERT_TRUE(mount.start(small_config())) << mount.failure();
  std::string mountpoint = mount.dir();
  ASSERT_EQ(kill(mount.server_pid(), SIGTERM), 0);
  for (int i = 0; i < 500 && is_mounted(mountpoint); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(is_mounted(mountpoint));
  EXPECT_EQ(mount.stop(), 0) << "the server exits 0 after a clean unmount";
}

TEST_F(LifecycleTest, UnmountWithFilesStillOpenEndsTheServer) {
  Mount mount;
  ASSERT_TRUE(mount.start(small_config())) << mount.failure();
  write_all(mount.path("open"), pattern(1 << 20, 21));
  int fd = open(mount.path("open").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string mountpoint = mount.dir();
  std::string out;
  // fusermount3 -u refuses a busy mount; the lazy unmount detaches it and the server ends.
  run_command({"umount", "-l", mountpoint}, out);
  close(fd);
  EXPECT_EQ(mount.stop(), 0);
  EXPECT_FALSE(is_mounted(mountpoint));
}

}  // namespace
}  // namespace tierfs::testing
