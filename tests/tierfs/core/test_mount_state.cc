// MountState: where a mount's state directory is, how it is created and
// trusted, the lock that keeps a second server out (naming the holder), the
// shared-memory name records the next server finds again, --fresh, and removal.
#include "tierfs/core/mount_state.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using tierfs::Config;
using tierfs::MountState;

class MountStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tierfs-mount-state-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    config_.mount.state_dir = base_ + "/state/m1";
  }
  void TearDown() override {
    for (const std::string& name : created_shm_) shm_unlink(name.c_str());
    fs::remove_all(base_);
  }
  std::string message_of(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "(accepted)";
  }
  // A shared-memory object as a previous server would have left it.
  void leave_shm(const std::string& name) {
    const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 4096), 0);
    close(fd);
    created_shm_.push_back(name);
  }
  std::string base_;
  Config config_;
  std::vector<std::string> created_shm_;
};

TEST_F(MountStateTest, DefaultDirectoryIsKeyedByTheMountPoint) {
  const Config plain;
  const std::string a = MountState::directory_for(plain, "/scratch/a");
  const std::string b = MountState::directory_for(plain, "/scratch/b");
  EXPECT_NE(a, b);
  EXPECT_EQ(a, MountState::directory_for(plain, "/scratch/a"));
  if (geteuid() == 0) {
    EXPECT_TRUE(std::regex_match(a, std::regex("/run/tierfs/[0-9a-f]{16}")));
  }
  EXPECT_EQ(MountState::directory_for(config_, "/scratch/a"), config_.mount.state_dir);
}

TEST_F(MountStateTest, CreatedPrivateAndLocked) {
  auto state = MountState::open(config_, "/mnt/x", false);
  EXPECT_TRUE(state->fresh());
  struct stat st {};
  ASSERT_EQ(stat(config_.mount.state_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_TRUE(fs::exists(config_.mount.state_dir + "/lock"));
  // A second server for the same mount is refused with one line naming the holder.
  const std::string refusal = message_of([&] { MountState::open(config_, "/mnt/x", false); });
  EXPECT_NE(
      refusal.find("/mnt/x is served by another tierfs server, pid " + std::to_string(getpid())),
      std::string::npos)
      << refusal;
  EXPECT_EQ(refusal.find('\n'), std::string::npos);
  state.reset();  // the lock goes with the server
  EXPECT_NO_THROW(MountState::open(config_, "/mnt/x", false));
}

TEST_F(MountStateTest, ShmNamesAreUnpredictableAndFoundAgain) {
  std::string name;
  {
    auto state = MountState::open(config_, "/mnt/x", false);
    name = state->shm_name("dram", 0);
    EXPECT_TRUE(std::regex_match(name, std::regex("/tierfs\\.[0-9]+\\.[0-9a-f]{32}"))) << name;
    EXPECT_NE(state->shm_name("dram", 1), name);
    EXPECT_EQ(state->shm_name("dram", 0), name);
  }
  auto again = MountState::open(config_, "/mnt/x", false);
  EXPECT_FALSE(again->fresh()) << "records of a previous server are something to adopt";
  EXPECT_EQ(again->shm_name("dram", 0), name);
  EXPECT_EQ(again->shm_names().size(), 2u);
}

TEST_F(MountStateTest, ForgedRecordIsNotFollowed) {
  fs::create_directories(config_.mount.state_dir);
  fs::permissions(config_.mount.state_dir, fs::perms::owner_all);
  std::ofstream(config_.mount.state_dir + "/shm.dram.0") << "/../../etc/passwd\n";
  auto state = MountState::open(config_, "/mnt/x", false);
  const std::string name = state->shm_name("dram", 0);
  EXPECT_EQ(name.find(".."), std::string::npos);
  EXPECT_TRUE(std::regex_match(name, std::regex("/tierfs\\.[0-9]+\\.[0-9a-f]{32}")));
}

TEST_F(MountStateTest, FreshDiscardsWhatAPreviousServerLeft) {
  std::string name;
  {
    auto state = MountState::open(config_, "/mnt/x", false);
    name = state->shm_name("dram", 0);
    leave_shm(name);
    std::ofstream(config_.mount.state_dir + "/journal") << "old";
  }
  auto state = MountState::open(config_, "/mnt/x", true);
  EXPECT_TRUE(state->fresh());
  EXPECT_FALSE(fs::exists("/dev/shm" + name));
  EXPECT_FALSE(fs::exists(config_.mount.state_dir + "/journal"));
  EXPECT_NE(state->shm_name("dram", 0), name);
}

TEST_F(MountStateTest, RemoveAllLeavesNothing) {
  auto state = MountState::open(config_, "/mnt/x", false);
  const std::string name = state->shm_name("dram", 0);
  leave_shm(name);
  const std::vector<std::string> removed = state->remove_all();
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0], "removed shared memory /dev/shm" + name);
  EXPECT_EQ(removed[1], "removed mount state " + config_.mount.state_dir);
  EXPECT_FALSE(fs::exists("/dev/shm" + name));
  EXPECT_FALSE(fs::exists(config_.mount.state_dir));
}

