// Shared mmap on every cache mode, as applications use it: a read-only and a
// writable MAP_SHARED map checked against read()/write() both ways, and
// SQLite in WAL mode (its -shm file is a shared map) with a writer and
// concurrent reader processes. cache = "none" needs the kernel's
// FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6+), which the server asks for.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

// Empty when the kernel can map direct-I/O files shared, else the reason.
std::string missing_direct_io_mmap() {
  utsname u{};
  uname(&u);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  if (major > 6 || (major == 6 && minor >= 6)) return "";
  return std::string("needs Linux 6.6+ (FUSE_DIRECT_IO_ALLOW_MMAP), this is ") + u.release;
}

class MmapTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    if (std::string(GetParam()) == "none") TIERFS_REQUIRE(missing_direct_io_mmap());
    TestConfig config = small_config();
    config.cache = GetParam();
    ASSERT_TRUE(mount_.start(config)) << mount_.failure();
  }
  void TearDown() override { EXPECT_EQ(mount_.stop(), 0) << mount_.failure(); }
  Mount mount_;
};

std::string pread_all(int fd, size_t size) {
  std::string out(size, '\0');
  EXPECT_EQ(pread(fd, out.data(), size, 0), static_cast<ssize_t>(size));
  return out;
}

TEST_P(MmapTest, SharedReadOnlyMapMatchesReadAndSeesLaterWrites) {
  const size_t size = 3 * 4096 + 100;  // a partial last page reads as the file, then zeros
  std::string data = pattern(size, 31);
  write_all(mount_.path("ro"), data);
  int fd = open(mount_.path("ro").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* addr = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(addr, MAP_FAILED) << "cache=" << GetParam() << ": " << strerror(errno);
  const char* map = static_cast<const char*>(addr);
  EXPECT_TRUE(std::string(map, size) == pread_all(fd, size));
  EXPECT_TRUE(std::string(map, size) == data);
  // A write() through another descriptor shows in the map (one page cache).
  int wfd = open(mount_.path("ro").c_str(), O_WRONLY);
  ASSERT_GE(wfd, 0);
  ASSERT_EQ(pwrite(wfd, "written", 7, 4096), 7);
  close(wfd);
  EXPECT_EQ(std::string(map + 4096, 7), "written");
  munmap(addr, size);
  close(fd);
}

TEST_P(MmapTest, SharedWritableMapReachesReadAndTheServer) {
  const size_t size = 1 << 20;
  int fd = open(mount_.path("rw").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, size), 0);
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(addr, MAP_FAILED) << "cache=" << GetParam() << ": " << strerror(errno);
  std::string data = pattern(size, 32);
  memcpy(addr, data.data(), size);
  // Before msync: read() on the same file sees the map (the kernel flushes first).
  EXPECT_TRUE(pread_all(fd, size) == data);
  ASSERT_EQ(msync(addr, size, MS_SYNC), 0);
  munmap(addr, size);
  close(fd);
  // After unmap and close, a fresh reader gets the bytes from the server.
  EXPECT_TRUE(read_all(mount_.path("rw")) == data);
  EXPECT_EQ(stat_of(mount_.path("rw")).st_size, static_cast<off_t>(size));
}

void exec_or_fail(sqlite3* db, const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error ? error : "");
  sqlite3_free(error);
}

int64_t query_int(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) return -1;
  int64_t value = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  return value;
}

// A reader process: every snapshot it sees is consistent (each transaction
// inserts a row and adds its value to the total) and never goes backwards.
// Exit status 0 when all were, 1 otherwise.
int run_reader(const std::string& path, int rounds) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return 2;
  sqlite3_busy_timeout(db, 5000);
  int64_t last = 0;
  int status = 0;
  for (int i = 0; i < rounds && status == 0; ++i) {
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    int64_t rows = query_int(db, "SELECT count(*) FROM t");
    int64_t sum = query_int(db, "SELECT coalesce(sum(v), 0) FROM t");
    int64_t total = query_int(db, "SELECT total FROM meta");
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    if (rows < last || sum != total || rows < 0) status = 1;
    last = rows;
  }
  sqlite3_close(db);
  return status;
}

TEST_P(MmapTest, SqliteWalWithConcurrentReaders) {
  const std::string path = mount_.path("wal.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  EXPECT_EQ(query_int(db, "PRAGMA journal_mode=WAL") == -1, false);
  sqlite3_stmt* mode = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &mode, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(mode), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(mode, 0)), "wal");
  sqlite3_finalize(mode);
  exec_or_fail(db,
               "CREATE TABLE t(v INTEGER); CREATE TABLE meta(total INTEGER);"
               "INSERT INTO meta VALUES (0)");

  constexpr int readers = 3, transactions = 300;
  pid_t pids[readers];
  for (pid_t& pid : pids) {
    pid = fork();
    if (pid == 0) _exit(run_reader(path, 400));
  }
  for (int i = 1; i <= transactions; ++i) {
    std::string sql = "BEGIN; INSERT INTO t VALUES (" + std::to_string(i) +
                      "); UPDATE meta SET total = total + " + std::to_string(i) + "; COMMIT";
    exec_or_fail(db, sql.c_str());
  }
  for (pid_t pid : pids) {
    int status = -1;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "a reader saw an inconsistent or older snapshot, or could not open (status " << status
        << ")";
  }
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM t"), transactions);
  EXPECT_EQ(query_int(db, "SELECT total FROM meta"), transactions * (transactions + 1) / 2);
  exec_or_fail(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(db);
  // A fresh connection after the checkpoint reads everything from the main file.
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM t"), transactions);
  sqlite3_stmt* check = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &check, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
  sqlite3_finalize(check);
  sqlite3_close(db);
}

INSTANTIATE_TEST_SUITE_P(CacheModes, MmapTest, ::testing::Values("none", "kernel"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace tierfs::testing
