// Buffered write(2) into tiers that fill, on both cache modes (issue 24): the
// write that finds no room fails there (ENOSPC, after a short count when it
// stored part), st_size is what was stored, fsync and close report nothing
// new, and every byte write() acknowledged reads back, through the page
// cache, from the server (O_DIRECT) and after the server is killed and a new
// one adopts its memory. With FUSE's writeback cache (cache = "kernel" before
// issue 24) every write() succeeded, st_size grew past the tiers, and the
// bytes were dropped at close.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
// Two tiers of 8 MiB: a write spills from the first into the second before it fails.
constexpr uint64_t kCapacity = 16 * kMiB;
// Writes go on until this much was acknowledged before a test calls it "never failed".
constexpr uint64_t kGiveUp = 4 * kCapacity;

// What one writer got: the bytes write() acknowledged and how the writing ended.
struct Filled {
  uint64_t acknowledged = 0;
  int error = 0;  // errno of the write that failed (0: none did before kGiveUp)
  bool short_seen = false;
};

// 1 MiB buffered writes of `data` (as dd bs=1M does) until one fails.
Filled fill(int fd, const std::string& data) {
  Filled got;
  while (got.acknowledged < kGiveUp) {
    const size_t at = got.acknowledged % data.size();
    const size_t len = std::min<size_t>(kMiB, data.size() - at);
    const ssize_t n = write(fd, data.data() + at, len);
    if (n < 0) {
      got.error = errno;
      return got;
    }
    got.acknowledged += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) < len) got.short_seen = true;
  }
  return got;
}

// The file's size as the server has it, not the kernel's attribute cache.
uint64_t server_size(const std::string& path) {
  struct statx st {};
  EXPECT_EQ(statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_SIZE, &st), 0)
      << path << ": " << strerror(errno);
  return st.stx_size;
}

// The file as the server holds it: O_DIRECT bypasses the page cache on both modes.
std::string read_direct(const std::string& path, size_t size) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) return "<open failed: " + std::string(strerror(errno)) + ">";
  const size_t rounded = (size + 4095) / 4096 * 4096;
  void* buffer = nullptr;
  if (posix_memalign(&buffer, 4096, rounded + 4096) != 0) return "<no memory>";
  std::string out;
  const ssize_t n = pread(fd, buffer, rounded + 4096, 0);
  if (n >= 0) out.assign(static_cast<char*>(buffer), static_cast<size_t>(n));
  free(buffer);
  close(fd);
  return out;
}

// Size and bytes of `path` are exactly the first `acknowledged` bytes of `data`.
void expect_holds(const std::string& path, const std::string& data, uint64_t acknowledged,
                  const std::string& when) {
  const std::string expected = data.substr(0, acknowledged);
  EXPECT_EQ(server_size(path), acknowledged) << path << " " << when;
  const std::string cached = read_all(path);
  EXPECT_EQ(cached.size(), acknowledged) << path << " " << when;
  EXPECT_TRUE(cached == expected) << path << ": read() differs " << when;
  const std::string direct = read_direct(path, acknowledged);
  EXPECT_EQ(direct.size(), acknowledged) << path << " " << when;
  EXPECT_TRUE(direct == expected) << path << ": the server's bytes differ " << when;
}

class FullTierTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    std::string tmpl = (std::filesystem::temp_directory_path() / "tierfs-full-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << strerror(errno);
    dir_ = tmpl;
    // The state directory and the spill region outlive a mount, so a second
    // server finds what a killed one left.
    toml_ = "[mount]\ncache = \"" + std::string(GetParam()) + "\"\nstate_dir = \"" + dir_ +
            "/state\"\n\n[[tier]]\nname = \"fast\"\nregions = [\"numa:0\"]\nsize = \"8MiB\"\n"
            "granularity = \"64KiB\"\n\n[[tier]]\nname = \"spill\"\nregions = [\"file:" +
            dir_ + "/spill.img\"]\nsize = \"8MiB\"\ngranularity = \"64KiB\"\ncreate = true\n";
    ASSERT_TRUE(mount_.start(toml_)) << mount_.failure();
  }
  void TearDown() override {
    mount_.stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  // kill -9 of the server, then a new one on the same state: acknowledged
  // writes are in region memory, not only in this kernel's page cache.
  void crash_and_remount() {
    ASSERT_EQ(kill(mount_.server_pid(), SIGKILL), 0) << strerror(errno);
    mount_.stop();
    ASSERT_TRUE(mount_.start(toml_)) << mount_.failure();
  }
  std::string dir_, toml_;
  Mount mount_;
};

