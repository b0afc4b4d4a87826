// drop_privilege (tierfs/server/privilege.h), each case in a forked child so
// that the test process keeps its own privilege: what stays (CAP_SYS_ADMIN
// and, for in-place moves, CAP_SYS_NICE permitted but effective in no
// thread; the BPF maps opened before), what goes (every other capability,
// exec, network sockets, new BPF objects), that a CapabilityWindow raises a
// kept capability in its own thread only and for its lifetime only, that a
// denied call fails with EPERM and the process lives on, that log mode
// denies nothing, and that a second thread already running is refused.
// Needs root.
#include <cap-ng.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <utility>

#include "tests/support/privileged.h"
#include "tierfs/server/privilege.h"

namespace {

using tierfs::SeccompMode;

// A fresh directory, never a mount point: umount2 on it fails with EPERM
// without CAP_SYS_ADMIN (may_mount is checked first) and EINVAL with it, so
// it shows whether the capability is effective without unmounting anything.
std::string plain_directory() {
  char path[] = "/tmp/tierfs-privilege-XXXXXX";
  return mkdtemp(path) != nullptr ? path : "/nonexistent";
}

// Runs body in a child; returns what it reported ("" = every check held).
std::string in_child(const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const std::string report = body();
    (void)!write(fds[1], report.data(), report.size());
    _exit(0);
  }
  close(fds[1]);
  std::string report;
  char chunk[256];
  ssize_t n;
  while ((n = read(fds[0], chunk, sizeof chunk)) > 0) report.append(chunk, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "child died (status " + std::to_string(status) + "): " + report;
  return report;
}

std::string errno_of(long rc) {
  return rc >= 0 ? "succeeded" : std::strerror(errno);
}

std::string proc_status() {
  std::ifstream in("/proc/self/status");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The value of "FIELD:\tVALUE" in a /proc status file.
std::string status_field(const char* path, const std::string& field) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":\t", 0) == 0) return line.substr(field.size() + 2);
  return "(missing)";
}

long create_array_map() {
  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 8;
  attr.max_entries = 4;
  return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
}

long update_map(long fd, uint32_t key, uint64_t value) {
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(fd);
  attr.key = reinterpret_cast<uint64_t>(&key);
  attr.value = reinterpret_cast<uint64_t>(&value);
  return syscall(SYS_bpf, BPF_MAP_UPDATE_ELEM, &attr, sizeof attr);
}

class Privilege : public ::testing::Test {
 protected:
  void SetUp() override { TIERFS_REQUIRE(tierfs::testing::missing_root()); }
};

constexpr const char* kNone = "0000000000000000";
constexpr const char* kSysAdmin = "0000000000200000";
constexpr const char* kSysAdminAndNice = "0000000000a00000";

TEST_F(Privilege, KeepsCapSysAdminPermittedOnlyAndDeniesWithEperm) {
  const std::string dir = plain_directory();
  const std::string report = in_child([&dir] {
    std::string out;
    if (std::string error = tierfs::drop_privilege(SeccompMode::enforce); !error.empty())
      return "drop_privilege: " + error;
    // prctl is off the list: read what /proc shows.
    const std::string sys_admin_only = kSysAdmin;
    const std::string none = kNone;
    for (const auto& [field, want] : {std::pair{"CapEff", none},
                                      {"CapPrm", sys_admin_only},
                                      {"CapInh", none},
                                      {"CapBnd", none},
                                      {"CapAmb", none}})
      if (std::string got = status_field("/proc/self/status", field); got != want)
        out += std::string(" ") + field + " " + got;
    const std::string status = proc_status();
    if (status.find("\nNoNewPrivs:\t1\n") == std::string::npos) out += " no_new_privs unset";
    if (status.find("\nSeccomp:\t2\n") == std::string::npos) out += " no seccomp filter";
    // Off the list: EPERM, and this process goes on (never a kill).
    const long inet = socket(AF_INET, SOCK_STREAM, 0);
    if (inet >= 0 || errno != EPERM) out += " socket(AF_INET): " + errno_of(inet);
    char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
    const long exec = execv("/bin/true", argv);
    if (errno != EPERM) out += " execv: " + errno_of(exec);
    const long map = create_array_map();
    if (map >= 0 || errno != EPERM) out += " BPF_MAP_CREATE: " + errno_of(map);
    // On the list: a local socket (syslog), files, threads.
    const long local = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (local < 0) out += " socket(AF_UNIX): " + errno_of(local);
    const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) out += std::string(" open: ") + std::strerror(errno);
    // Without a window, CAP_SYS_ADMIN is not effective: an unmount is refused.
    if (umount2(dir.c_str(), MNT_DETACH) == 0 || errno != EPERM)
      out += std::string(" umount2 outside a window: ") + std::strerror(errno);
    std::thread([&out, &none] {
      if (std::string got = status_field("/proc/thread-self/status", "CapEff"); got != none)
        out += " a thread started after the drop has CapEff " + got;
    }).join();
    return out;
  });
  EXPECT_EQ(report, "");
  rmdir(dir.c_str());
}