TEST_F(MountStateTest, OpenExistingForCleanup) {
  EXPECT_EQ(MountState::open_existing(config_.mount.state_dir), nullptr);
  auto server = MountState::open(config_, "/mnt/x", false);
  const std::string refusal =
      message_of([&] { MountState::open_existing(config_.mount.state_dir); });
  EXPECT_NE(refusal.find("served by another tierfs server"), std::string::npos) << refusal;
  server.reset();
  auto cleanup = MountState::open_existing(config_.mount.state_dir);
  ASSERT_NE(cleanup, nullptr);
  EXPECT_TRUE(cleanup->fresh());
}

TEST_F(MountStateTest, UntrustedDirectoryIsRefused) {
  fs::create_directories(config_.mount.state_dir);
  chmod(config_.mount.state_dir.c_str(), 0755);
  EXPECT_EQ(message_of([&] { MountState::open(config_, "/mnt/x", false); }),
            "mount state: " + config_.mount.state_dir +
                ": has mode 0755; a mount's state directory must be 0700 (it names the mount's "
                "shared memory)");
  if (geteuid() != 0) return;
  chmod(config_.mount.state_dir.c_str(), 0700);
  ASSERT_EQ(chown(config_.mount.state_dir.c_str(), 65534, 65534), 0);
  EXPECT_NE(message_of([&] {
              MountState::open(config_, "/mnt/x", false);
            }).find("is owned by uid 65534, not by the mounting user"),
            std::string::npos);
}

TEST_F(MountStateTest, PlantedSymlinkIsNotFollowed) {
  // A world-writable, non-sticky parent: a link there may be anyone's.
  const std::string open_dir = base_ + "/open";
  fs::create_directories(open_dir);
  chmod(open_dir.c_str(), 0777);
  fs::create_directories(base_ + "/elsewhere");
  fs::create_directory_symlink(base_ + "/elsewhere", open_dir + "/state");
  config_.mount.state_dir = open_dir + "/state/m";
  EXPECT_NE(message_of([&] {
              MountState::open(config_, "/mnt/x", false);
            }).find("is a symlink in a directory that other users can write"),
            std::string::npos);
}

// umount returns before the old server has removed its state, and scripts
// mount again at once: the new server must wait for the removal and then
// get the directory, whatever point of it the two meet at (before: the lock
// went at a random point of the removal, and a new server either took a
// lock in a directory being removed, so the old one's rmdir failed, or
// found the directory gone under it: "lock: cannot open").
TEST_F(MountStateTest, ANewServerMeetingTheRemovalGetsTheDirectory) {
  // Enough entries that removing them takes a good part of the new
  // server's 50 ms wait between two tries of the lock, in an order (a disk
  // file system's hash order) that puts the lock anywhere among them.
  std::mt19937 random(7);
  for (int round = 0; round < 8; ++round) {
    auto old_server = MountState::open(config_, "/mnt/x", false);
    for (int i = 0; i < 2000; ++i)
      close(openat(old_server->dir_fd(), ("f" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY,
                   0600));
    std::string new_error;
    std::unique_ptr<MountState> new_server;
    std::thread mount_again([&] {
      try {
        new_server = MountState::open(config_, "/mnt/x", false);
      } catch (const std::exception& e) {
        new_error = e.what();
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 50000));
    const std::string old_error = message_of([&] { old_server->remove_all(); });
    old_server.reset();
    mount_again.join();
    EXPECT_EQ(old_error, "(accepted)") << "round " << round;
    ASSERT_EQ(new_error, "") << "round " << round;
    ASSERT_NE(new_server, nullptr);
    EXPECT_TRUE(new_server->fresh()) << "round " << round;
    std::vector<std::string> left;
    for (const auto& entry : fs::directory_iterator(config_.mount.state_dir))
      left.push_back(entry.path().filename());
    EXPECT_EQ(left, std::vector<std::string>{"lock"}) << "round " << round;
    // ... and holds the lock of the file that is there.
    const int lock = open((config_.mount.state_dir + "/lock").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(lock, 0);
    EXPECT_NE(flock(lock, LOCK_EX | LOCK_NB), 0) << "round " << round;
    close(lock);
    new_server->remove_all();
  }
}

}  // namespace
