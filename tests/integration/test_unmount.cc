// Unmounting with files still open, beyond test_lifecycle.cc's lazy unmount:
// a plain unmount of a busy mount is refused and the mount keeps serving;
// SIGTERM ends the server even with open files and with a writer in the
// middle of its I/O. Each case runs twice: on a tier pinned to the server
// path, where those files then fail (ENOTCONN, or ECONNABORTED for a request
// in flight) instead of hanging, and on a tier that takes its own path, as
// the default mount's does (the kernel path where it qualifies). On the
// kernel path a file already open is the kernel's:
// fuse_file_read_iter/write_iter hand a passthrough file's I/O to its
// backing file without looking at the connection (fs/fuse/file.c,
// passthrough.c), so it neither fails nor hangs after the server is gone
// (docs/operations.md, "Known gaps of the kernel path").
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

// The parameter: "server" pins the tier to the server path (whatever
// TIERFS_TEST_DATA_PATH says), "auto" leaves the choice to the tier.
class UnmountTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    TestConfig config = small_config();
    if (server_pinned()) config.tiers[0].extra = "data_path = \"server\"";
    ASSERT_TRUE(mount_.start(config)) << mount_.failure();
  }
  static bool server_pinned() { return std::string(GetParam()) == "server"; }
  // Whether `file` is on the kernel path; a pinned mount's never is (a
  // failure then, not a case that quietly tests the other path).
  bool kernel_path_of(const std::string& file) {
    const bool kernel = on_kernel_path(file);
    EXPECT_FALSE(kernel && server_pinned())
        << file << " is on the kernel path of a server-path tier";
    return kernel;
  }
  // True once the mount point is gone from /proc/mounts (up to 10 s).
  bool wait_unmounted() {
    for (int i = 0; i < 1000; ++i) {
      if (!is_mounted(mount_.dir())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  Mount mount_;
};

TEST_P(UnmountTest, BusyUnmountIsRefusedAndTheMountKeepsServing) {
  const std::string data = pattern(1 << 20, 31);
  write_all(mount_.path("open"), data);
  int fd = open(mount_.path("open").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::string out;
  EXPECT_NE(run_command({"fusermount3", "-u", mount_.dir()}, out), 0)
      << "an unmount without -z must refuse a mount with an open file";
  EXPECT_TRUE(is_mounted(mount_.dir()));
  std::string back(data.size(), '\0');
  EXPECT_EQ(pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(data.size()));
  EXPECT_TRUE(back == data);
  EXPECT_EQ(pwrite(fd, "more", 4, static_cast<off_t>(data.size())), 4);
  close(fd);
  EXPECT_EQ(read_all(mount_.path("open")).size(), data.size() + 4);
  EXPECT_EQ(mount_.stop(), 0) << "once closed, the unmount succeeds and the server exits 0";
}

TEST_P(UnmountTest, SigtermWithOpenFilesEndsTheServerAndTheFilesReportENOTCONN) {
  write_all(mount_.path("a"), pattern(256 << 10, 32));
  int reader = open(mount_.path("a").c_str(), O_RDONLY);
  int writer = open(mount_.path("b").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(reader, 0);
  ASSERT_GE(writer, 0);
  ASSERT_EQ(write(writer, "before", 6), 6);
  const bool kernel_path = kernel_path_of(mount_.path("a"));
  ASSERT_EQ(kill(mount_.server_pid(), SIGTERM), 0);
  EXPECT_TRUE(wait_unmounted()) << mount_.failure();
  if (kernel_path) {
    // The kernel answers both from their backing files, without the
    // server (a hang is this case's failure), as a lazily unmounted tmpfs
    // does: the reader still reads the file's bytes (the exit unlinks the
    // backing files, it does not empty them: the read got 0 bytes when it
    // did), and the writer writes into its removed file.
    const std::string want = pattern(256 << 10, 32).substr(0, 6);
    char buf[6];
    EXPECT_EQ(pread(reader, buf, sizeof buf, 0), 6);
    EXPECT_EQ(std::string(buf, sizeof buf), want);
    EXPECT_EQ(write(writer, "after", 5), 5);
    close(reader);
    close(writer);
    EXPECT_EQ(mount_.stop(), 0) << "the server exits 0 on SIGTERM even with files open";
    return;
  }
  // ENOTCONN once the connection is gone; ECONNABORTED when a request meets
  // FUSE over io_uring's rings while they are torn down (fuse_uring in the
  // kernel). Both tell the application the server is gone.
  auto connection_gone = [](int e) { return e == ENOTCONN || e == ECONNABORTED; };
  char buf[16];
  errno = 0;
  EXPECT_EQ(pread(reader, buf, sizeof buf, 0), -1);
  EXPECT_PRED1(connection_gone, errno) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(write(writer, "after", 5), -1);
  EXPECT_PRED1(connection_gone, errno) << std::strerror(errno);
  close(reader);
  close(writer);
  EXPECT_EQ(mount_.stop(), 0) << "the server exits 0 on SIGTERM even with files open";
}

TEST_P(UnmountTest, SigtermDuringAWritersIoEndsBothWithoutAHang) {
  std::atomic<bool> started{false};
  std::atomic<bool> stop{false};  // the kernel path's writer never fails: told to end
  std::atomic<int> writer_errno{0};
  std::thread writer([&] {
    int fd = open(mount_.path("busy").c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
      writer_errno = errno;
      return;
    }
    const std::string chunk = pattern(256 << 10, 33);
    for (uint64_t off = 0; !stop; off = (off + chunk.size()) % (32u << 20)) {
      if (pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(off)) < 0) {
        writer_errno = errno;
        break;
      }
      started = true;
    }
    close(fd);
  });
  while (!started && writer_errno == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const bool kernel_path = kernel_path_of(mount_.path("busy"));
  ASSERT_EQ(kill(mount_.server_pid(), SIGTERM), 0);
  EXPECT_TRUE(wait_unmounted()) << mount_.failure();
  if (kernel_path) {
    // Its writes go on into the backing file (what hung this test before):
    // the server still ends and the unmount completes without a hang.
    stop = true;
    writer.join();
    EXPECT_EQ(writer_errno, 0) << strerror(writer_errno.load());
    EXPECT_EQ(mount_.stop(), 0);
    return;
  }
  writer.join();  // a hang here is the failure this test exists for (meson's timeout reports it)
  // A request in flight when the connection ends fails with ECONNABORTED, a later one with
  // ENOTCONN; over FUSE io_uring (CI turns it on) the writer has also been seen to get
  // ECANCELED (CI at 22fc163): the ring's teardown as the server's task dies
  // (fs/fuse/dev_uring.c, IO_URING_F_TASK_DEAD). All three end the writer without a hang.
  EXPECT_TRUE(writer_errno == ENOTCONN || writer_errno == ECONNABORTED || writer_errno == ECANCELED)
      << "the writer ended with " << strerror(writer_errno.load());
  EXPECT_EQ(mount_.stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(DataPaths, UnmountTest, ::testing::Values("server", "auto"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace tierfs::testing
