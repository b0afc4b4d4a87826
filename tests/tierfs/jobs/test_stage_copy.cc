// The staging copier on real files: trees with modes, times, symlinks and
// holes; interrupted copies resumed from their part; parts of another source
// started over; checksum mismatches refused; complete destinations skipped.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tierfs/jobs/stage_copy.h"

namespace tierfs::jobs {
namespace {

namespace fs = std::filesystem;

class StageCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tierfs-stage-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string random_bytes(size_t n, unsigned seed = 1) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  }

  void write(const std::string& name, const std::string& bytes) {
    fs::create_directories(fs::path(path(name)).parent_path());
    std::ofstream(path(name), std::ios::binary) << bytes;
  }

  std::string read(const std::string& name) {
    std::ifstream in(path(name), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  StageEntry entry(const std::string& from, const std::string& to) {
    return StageEntry{path(from), path(to), std::nullopt, {}};
  }

  std::string dir_;
};

TEST_F(StageCopy, CopiesATreeKeepingModesTimesSymlinksAndHoles) {
  write("src/a", random_bytes(3 << 20));
  write("src/sub/b", "bee");
  chmod(path("src/sub/b").c_str(), 0640);
  symlink("a", path("src/link").c_str());
  {  // 64 MiB with 4 KiB of data in the middle
    int fd = open(path("src/sparse").c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 64 << 20), 0);
    const std::string page = random_bytes(4096, 7);
    ASSERT_EQ(pwrite(fd, page.data(), page.size(), 32 << 20), 4096);
    close(fd);
  }
  const struct timespec old_times[2] = {{1000000000, 5}, {1000000000, 123456789}};
  utimensat(AT_FDCWD, path("src/sub/b").c_str(), old_times, 0);
  utimensat(AT_FDCWD, path("src/sub").c_str(), old_times, 0);

  const StageReport report = run_stage({entry("src", "out/dst")}, "out", StageOptions{});
  ASSERT_TRUE(report.ok()) << report.to_json().dump();
  EXPECT_EQ(report.entries[0].files, 3u);
  EXPECT_EQ(report.entries[0].files_copied, 3u);
  EXPECT_EQ(read("out/dst/a"), read("src/a"));
  EXPECT_EQ(read("out/dst/sub/b"), "bee");
  EXPECT_EQ(read("out/dst/sparse"), read("src/sparse"));
  EXPECT_EQ(fs::read_symlink(path("out/dst/link")), "a");
  struct stat st {};
  ASSERT_EQ(stat(path("out/dst/sub/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  ASSERT_EQ(stat(path("out/dst/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  ASSERT_EQ(stat(path("out/dst/sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 << 20);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the holes were written out";
  EXPECT_EQ(report.entries[0].bytes_written, (3u << 20) + 3 + 4096);
}

TEST_F(StageCopy, InterruptedCopyResumesFromItsPart) {
  const std::string data = random_bytes(10 << 20);
  write("big", data);
  StageOptions stop_soon;
  int polls = 0;
  stop_soon.should_stop = [&polls] { return ++polls > 8; };  // a few MiB in
  const StageReport first = run_stage({entry("big", "copy")}, "in", stop_soon);
  EXPECT_TRUE(first.interrupted);
  EXPECT_FALSE(first.ok());
  EXPECT_FALSE(fs::exists(path("copy")));
  ASSERT_TRUE(fs::exists(path("copy.tierfs-part")));
  const uint64_t kept = fs::file_size(path("copy.tierfs-part"));
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, data.size());

  const StageReport second = run_stage({entry("big", "copy")}, "in", StageOptions{});
  ASSERT_TRUE(second.ok()) << second.to_json().dump();
  EXPECT_EQ(second.entries[0].files_resumed, 1u);
  EXPECT_LT(second.entries[0].bytes_written, data.size());
  EXPECT_EQ(second.entries[0].xxh3, xxh3_hex(XXH3_64bits(data.data(), data.size())));
  EXPECT_EQ(read("copy"), data);
  EXPECT_FALSE(fs::exists(path("copy.tierfs-part")));
}

TEST_F(StageCopy, PartOfAnotherSourceStartsOver) {
  const std::string data = random_bytes(3 << 20);
  write("src", data);
  write("dst.tierfs-part", random_bytes(2 << 20, 9));
  const char* stale = "1:2.000000003";
  ASSERT_EQ(setxattr(path("dst.tierfs-part").c_str(), "user.tierfs.stage", stale, strlen(stale), 0),
            0);
  const StageReport report = run_stage({entry("src", "dst")}, "in", StageOptions{});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report.entries[0].files_copied, 1u);
  EXPECT_EQ(report.entries[0].files_resumed, 0u);
  EXPECT_EQ(read("dst"), data);
}

TEST_F(StageCopy, ChecksumMismatchFailsAndLeavesNoCopy) {
  const std::string data = random_bytes(1 << 20);
  write("src", data);
  StageEntry e = entry("src", "dst");
  e.xxh3 = XXH3_64bits(data.data(), data.size()) ^ 1;
  const StageReport report = run_stage({e}, "in", StageOptions{});
  EXPECT_FALSE(report.ok());
  ASSERT_EQ(report.entries[0].errors.size(), 1u);
  EXPECT_NE(report.entries[0].errors[0].find("the manifest says"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("dst")));
  EXPECT_FALSE(fs::exists(path("dst.tierfs-part")));

  e.xxh3 = XXH3_64bits(data.data(), data.size());
  EXPECT_TRUE(run_stage({e}, "in", StageOptions{}).ok());
  EXPECT_EQ(read("dst"), data);
}

TEST_F(StageCopy, CompleteDestinationIsSkippedAndAMissingSourceNamed) {
  write("src/f", "x");
  ASSERT_TRUE(run_stage({entry("src", "dst")}, "in", StageOptions{}).ok());
  const StageReport again = run_stage({entry("src", "dst")}, "in", StageOptions{});
  EXPECT_EQ(again.entries[0].files_skipped, 1u);
  EXPECT_EQ(again.entries[0].bytes_written, 0u);

  const StageReport missing = run_stage({entry("nothing", "dst2")}, "in", StageOptions{});
  ASSERT_EQ(missing.entries[0].errors.size(), 1u);
  EXPECT_EQ(missing.entries[0].errors[0], path("nothing") + ": No such file or directory");
}

TEST_F(StageCopy, ManyFilesInParallelThreads) {
  for (int i = 0; i < 200; ++i)
    write("src/d" + std::to_string(i % 7) + "/f" + std::to_string(i), random_bytes(1000 + i, i));
  StageOptions options;
  options.threads = 4;
  const StageReport report = run_stage({entry("src", "dst")}, "in", options);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report.entries[0].files_copied, 200u);
  for (int i = 0; i < 200; i += 13) {
    const std::string name = "d" + std::to_string(i % 7) + "/f" + std::to_string(i);
    EXPECT_EQ(read("dst/" + name), read("src/" + name));
  }
}

}  // namespace
}  // namespace tierfs::jobs