// A window raises the capability in the calling thread only, and only while
// it lasts: a thread running meanwhile sees none, and after it none is left.
TEST_F(Privilege, CapabilityWindowRaisesInItsThreadOnly) {
  const std::string dir = plain_directory();
  const std::string report = in_child([&dir] {
    std::string out;
    if (std::string error = tierfs::drop_privilege(SeccompMode::enforce, true); !error.empty())
      return "drop_privilege: " + error;
    if (std::string got = status_field("/proc/self/status", "CapPrm"); got != kSysAdminAndNice)
      out += " CapPrm " + got;
    std::atomic<int> step{0};
    std::string other_saw;
    std::thread other([&] {
      while (step.load() != 1) std::this_thread::yield();
      other_saw = status_field("/proc/thread-self/status", "CapEff");
      step = 2;
    });
    {
      const tierfs::CapabilityWindow admin({CAP_SYS_ADMIN});
      if (!admin.raised()) out += " CAP_SYS_ADMIN not raised";
      if (std::string got = status_field("/proc/thread-self/status", "CapEff"); got != kSysAdmin)
        out += " in the window CapEff " + got;
      // Effective now: umount2 gets past the capability check (not a mount point).
      if (umount2(dir.c_str(), MNT_DETACH) == 0 || errno != EINVAL)
        out += std::string(" umount2 in a window: ") + std::strerror(errno);
      {
        const tierfs::CapabilityWindow nice({CAP_SYS_NICE});  // nested: both, then admin again
        if (std::string got = status_field("/proc/thread-self/status", "CapEff");
            got != kSysAdminAndNice)
          out += " in the nested window CapEff " + got;
      }
      if (std::string got = status_field("/proc/thread-self/status", "CapEff"); got != kSysAdmin)
        out += " after the nested window CapEff " + got;
      step = 1;
      while (step.load() != 2) std::this_thread::yield();
    }
    other.join();
    if (other_saw != kNone) out += " another thread during the window: CapEff " + other_saw;
    for (const char* field : {"CapEff", "CapInh", "CapAmb"})
      if (std::string got = status_field("/proc/thread-self/status", field); got != kNone)
        out += std::string(" after the window ") + field + " " + got;
    if (std::string got = status_field("/proc/self/status", "CapPrm"); got != kSysAdminAndNice)
      out += " after the window CapPrm " + got;
    if (tierfs::capability_windows(CAP_SYS_ADMIN) != 1 ||
        tierfs::capability_windows(CAP_SYS_NICE) != 1)
      out += " windows counted: " + std::to_string(tierfs::capability_windows(CAP_SYS_ADMIN)) +
             " CAP_SYS_ADMIN, " + std::to_string(tierfs::capability_windows(CAP_SYS_NICE)) +
             " CAP_SYS_NICE";
    // One the drop did not keep cannot be raised; the thread keeps nothing.
    {
      const tierfs::CapabilityWindow chown({CAP_CHOWN});
      if (chown.raised()) out += " CAP_CHOWN raised";
    }
    if (std::string got = status_field("/proc/thread-self/status", "CapEff"); got != kNone)
      out += " after a refused window CapEff " + got;
    // A worker's libcap-ng state pointed at another process (setid_rules.cc
    // reads callers' capabilities) does not redirect the raise.
    capng_setpid(getppid());
    capng_get_caps_process();
    {
      const tierfs::CapabilityWindow admin({CAP_SYS_ADMIN});
      if (std::string got = status_field("/proc/thread-self/status", "CapEff"); got != kSysAdmin)
        out += " after capng_setpid, in the window CapEff " + got;
    }
    return out;
  });
  EXPECT_EQ(report, "");
  rmdir(dir.c_str());
}

// The frame number of the page at `address` in a /proc/self/pagemap
// descriptor (0 when the kernel hides it).
uint64_t frame_number(int pagemap_fd, const void* address) {
  uint64_t entry = 0;
  const auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const auto offset = static_cast<off_t>(reinterpret_cast<uintptr_t>(address) / page * 8);
  if (pread(pagemap_fd, &entry, sizeof entry, offset) != static_cast<ssize_t>(sizeof entry))
    return 0;
  return entry & ((uint64_t{1} << 55) - 1);
}

