// Set-user-ID and set-group-ID bits after a write, truncate, fallocate,
// open(O_TRUNC) or chown by a user who is not the owner or not in the file's
// group, on every cache mode, each checked against a tmpfs mounted by the
// test: the mode tierfs leaves must be the kernel's (inode_should_drop_suidgid,
// setattr_should_drop_sgid). A setgid file that a writer outside its group
// keeps is a privilege escalation on a shared mount.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

constexpr uid_t kNobody = 65534;

// Runs `body` in a child as uid 65534 with primary group `gid` and no
// supplementary groups (root's would include group 0); its exit status.
int as_nobody(gid_t gid, const std::function<int()>& body) {
  pid_t child = fork();
  if (child == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(kNobody, kNobody, kNobody) != 0)
      _exit(99);
    _exit(body());
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

// What the non-owner (or the owner, for chgrp) does to the file.
enum class Change {
  write,
  ftruncate,
  truncate,
  fallocate,
  open_trunc,
  open_rdonly_trunc,
  chgrp,
  chown_nothing
};

const char* name_of(Change change) {
  switch (change) {
    case Change::write:
      return "write";
    case Change::ftruncate:
      return "ftruncate";
    case Change::truncate:
      return "truncate";
    case Change::fallocate:
      return "fallocate";
    case Change::open_trunc:
      return "open(O_TRUNC)";
    case Change::open_rdonly_trunc:
      return "open(O_RDONLY|O_TRUNC)";
    case Change::chgrp:
      return "chgrp";
    case Change::chown_nothing:
      return "chown(-1, -1)";
  }
  return "?";
}

int apply(Change change, const std::string& path) {
  if (change == Change::truncate) return truncate(path.c_str(), 10) == 0 ? 0 : 2;
  if (change == Change::chgrp) return chown(path.c_str(), -1, kNobody) == 0 ? 0 : 2;
  if (change == Change::chown_nothing) return chown(path.c_str(), -1, -1) == 0 ? 0 : 2;
  // Linux truncates on O_RDONLY|O_TRUNC too, given write permission.
  const int flags = change == Change::open_trunc          ? O_WRONLY | O_TRUNC
                    : change == Change::open_rdonly_trunc ? O_RDONLY | O_TRUNC
                                                          : O_WRONLY;
  int fd = open(path.c_str(), flags);
  if (fd < 0) return 3;
  int rc = 0;
  if (change == Change::write) rc = pwrite(fd, "written", 7, 100) == 7 ? 0 : 4;
  if (change == Change::ftruncate) rc = ftruncate(fd, 10) == 0 ? 0 : 4;
  if (change == Change::fallocate) rc = fallocate(fd, 0, 0, 65536) == 0 ? 0 : 4;
  if (close(fd) != 0) rc = 5;
  return rc;
}

// One case: a file owned by `owner`:`group` with `mode`, changed by uid 65534
// (primary group `caller_gid`) or by root; the mode it is left with (or -1).
struct Case {
  mode_t mode;
  uid_t owner;
  gid_t group;
  Change change;
  bool by_root = false;
  gid_t caller_gid = kNobody;
};

int mode_after(const std::string& dir, const std::string& name, const Case& c) {
  const std::string path = dir + "/" + name;
  write_all(path, std::string(8192, 'x'));
  if (chown(path.c_str(), c.owner, c.group) != 0 || chmod(path.c_str(), c.mode) != 0) return -1;
  const int status = c.by_root ? apply(c.change, path)
                               : as_nobody(c.caller_gid, [&] { return apply(c.change, path); });
  if (status != 0) return -100 - status;
  // The mode alone, as `stat -c %a` and exec see it: the kernel refreshes
  // a cached mode only when it was told it changed.
  struct statx stx {};
  if (statx(AT_FDCWD, path.c_str(), 0, STATX_MODE, &stx) != 0) return -1;
  return static_cast<int>(stx.stx_mode & 07777);
}

class SetidTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    TestConfig config = small_config();
    config.cache = GetParam();
    config.allow_other = true;
    ASSERT_TRUE(mount_.start(config)) << mount_.failure();
    ASSERT_EQ(chmod(mount_.dir().c_str(), 0755), 0);
    ASSERT_TRUE(tmpfs_.mount("16m")) << "mount tmpfs: " << strerror(errno);
  }
  void TearDown() override { EXPECT_EQ(mount_.stop(), 0) << mount_.failure(); }

  // Runs `c` on tierfs and on tmpfs: both must leave `expected`.
  void check(const Case& c, int expected) {
    static int serial = 0;
    const std::string name = "f" + std::to_string(serial++);
    const int on_tmpfs = mode_after(tmpfs_.dir(), name, c);
    const int on_tierfs = mode_after(mount_.dir(), name, c);
    const std::string what = std::string(name_of(c.change)) + " by " +
                             (c.by_root ? "root" : "uid 65534") + " of a file of mode " +
                             to_octal(static_cast<int>(c.mode));
    EXPECT_EQ(to_octal(on_tmpfs), to_octal(expected)) << "tmpfs, " << what;
    EXPECT_EQ(to_octal(on_tierfs), to_octal(on_tmpfs)) << "cache=" << GetParam() << ", " << what;
  }
  static std::string to_octal(int mode) {
    if (mode < 0) return "error " + std::to_string(mode);
    char buf[16];
    snprintf(buf, sizeof buf, "%04o", mode);
    return buf;
  }

  Mount mount_;
  ReferenceTmpfs tmpfs_;
};