TEST_P(FullTierTest, BufferedWritePastBothTiersFailsAtWriteAndKeepsWhatItAcknowledged) {
  const std::string file = mount_.path("dd");
  const std::string data = pattern(kGiveUp, 24);
  const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  const Filled got = fill(fd, data);
  ASSERT_EQ(got.error, ENOSPC) << "cache=" << GetParam() << ": after " << got.acknowledged
                               << " acknowledged bytes on 16 MiB of tiers, write() "
                               << (got.error ? strerror(got.error) : "never failed");
  EXPECT_LE(got.acknowledged, kCapacity);
  EXPECT_GE(got.acknowledged, kCapacity - 2 * kMiB) << "the write failed with room left";
  // Another write fails the same way; nothing moved.
  EXPECT_EQ(write(fd, data.data(), kMiB), -1);
  EXPECT_EQ(errno, ENOSPC);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), got.acknowledged) << "st_size claims more";
  expect_holds(file, data, got.acknowledged, "before close");
  // The server dies with the file still open and not synced.
  crash_and_remount();
  close(fd);
  expect_holds(mount_.path("dd"), data, got.acknowledged, "after kill -9 and a new server");
}

TEST_P(FullTierTest, FourWritersFillingTheTiersEachFailAtWriteNotAtClose) {
  constexpr int kWriters = 4;
  std::vector<std::string> data;
  data.reserve(kWriters);
  for (int i = 0; i < kWriters; ++i) data.push_back(pattern(kCapacity, 100 + i));
  std::vector<Filled> got(kWriters);
  std::vector<int> fsync_err(kWriters, -1), close_err(kWriters, -1);
  std::vector<std::thread> writers;
  writers.reserve(kWriters);
  for (int i = 0; i < kWriters; ++i)
    writers.emplace_back([&, i] {
      const int fd = open(mount_.path("w" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT, 0644);
      if (fd < 0) return;
      got[i] = fill(fd, data[i]);
      fsync_err[i] = fsync(fd) == 0 ? 0 : errno;
      close_err[i] = close(fd) == 0 ? 0 : errno;
    });
  for (auto& writer : writers) writer.join();
  uint64_t total = 0;
  for (int i = 0; i < kWriters; ++i) {
    EXPECT_EQ(got[i].error, ENOSPC)
        << "cache=" << GetParam() << ", writer " << i << " after " << got[i].acknowledged
        << " bytes: " << (got[i].error ? strerror(got[i].error) : "write() never failed");
    EXPECT_EQ(fsync_err[i], 0) << "writer " << i << ": fsync " << strerror(fsync_err[i]);
    EXPECT_EQ(close_err[i], 0) << "writer " << i << ": close " << strerror(close_err[i]);
    total += got[i].acknowledged;
  }
  EXPECT_LE(total, kCapacity) << "more acknowledged than the tiers hold";
  EXPECT_GE(total, kCapacity - 4 * kMiB) << "the writers failed with room left";
  for (int i = 0; i < kWriters; ++i)
    expect_holds(mount_.path("w" + std::to_string(i)), data[i],
                 std::min(got[i].acknowledged, kCapacity), "after close");
  crash_and_remount();
  for (int i = 0; i < kWriters; ++i)
    expect_holds(mount_.path("w" + std::to_string(i)), data[i],
                 std::min(got[i].acknowledged, kCapacity), "after kill -9 and a new server");
}

INSTANTIATE_TEST_SUITE_P(CacheModes, FullTierTest, ::testing::Values("none", "kernel"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace tierfs::testing
