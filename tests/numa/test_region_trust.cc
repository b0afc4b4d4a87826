// The trust and exclusivity rules of region backing objects (region_trust.h):
// owner, mode and type of existing files, symlinks another user could plant,
// where files are created, one lock per region, unpredictable shm names.
// The cases that need another owner chown to nobody (65534) and need root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "numa/region.h"
#include "numa/region_claim.h"
#include "numa/region_trust.h"
#include "tests/support/privileged.h"

namespace {

namespace fs = std::filesystem;
using namespace tierfs::numa;
constexpr uid_t kNobody = 65534;

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/tierfs-trust-XXXXXX";
    path_ = mkdtemp(templ);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A region file as tierfs leaves one (signed, numa/region_claim.h): these
// tests are about the trust rules, which come first.
void make_file(const std::string& path, mode_t mode, uint64_t bytes = 1 << 20) {
  { std::ofstream(path).put('x'); }
  fs::resize_file(path, bytes);
  ASSERT_EQ(
      setxattr(path.c_str(), kRegionXattr, kRegionXattrValue, std::strlen(kRegionXattrValue), 0),
      0);
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

std::string open_error(const std::string& path, bool create = false) {
  try {
    RegionOptions options{.size_bytes = 1 << 20, .create = create};
    auto region = Region::open(parse_region_spec("file:" + path), options);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// open_error in a child process (another mount), its message through a pipe.
std::string error_in_another_process(const std::string& path) {
  int fds[2];
  if (pipe(fds) != 0) return "<pipe failed>";
  const pid_t child = fork();
  if (child == 0) {
    const std::string error = open_error(path);
    (void)!write(fds[1], error.data(), error.size());
    _exit(0);
  }
  close(fds[1]);
  std::string error;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;)
    error.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(child, nullptr, 0);
  return error;
}

TEST(RegionTrust, FileOfAnotherUserIsRefused) {
  TIERFS_REQUIRE(tierfs::testing::missing_root());
  TempDir dir;
  make_file(dir / "f", 0600);
  ASSERT_EQ(chown((dir / "f").c_str(), kNobody, kNobody), 0);
  EXPECT_NE(open_error(dir / "f").find("is owned by uid 65534, not by root or the mounting user"),
            std::string::npos)
      << open_error(dir / "f");
}

TEST(RegionTrust, FileWritableByOthersIsRefused) {
  TempDir dir;
  make_file(dir / "f", 0666);
  EXPECT_NE(open_error(dir / "f").find("has mode 0666; a region file must not be writable"),
            std::string::npos)
      << open_error(dir / "f");
}

TEST(RegionTrust, NotAFileIsRefused) {
  EXPECT_NE(open_error("/dev/null").find("not a regular file or block device"), std::string::npos)
      << open_error("/dev/null");
}

TEST(RegionTrust, SymlinkInADirectoryOthersCanWriteIsRefused) {
  TempDir dir;
  make_file(dir / "target", 0600);
  fs::create_directory(dir / "open");
  ASSERT_EQ(chmod((dir / "open").c_str(), 0777), 0);
  fs::create_symlink(dir / "target", dir / "open/link");
  EXPECT_NE(open_error(dir / "open/link")
                .find("is a symlink in a directory that other users can "
                      "write"),
            std::string::npos)
      << open_error(dir / "open/link");
  // An intermediate component counts as much as the last one.
  fs::create_directory_symlink(dir.path(), dir / "open/dirlink");
  EXPECT_NE(open_error(dir / "open/dirlink/target").find("open/dirlink: is a symlink"),
            std::string::npos)
      << open_error(dir / "open/dirlink/target");
  EXPECT_EQ(fs::file_size(dir / "target"), 1u << 20) << "the target was not touched";
}

TEST(RegionTrust, SymlinkInATrustedDirectoryIsFollowed) {
  TempDir dir;
  make_file(dir / "target", 0600);
  fs::create_symlink("target", dir / "link");
  EXPECT_EQ(open_error(dir / "link"), "");
}

TEST(RegionTrust, SymlinkOfAnotherUserInAStickyDirectoryIsRefused) {
  TIERFS_REQUIRE(tierfs::testing::missing_root());
  TempDir dir;
  make_file(dir / "target", 0600);
  fs::create_directory(dir / "sticky");
  ASSERT_EQ(chmod((dir / "sticky").c_str(), 01777), 0);
  fs::create_symlink(dir / "target", dir / "sticky/link");
  ASSERT_EQ(lchown((dir / "sticky/link").c_str(), kNobody, kNobody), 0);
  EXPECT_NE(open_error(dir / "sticky/link").find("is a symlink"), std::string::npos);
}

TEST(RegionTrust, CreatesOnlyInDirectoriesNobodyElseCanWrite) {
  TIERFS_REQUIRE(tierfs::testing::missing_root());
  TempDir dir;
  fs::create_directory(dir / "open");
  ASSERT_EQ(chmod((dir / "open").c_str(), 0777), 0);
  EXPECT_NE(open_error(dir / "open/f", true).find("writable by group or others and not sticky"),
            std::string::npos)
      << open_error(dir / "open/f", true);
  fs::create_directory(dir / "theirs");
  ASSERT_EQ(chown((dir / "theirs").c_str(), kNobody, kNobody), 0);
  EXPECT_NE(open_error(dir / "theirs/f", true).find("directory is owned by uid 65534"),
            std::string::npos)
      << open_error(dir / "theirs/f", true);
  EXPECT_FALSE(fs::exists(dir / "open/f"));
  EXPECT_FALSE(fs::exists(dir / "theirs/f"));
  // Sticky and owned by root (or the mounter), as /tmp: the O_EXCL create is safe.
  fs::create_directory(dir / "sticky");
  ASSERT_EQ(chmod((dir / "sticky").c_str(), 01777), 0);
  EXPECT_EQ(open_error(dir / "sticky/f", true), "");
}

TEST(RegionTrust, CreatedFileIsPrivate) {
  TempDir dir;
  RegionOptions options{.size_bytes = 1 << 20, .create = true};
  auto region = Region::open(parse_region_spec("file:" + (dir / "f")), options);
  struct stat st {};
  ASSERT_EQ(stat((dir / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(RegionTrust, ARegionFileIsLockedForTheLifeOfTheRegion) {
  TempDir dir;
  make_file(dir / "f", 0600);
  RegionOptions options{.size_bytes = 1 << 20};
  auto region = Region::open(parse_region_spec("file:" + (dir / "f")), options);
  const std::string error = error_in_another_process(dir / "f");
  EXPECT_NE(error.find("in use by another mount: held by pid " + std::to_string(getpid())),
            std::string::npos)
      << error;
  // Another tier of this same mount (process) may carve the file; validation keeps the bytes apart.
  EXPECT_EQ(open_error(dir / "f"), "");
  region.reset();
  EXPECT_EQ(error_in_another_process(dir / "f"), "");
}

TEST(RegionTrust, CheckMatchesOpenWithoutCreating) {
  TempDir dir;
  EXPECT_FALSE(check_trusted(dir / "f", BackingKind::file_or_block, true, 1 << 20).exists);
  EXPECT_FALSE(fs::exists(dir / "f"));
  // 8191 PiB: no file system here takes it; check-config must say so, as mount would.
  EXPECT_THROW(check_trusted(dir / "f", BackingKind::file_or_block, true, 8191ull << 50),
               std::runtime_error);
  EXPECT_THROW(check_trusted(dir / "missing/f", BackingKind::file_or_block, true, 1),
               std::runtime_error);
}

TEST(RegionTrust, SharedMemoryNamesAreUnpredictable) {
  const std::string a = unpredictable_shm_name();
  const std::string b = unpredictable_shm_name();
  EXPECT_NE(a, b);
  const std::string prefix = "/tierfs." + std::to_string(geteuid()) + ".";
  ASSERT_EQ(a.rfind(prefix, 0), 0u) << a;
  EXPECT_EQ(a.size(), prefix.size() + 32) << "128 random bits";
}

}  // namespace