constexpr Change kModifications[] = {Change::write,      Change::ftruncate,
                                     Change::truncate,   Change::fallocate,
                                     Change::open_trunc, Change::open_rdonly_trunc};

TEST_P(SetidTest, ANonMemberDropsSetgidOnAFileThatIsNotGroupExecutable) {
  for (Change change : kModifications) check({02666, 0, 0, change}, 0666);
}

TEST_P(SetidTest, ANonOwnerDropsSetuidAndGroupExecutableSetgid) {
  for (Change change : kModifications) {
    check({04666, 0, 0, change}, 0666);
    check({06676, 0, kNobody, change}, 0676);  // in the group, but it is group-executable
  }
}

TEST_P(SetidTest, AGroupMemberKeepsSetgidOnAFileThatIsNotGroupExecutable) {
  for (Change change : kModifications) check({06666, 0, kNobody, change}, 02666);
}

TEST_P(SetidTest, RootKeepsBothBitsOnWriteAndTruncate) {
  for (Change change : kModifications) check({06666, kNobody, kNobody, change, true}, 06666);
}

TEST_P(SetidTest, ChownDropsSetuidAlwaysAndSetgidOutsideTheOldGroup) {
  // The owner moves the file into its own group: it was not in the old one.
  check({06666, kNobody, 0, Change::chgrp}, 0666);
  check({06666, kNobody, kNobody, Change::chgrp}, 02666);  // already its group
  check({06676, kNobody, kNobody, Change::chgrp}, 0676);   // group-executable
}

// chown(-1, -1) changes no owner but is a chown: even root's drops setuid
// and a group-executable setgid (chown_common), as tmpfs does.
TEST_P(SetidTest, ChownWithoutAChangeDropsSetuidEvenForRoot) {
  check({06676, kNobody, kNobody, Change::chown_nothing, true}, 0676);
  check({06666, kNobody, kNobody, Change::chown_nothing, true}, 02666);
  check({06666, kNobody, kNobody, Change::chown_nothing}, 02666);  // the owner, in its group
}

TEST_P(SetidTest, FileCapabilitiesCannotBeSetSoNoneSurviveAWrite) {
  // security.* is not stored (fs_xattr.cc), so no file capability can be
  // given, nor kept past a write by another user.
  const std::string f = mount_.path("cap");
  write_all(f, "x");
  const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02};  // VFS_CAP_REVISION_2, no caps
  EXPECT_NE(setxattr(f.c_str(), "security.capability", cap, sizeof cap, 0), 0);
  char value[64];
  EXPECT_LT(getxattr(f.c_str(), "security.capability", value, sizeof value), 0);
}

INSTANTIATE_TEST_SUITE_P(CacheModes, SetidTest, ::testing::Values("none", "kernel"));

}  // namespace
}  // namespace tierfs::testing