// The claim in BackingStore::move_pages: pagemap shows frame numbers to a
// descriptor opened with CAP_SYS_ADMIN effective, whatever the reader has
// later, and hides them from one opened without.
TEST_F(Privilege, PagemapOpenedInAWindowShowsFrameNumbers) {
  const std::string report = in_child([] {
    if (std::string error = tierfs::drop_privilege(SeccompMode::enforce); !error.empty())
      return "drop_privilege: " + error;
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* mapped = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return std::string("mmap failed");
    static_cast<char*>(mapped)[0] = 1;
    const int hidden = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    int shown = -1;
    {
      const tierfs::CapabilityWindow admin({CAP_SYS_ADMIN});
      shown = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    }
    std::string out;
    if (hidden < 0 || shown < 0) return std::string("cannot open /proc/self/pagemap");
    if (frame_number(hidden, mapped) != 0) out += " frame number shown outside a window";
    if (frame_number(shown, mapped) == 0) out += " no frame number from the window's descriptor";
    close(hidden);
    close(shown);
    munmap(mapped, page);
    return out;
  });
  EXPECT_EQ(report, "");
}

// Without a drop (not root, sandbox = false, start-up) a window is a no-op.
TEST_F(Privilege, CapabilityWindowBeforeTheDropChangesNothing) {
  const std::string report = in_child([] {
    const std::string before = status_field("/proc/self/status", "CapEff");
    std::string during;
    {
      const tierfs::CapabilityWindow admin({CAP_SYS_ADMIN});
      during = status_field("/proc/self/status", "CapEff");
    }
    const std::string after = status_field("/proc/self/status", "CapEff");
    return during == before && after == before ? std::string()
                                               : before + " -> " + during + " -> " + after;
  });
  EXPECT_EQ(report, "");
}

// The claim in docs/operations.md: map updates on a map opened before the
// drop need no capability (the kernel checks privilege when a map or program
// is created), so the BPF path keeps following extents after the drop.
TEST_F(Privilege, BpfMapsOpenedBeforeTheDropStayWritable) {
  TIERFS_REQUIRE(tierfs::testing::missing_bpf());
  const std::string report = in_child([] {
    const long map = create_array_map();
    if (map < 0) return std::string("BPF_MAP_CREATE before the drop: ") + std::strerror(errno);
    if (std::string error = tierfs::drop_privilege(SeccompMode::enforce); !error.empty())
      return "drop_privilege: " + error;
    const long rc = update_map(map, 1, 42);
    return rc == 0 ? std::string() : "BPF_MAP_UPDATE_ELEM after the drop: " + errno_of(rc);
  });
  EXPECT_EQ(report, "");
  // Without any capability at all (not even the CAP_SYS_ADMIN the server keeps).
  const std::string bare = in_child([] {
    const long map = create_array_map();
    if (map < 0) return std::string("BPF_MAP_CREATE: ") + std::strerror(errno);
    capng_clear(CAPNG_SELECT_ALL);
    if (capng_apply(CAPNG_SELECT_ALL) != 0) return std::string("cannot drop every capability");
    const long rc = update_map(map, 2, 7);
    return rc == 0 ? std::string() : "BPF_MAP_UPDATE_ELEM with no capability: " + errno_of(rc);
  });
  EXPECT_EQ(bare, "");
}

TEST_F(Privilege, LogModeDeniesNothing) {
  const std::string report = in_child([] {
    if (std::string error = tierfs::drop_privilege(SeccompMode::log); !error.empty())
      return "drop_privilege: " + error;
    const long inet = socket(AF_INET, SOCK_STREAM, 0);
    return inet >= 0 ? std::string() : "socket(AF_INET) in log mode: " + errno_of(inet);
  });
  EXPECT_EQ(report, "");
}

TEST_F(Privilege, RefusedWithASecondThreadRunning) {
  const std::string report = in_child([] {
    std::atomic<bool> stop{false};
    std::thread other([&stop] {
      while (!stop) std::this_thread::yield();
    });
    const std::string error = tierfs::drop_privilege(SeccompMode::enforce);
    stop = true;
    other.join();
    if (error.find("2 threads run already") == std::string::npos)
      return "expected a refusal naming 2 threads, got: '" + error + "'";
    if (proc_status().find("\nSeccomp:\t0\n") == std::string::npos)
      return std::string("a filter was installed");
    return std::string();
  });
  EXPECT_EQ(report, "");
}

TEST(SeccompMode, FromTheEnvironment) {
  SeccompMode mode = SeccompMode::log;
  unsetenv("TIERFS_SECCOMP");
  EXPECT_EQ(tierfs::seccomp_mode_from_env(mode), "");
  EXPECT_EQ(mode, SeccompMode::enforce);
  setenv("TIERFS_SECCOMP", "log", 1);
  EXPECT_EQ(tierfs::seccomp_mode_from_env(mode), "");
  EXPECT_EQ(mode, SeccompMode::log);
  setenv("TIERFS_SECCOMP", "kill", 1);
  EXPECT_EQ(tierfs::seccomp_mode_from_env(mode),
            "TIERFS_SECCOMP=\"kill\" is not \"enforce\" or \"log\"");
  unsetenv("TIERFS_SECCOMP");
}

}  // namespace
