// POSIX rules on a real mount that test_namespace.cc and test_files.cc leave
// out: which operations move atime/mtime/ctime of a file and of its parent
// directory, who may chmod/chown/utimens, trusted vs user xattrs for a
// non-root user, default_permissions (sticky directories, search permission,
// read-only files), allow_other off and on, O_EXCL on a dangling symlink and
// O_TRUNC timestamps.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>

#include "tests/integration/mount_fixture.h"

namespace tierfs::testing {
namespace {

using PosixRulesTest = MountTest;

constexpr uid_t kNobody = 65534;

// Runs `body` as uid/gid 65534 in a forked child; returns its exit status
// (0: the body's expectation held; 99: the identity switch failed).
int as_nobody(const std::function<int()>& body) {
  pid_t child = fork();
  if (child == 0) {
    if (setresgid(kNobody, kNobody, kNobody) != 0 || setresuid(kNobody, kNobody, kNobody) != 0)
      _exit(99);
    _exit(body());
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

// 0 when `rc` is a failure with errno `expected`, else 1.
int failed_with(int rc, int expected) {
  return rc < 0 && errno == expected ? 0 : 1;
}

class OtherUserTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    TestConfig config = small_config();
    config.allow_other = true;
    ASSERT_TRUE(remount(config)) << mount_.failure();
    ASSERT_EQ(chmod(mount_.dir().c_str(), 0755), 0);
  }
};

TEST_F(PosixRulesTest, ReadMovesAtimeOnceAfterAChangeAsRelatimeDoes) {
  write_all(mount_.path("f"), "data");
  set_past_times(mount_.path("f"));
  struct stat written = stat_of(mount_.path("f"));
  ASSERT_EQ(read_all(mount_.path("f")), "data");
  struct stat first_read = stat_of(mount_.path("f"));
  EXPECT_TRUE(later(first_read.st_atim, written.st_atim)) << "a read after a write moves atime";
  EXPECT_TRUE(same(first_read.st_mtim, written.st_mtim)) << "a read leaves mtime";
  EXPECT_TRUE(same(first_read.st_ctim, written.st_ctim)) << "a read leaves ctime";
  ASSERT_EQ(read_all(mount_.path("f")), "data");
  EXPECT_TRUE(same(stat_of(mount_.path("f")).st_atim, first_read.st_atim))
      << "relatime: a second read without a change in between keeps atime";
}

TEST_F(PosixRulesTest, TruncateMovesMtimeAndCtime) {
  write_all(mount_.path("f"), pattern(10000, 1));
  set_past_times(mount_.path("f"));
  struct stat before = stat_of(mount_.path("f"));
  ASSERT_EQ(truncate(mount_.path("f").c_str(), 100), 0);
  struct stat after = stat_of(mount_.path("f"));
  EXPECT_EQ(after.st_size, 100);
  EXPECT_TRUE(later(after.st_mtim, before.st_mtim));
  EXPECT_TRUE(later(after.st_ctim, before.st_ctim));
  EXPECT_TRUE(same(after.st_atim, before.st_atim)) << "truncate does not read";
}

TEST_F(PosixRulesTest, OpenWithTruncMovesMtimeAndCtimeEvenOfAnEmptyFile) {
  write_all(mount_.path("f"), "");
  set_past_times(mount_.path("f"));
  struct stat before = stat_of(mount_.path("f"));
  int fd = open(mount_.path("f").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0) << strerror(errno);
  close(fd);
  struct stat after = stat_of(mount_.path("f"));
  EXPECT_TRUE(later(after.st_mtim, before.st_mtim));
  EXPECT_TRUE(later(after.st_ctim, before.st_ctim));
}

TEST_F(PosixRulesTest, CreateAndUnlinkMoveTheParentsMtimeAndCtime) {
  ASSERT_EQ(mkdir(mount_.path("d").c_str(), 0755), 0);
  set_past_times(mount_.path("d"));
  struct stat empty = stat_of(mount_.path("d"));
  write_all(mount_.path("d/f"), "x");
  struct stat created = stat_of(mount_.path("d"));
  EXPECT_TRUE(later(created.st_mtim, empty.st_mtim)) << "create";
  EXPECT_TRUE(later(created.st_ctim, empty.st_ctim)) << "create";
  set_past_times(mount_.path("d"));
  created = stat_of(mount_.path("d"));
  ASSERT_EQ(unlink(mount_.path("d/f").c_str()), 0);
  struct stat removed = stat_of(mount_.path("d"));
  EXPECT_TRUE(later(removed.st_mtim, created.st_mtim)) << "unlink";
  EXPECT_TRUE(later(removed.st_ctim, created.st_ctim)) << "unlink";
}

TEST_F(PosixRulesTest, LinkAndUnlinkMoveTheFilesCtimeNotItsMtime) {
  write_all(mount_.path("f"), "x");
  set_past_times(mount_.path("f"));
  struct stat before = stat_of(mount_.path("f"));
  ASSERT_EQ(link(mount_.path("f").c_str(), mount_.path("g").c_str()), 0);
  struct stat linked = stat_of(mount_.path("f"));
  EXPECT_TRUE(later(linked.st_ctim, before.st_ctim)) << "link changes the link count";
  EXPECT_TRUE(same(linked.st_mtim, before.st_mtim));
  ASSERT_EQ(unlink(mount_.path("g").c_str()), 0);
  struct stat unlinked = stat_of(mount_.path("f"));
  EXPECT_TRUE(later(unlinked.st_ctim, linked.st_ctim)) << "unlink changes the link count";
  EXPECT_TRUE(same(unlinked.st_mtim, before.st_mtim));
}

TEST_F(PosixRulesTest, RenameMovesBothParentsTimesAndKeepsTheFilesMtime) {
  ASSERT_EQ(mkdir(mount_.path("from").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(mount_.path("to").c_str(), 0755), 0);
  write_all(mount_.path("from/f"), "x");
  for (const char* name : {"from", "to", "from/f"}) set_past_times(mount_.path(name));
  struct stat from = stat_of(mount_.path("from"));
  struct stat to = stat_of(mount_.path("to"));
  struct stat file = stat_of(mount_.path("from/f"));
  ASSERT_EQ(rename(mount_.path("from/f").c_str(), mount_.path("to/f").c_str()), 0);
  EXPECT_TRUE(later(stat_of(mount_.path("from")).st_mtim, from.st_mtim));
  EXPECT_TRUE(later(stat_of(mount_.path("to")).st_mtim, to.st_mtim));
  EXPECT_TRUE(later(stat_of(mount_.path("to")).st_ctim, to.st_ctim));
  EXPECT_TRUE(same(stat_of(mount_.path("to/f")).st_mtim, file.st_mtim));
}

TEST_F(PosixRulesTest, RenameNoReplaceOntoAFreeNameMoves) {
  write_all(mount_.path("a"), "A");
  ASSERT_EQ(renameat2(AT_FDCWD, mount_.path("a").c_str(), AT_FDCWD, mount_.path("b").c_str(),
                      RENAME_NOREPLACE),
            0)
      << strerror(errno);
  EXPECT_EQ(read_all(mount_.path("b")), "A");
  EXPECT_NE(access(mount_.path("a").c_str(), F_OK), 0);
}

TEST_F(PosixRulesTest, RenameExchangeOfTwoFilesSwapsTheirContentsAndInodes) {
  write_all(mount_.path("a"), "AAAA");
  write_all(mount_.path("b"), "BB");
  ino_t a = stat_of(mount_.path("a")).st_ino, b = stat_of(mount_.path("b")).st_ino;
  ASSERT_EQ(renameat2(AT_FDCWD, mount_.path("a").c_str(), AT_FDCWD, mount_.path("b").c_str(),
                      RENAME_EXCHANGE),
            0)
      << strerror(errno);
  EXPECT_EQ(read_all(mount_.path("a")), "BB");
  EXPECT_EQ(read_all(mount_.path("b")), "AAAA");
  EXPECT_EQ(stat_of(mount_.path("a")).st_ino, b);
  EXPECT_EQ(stat_of(mount_.path("b")).st_ino, a);
  errno = 0;
  EXPECT_NE(renameat2(AT_FDCWD, mount_.path("a").c_str(), AT_FDCWD, mount_.path("b").c_str(),
                      RENAME_EXCHANGE | RENAME_NOREPLACE),
            0)
      << "the two flags exclude each other";
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(PosixRulesTest, RenameOntoAHardLinkOfItselfChangesNothing) {
  write_all(mount_.path("a"), "same");
  ASSERT_EQ(link(mount_.path("a").c_str(), mount_.path("b").c_str()), 0);
  ASSERT_EQ(rename(mount_.path("a").c_str(), mount_.path("b").c_str()), 0);
  // POSIX: when both names are links to the same file, rename does nothing.
  EXPECT_EQ(read_all(mount_.path("a")), "same");
  EXPECT_EQ(read_all(mount_.path("b")), "same");
  EXPECT_EQ(stat_of(mount_.path("a")).st_nlink, 2u);
}

TEST_F(PosixRulesTest, RenameBetweenFileAndDirectoryIsRefused) {
  write_all(mount_.path("f"), "x");
  ASSERT_EQ(mkdir(mount_.path("d").c_str(), 0755), 0);
  errno = 0;
  EXPECT_NE(rename(mount_.path("f").c_str(), mount_.path("d").c_str()), 0);
  EXPECT_EQ(errno, EISDIR);
  errno = 0;
  EXPECT_NE(rename(mount_.path("d").c_str(), mount_.path("f").c_str()), 0);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(read_all(mount_.path("f")), "x");
}

TEST_F(PosixRulesTest, ExclusiveCreateOnADanglingSymlinkFails) {
  ASSERT_EQ(symlink("target", mount_.path("ln").c_str()), 0);
  errno = 0;
  EXPECT_LT(open(mount_.path("ln").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644), 0);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_NE(access(mount_.path("target").c_str(), F_OK), 0) << "O_EXCL does not follow the link";
  // Without O_EXCL the link is followed and its target created.
  int fd = open(mount_.path("ln").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  close(fd);
  EXPECT_EQ(access(mount_.path("target").c_str(), F_OK), 0);
}

TEST_F(PosixRulesTest, WithoutAllowOtherOtherUsersCannotEnterTheMount) {
  std::string dir = mount_.dir();
  EXPECT_EQ(as_nobody([&] {
              struct stat st {};
              return failed_with(stat(dir.c_str(), &st), EACCES);
            }),
            0)
      << "allow_other is off by default: uid 65534 must be kept out";
  TestConfig config = small_config();
  config.allow_other = true;
  ASSERT_TRUE(remount(config)) << mount_.failure();
  dir = mount_.dir();
  EXPECT_EQ(as_nobody([&] {
              struct stat st {};
              return stat(dir.c_str(), &st) == 0 ? 0 : 1;
            }),
            0)
      << "with allow_other = true uid 65534 may enter";
}

TEST_F(OtherUserTest, ChmodAndChownByANonOwnerAreRefused) {
  write_all(mount_.path("f"), "x");
  ASSERT_EQ(chmod(mount_.path("f").c_str(), 0666), 0);
  std::string f = mount_.path("f");
  EXPECT_EQ(as_nobody([&] { return failed_with(chmod(f.c_str(), 0777), EPERM); }), 0);
  EXPECT_EQ(as_nobody([&] { return failed_with(chown(f.c_str(), kNobody, kNobody), EPERM); }), 0);
  EXPECT_EQ(stat_of(f).st_mode & 07777, 0666u);
  EXPECT_EQ(stat_of(f).st_uid, 0u);
  // The owner may chmod, but may not give the file away.
  ASSERT_EQ(chown(f.c_str(), kNobody, kNobody), 0);
  EXPECT_EQ(as_nobody([&] { return chmod(f.c_str(), 0600) == 0 ? 0 : 1; }), 0);
  EXPECT_EQ(as_nobody([&] { return failed_with(chown(f.c_str(), 0, kNobody), EPERM); }), 0);
  EXPECT_EQ(stat_of(f).st_mode & 07777, 0600u);
}

TEST_F(PosixRulesTest, ChownClearsSetuidAndGroupExecutableSetgid) {
  write_all(mount_.path("f"), "x");
  ASSERT_EQ(chmod(mount_.path("f").c_str(), 06755), 0);
  ASSERT_EQ(chown(mount_.path("f").c_str(), 1234, 5678), 0);
  EXPECT_EQ(stat_of(mount_.path("f")).st_mode & 07777, 0755u)
      << "a change of owner drops setuid, and setgid on a group-executable file";
}

TEST_F(OtherUserTest, ChmodByAnOwnerOutsideTheGroupDropsSetgid) {
  write_all(mount_.path("f"), "x");
  ASSERT_EQ(chown(mount_.path("f").c_str(), kNobody, 0), 0);  // group root: nobody is not in it
  std::string f = mount_.path("f");
  EXPECT_EQ(as_nobody([&] { return chmod(f.c_str(), 02755) == 0 ? 0 : 1; }), 0);
  EXPECT_EQ(stat_of(f).st_mode & 07777, 0755u);
}

TEST_F(OtherUserTest, UtimensToNowNeedsWriteAccessExplicitTimesNeedOwnership) {
  write_all(mount_.path("shared"), "x");
  ASSERT_EQ(chmod(mount_.path("shared").c_str(), 0666), 0);
  write_all(mount_.path("readonly"), "x");
  ASSERT_EQ(chmod(mount_.path("readonly").c_str(), 0644), 0);
  std::string shared = mount_.path("shared"), readonly = mount_.path("readonly");
  EXPECT_EQ(as_nobody([&] { return utimensat(AT_FDCWD, shared.c_str(), nullptr, 0) == 0 ? 0 : 1; }),
            0)
      << "write permission suffices to set both times to now";
  EXPECT_EQ(as_nobody([&] {
              return failed_with(utimensat(AT_FDCWD, readonly.c_str(), nullptr, 0), EACCES);
            }),
            0);
  EXPECT_EQ(as_nobody([&] {
              timespec times[2] = {{1000, 0}, {2000, 0}};
              return failed_with(utimensat(AT_FDCWD, shared.c_str(), times, 0), EPERM);
            }),
            0)
      << "explicit times need ownership";
  EXPECT_NE(stat_of(shared).st_mtim.tv_sec, 2000);
}

TEST_F(OtherUserTest, TrustedXattrsAreHiddenFromUnprivilegedUsers) {
  write_all(mount_.path("f"), "x");
  ASSERT_EQ(chmod(mount_.path("f").c_str(), 0666), 0);
  std::string f = mount_.path("f");
  ASSERT_EQ(setxattr(f.c_str(), "trusted.secret", "s", 1, 0), 0) << strerror(errno);
  ASSERT_EQ(setxattr(f.c_str(), "user.note", "n", 1, 0), 0) << strerror(errno);
  EXPECT_EQ(as_nobody([&] {
              char buf[8];
              return failed_with(static_cast<int>(getxattr(f.c_str(), "trusted.secret", buf, 8)),
                                 ENODATA);
            }),
            0);
  EXPECT_EQ(
      as_nobody([&] { return failed_with(setxattr(f.c_str(), "trusted.mine", "m", 1, 0), EPERM); }),
      0);
  EXPECT_EQ(as_nobody([&] {
              char buf[8];
              return getxattr(f.c_str(), "user.note", buf, 8) == 1 && buf[0] == 'n' ? 0 : 1;
            }),
            0)
      << "user xattrs are readable by anyone who may read the file";
  EXPECT_EQ(getxattr_string(f, "trusted.secret"), "s") << "root still sees it";
}

TEST_F(OtherUserTest, UserXattrsNeedWritePermissionToChange) {
  write_all(mount_.path("f"), "x");
  ASSERT_EQ(chmod(mount_.path("f").c_str(), 0644), 0);
  ASSERT_EQ(setxattr(mount_.path("f").c_str(), "user.note", "n", 1, 0), 0);
  std::string f = mount_.path("f");
  EXPECT_EQ(
      as_nobody([&] { return failed_with(setxattr(f.c_str(), "user.x", "1", 1, 0), EACCES); }), 0);
  EXPECT_EQ(as_nobody([&] { return failed_with(removexattr(f.c_str(), "user.note"), EACCES); }), 0);
  EXPECT_EQ(getxattr_string(f, "user.note"), "n");
}

TEST_F(OtherUserTest, StickyDirectoryProtectsOtherUsersFiles) {
  ASSERT_EQ(mkdir(mount_.path("tmp").c_str(), 01777), 0);
  ASSERT_EQ(chmod(mount_.path("tmp").c_str(), 01777), 0);
  write_all(mount_.path("tmp/roots"), "r");
  std::string roots = mount_.path("tmp/roots"), mine = mount_.path("tmp/mine");
  EXPECT_EQ(as_nobody([&] {
              int fd = open(mine.c_str(), O_WRONLY | O_CREAT, 0644);
              if (fd < 0) return 2;
              close(fd);
              if (failed_with(unlink(roots.c_str()), EPERM) != 0) return 3;
              return unlink(mine.c_str()) == 0 ? 0 : 4;
            }),
            0)
      << "in a sticky directory others may create and remove their own files only";
  EXPECT_EQ(read_all(roots), "r");
}

TEST_F(OtherUserTest, DirectoryWithoutSearchPermissionHidesItsFiles) {
  ASSERT_EQ(mkdir(mount_.path("closed").c_str(), 0700), 0);
  write_all(mount_.path("closed/f"), "x");
  ASSERT_EQ(chmod(mount_.path("closed/f").c_str(), 0666), 0);
  std::string f = mount_.path("closed/f");
  EXPECT_EQ(as_nobody([&] { return failed_with(open(f.c_str(), O_RDONLY), EACCES); }), 0);
  ASSERT_EQ(chmod(mount_.path("closed").c_str(), 0711), 0);
  EXPECT_EQ(as_nobody([&] {
              int fd = open(f.c_str(), O_RDONLY);
              return fd >= 0 ? 0 : 1;
            }),
            0)
      << "search permission alone reaches a known name";
}

TEST_F(OtherUserTest, ReadOnlyFileRefusesWriteAndTruncByOthers) {
  write_all(mount_.path("f"), "keep");
  ASSERT_EQ(chmod(mount_.path("f").c_str(), 0644), 0);
  std::string f = mount_.path("f");
  EXPECT_EQ(as_nobody([&] { return failed_with(open(f.c_str(), O_WRONLY), EACCES); }), 0);
  EXPECT_EQ(as_nobody([&] { return failed_with(open(f.c_str(), O_RDONLY | O_TRUNC), EACCES); }), 0);
  EXPECT_EQ(as_nobody([&] { return failed_with(truncate(f.c_str(), 0), EACCES); }), 0);
  EXPECT_EQ(read_all(f), "keep");
}

TEST_F(OtherUserTest, NewFilesBelongToTheCreatorAndHonourTheUmask) {
  ASSERT_EQ(mkdir(mount_.path("open").c_str(), 0777), 0);
  ASSERT_EQ(chmod(mount_.path("open").c_str(), 0777), 0);
  std::string f = mount_.path("open/f"), d = mount_.path("open/d");
  EXPECT_EQ(as_nobody([&] {
              umask(027);
              int fd = open(f.c_str(), O_WRONLY | O_CREAT, 0666);
              if (fd < 0) return 1;
              close(fd);
              return mkdir(d.c_str(), 0777) == 0 ? 0 : 2;
            }),
            0);
  struct stat file = stat_of(f), dir = stat_of(d);
  EXPECT_EQ(file.st_uid, kNobody);
  EXPECT_EQ(file.st_gid, kNobody);
  EXPECT_EQ(file.st_mode & 07777, 0640u);
  EXPECT_EQ(dir.st_uid, kNobody);
  EXPECT_EQ(dir.st_mode & 07777, 0750u);
}

}  // namespace
}  // namespace tierfs::testing
