// Least privilege for the mounted server (see privilege.h). The allow-list
// was measured on the whole test suite (integration, jobs, security, slurm,
// bench smoke): with TIERFS_SECCOMP=log the kernel logs every call off the
// list (scripts/seccomp-audit.sh reported none), and counting the calls of
// sandboxed servers showed which entries are used. Groups marked "coming"
// hold calls of features other branches are adding (metadata journal,
// reserved backing space, SIGBUS handling, the mover, cache invalidation), so
// that they do not break when they land. Everything else fails with EPERM and
// leaves one audit line in the kernel log ("type=1326 ... comm=\"tierfs\"
// syscall=N"): a missing entry shows up as one failed operation and one log
// line, never as a killed server.
#include "tierfs/server/privilege.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/ioctl.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

namespace tierfs {
namespace {

// Calls allowed with any arguments. "Measured": made by a mounted server
// during the whole test suite (counted per call for every sandboxed tierfs
// thread with bpftrace on raw_syscalls:sys_enter); "coming": for a feature
// another branch is adding; the rest: what the same libraries make on paths
// the suite does not reach (named with each).
// clang-format off
constexpr const char* kAllowed[] = {
    // The FUSE loop (libfuse), measured: requests read from /dev/fuse,
    // replies written with writev (also fuse_lowlevel_notify_inval_inode's
    // cache invalidation, coming); poll and close of /dev/fuse at the end.
    "read", "writev", "write", "poll", "close",
    // Threads, measured: libfuse starts workers under load (and the mover,
    // coming, is one more): glibc's clone3 (clone where the kernel lacks
    // it), futex to park and wake, rseq and the robust list at start, madvise
    // and munmap of a finished thread's stack; the loop's end cancels its
    // workers (tgkill, rt_sigreturn). sched_yield: spin locks in glibc.
    "clone3", "clone", "futex", "set_robust_list", "rseq", "exit", "exit_group", "tgkill",
    "gettid", "getpid", "sched_yield",
    // glibc's pthread_getattr_np (a thread's stack bounds, asked by
    // sanitizers and libraries) reads the thread's affinity.
    "sched_getaffinity",
    // Memory, measured: the allocator (brk for the main arena, mremap for
    // realloc of large blocks) and thread stacks.
    "mmap", "munmap", "mprotect", "madvise", "brk", "mremap",
    // Region memory: hole punching when blocks are freed, measured, and the
    // backing reservation (coming); msync of persistent tiers (coming);
    // mbind and get_mempolicy for the mover (move_pages: below, on itself
    // only). An in-place move between kernel-path tiers (numa/file_move.cc)
    // asks mincore which pages of a backing file are in memory.
    "fallocate", "msync", "mbind", "get_mempolicy", "mincore",
    // The state directory (coming): the metadata journal and checkpoint are
    // opened relative to its descriptor (openat, measured for the log file),
    // written and made durable (write, pwrite64, fdatasync, fsync, ftruncate,
    // a rename into place), read back (pread64, lseek); a clean unmount of a
    // scratch mount removes it and its files (getdents64, newfstatat,
    // unlinkat, unlink, rmdir).
    "openat", "newfstatat", "pread64", "pwrite64", "lseek", "fdatasync", "fsync", "ftruncate",
    "rename", "renameat", "renameat2", "getdents64", "unlinkat", "unlink", "rmdir",
    // The kernel data path's backing files (fs_kernel_path.cc): utimensat
    // (futimens) carries a utimes onto the backing file, whose mtime getattr
    // reports, and stamps the server's changes by the kernel's clock; fchown
    // (-1, -1) stamps a change of ctime alone (FileData::stamp_now).
    "utimensat", "fchown",
    // A migration onto the kernel path copies into an O_TMPFILE backing file
    // and names it at the switch (linkat of /proc/self/fd/N: no capability);
    // between kernel-path tiers of two tmpfs the kernel copies it (sendfile).
    "linkat", "sendfile",
    // The kernel path's tmpfs usage (BackingStore::usage: the mover's
    // watermarks and `tierfs stats`), measured: without it both saw 0 bytes.
    "fstatfs",
    // New blocks of numa: regions take a write's bytes by pwritev on the
    // shared-memory object (Tier::write_through_file), measured.
    "pwritev",
    // Signals, measured: libfuse's SIGTERM/SIGINT/SIGHUP handler ends the
    // loop; the SIGBUS handler (coming: a page the backing store cannot give
    // becomes EIO) runs on an alternate stack; an interrupted sleep restarts.
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    // Time (clock_gettime is the vDSO's fallback) and the mover's timed sleeps (coming).
    "clock_gettime", "clock_nanosleep",
    // CapabilityWindow: capset raises a permitted capability into the
    // calling thread's effective set and lowers it again; libcap-ng asks
    // capget for the kernel's interface version once per thread. Neither
    // can add to the permitted set (the kernel refuses), so what they can
    // reach is what the drop kept.
    "capget", "capset",
    // libfuse's unmount asks geteuid whether to unmount itself; measured.
    // libfuse 3.18's also asks whether /etc/mtab needs an update (getuid,
    // access on /etc/mtab and /run/mount/utab), measured in log mode.
    "geteuid", "getuid", "access",
    // The daemon's detach once the mount is reported live, measured:
    // chdir("/") and standard input, output and error onto /dev/null.
    "chdir", "dup2",
    // The log, measured: syslog(3) connects to /dev/log (socket limited to
    // AF_UNIX below) and sends each line.
    "connect", "sendto",
    // FUSE over io_uring (libfuse 3.18, fuse_uring.h), measured with
    // TIERFS_SECCOMP=log: the rings start after FUSE_INIT, so after the drop.
    // Per core, a thread pinned to its core (sched_setaffinity of itself) sets
    // up a ring (io_uring_setup, _register for /dev/fuse, _enter to submit and
    // wait) with an eventfd that wakes it at teardown; its buffers come from
    // numa_alloc_local (mmap + mbind, above).
    "io_uring_setup", "io_uring_enter", "io_uring_register", "eventfd2", "sched_setaffinity",
};
// clang-format on

// AddressSanitizer builds (tests only, never shipped): LeakSanitizer's check
// at exit clones a helper that stops every thread with ptrace, waits for it,
// and reads /proc/self/task and /proc/self/maps with the raw calls below; the
// runtime also asks prctl and getppid. Measured with scripts/seccomp-audit.sh
// on build-asan. Without them the check fails and the server exits non-zero.
#if defined(__SANITIZE_ADDRESS__)
#define TIERFS_ASAN_RUNTIME 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TIERFS_ASAN_RUNTIME 1
#endif
#endif
#ifdef TIERFS_ASAN_RUNTIME
constexpr const char* kSanitizerRuntime[] = {"ptrace", "wait4",    "prctl", "getppid",
                                             "open",   "getdents", "pipe2"};
#endif

// bpf(2) commands on maps the loader created before the drop: the tiers and
// inodes maps follow every extent change, map ids are read for `tierfs stats`,
// and detaching the struct_ops program at exit deletes its map element. No
// program or map can be created, nothing attached.
constexpr int kBpfCommands[] = {BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM,
                                BPF_MAP_GET_NEXT_KEY, BPF_OBJ_GET_INFO_BY_FD};

// include/uapi/linux/fuse.h of Linux 6.9+ (Debian 12's headers predate them):
// FUSE_DEV_IOC_BACKING_OPEN takes a struct fuse_backing_map {int32 fd;
// uint32 flags; uint64 padding;}, FUSE_DEV_IOC_BACKING_CLOSE a uint32 id.
constexpr unsigned long kFuseDevIocMagic = 229;
struct FuseBackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kFuseBackingOpen = _IOW(kFuseDevIocMagic, 1, FuseBackingMap);
constexpr unsigned long kFuseBackingClose = _IOW(kFuseDevIocMagic, 2, uint32_t);

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(static_cast<scmp_filter_ctx>(ctx)); }
};
using Filter = std::unique_ptr<void, FilterDeleter>;

std::string allow(const Filter& ctx, const char* name, unsigned count = 0,
                  const scmp_arg_cmp* args = nullptr) {
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return "";  // not on this architecture
  if (int rc = seccomp_rule_add_array(ctx.get(), SCMP_ACT_ALLOW, nr, count, args); rc != 0)
    return fmt::format("seccomp: cannot allow {}: {}", name, std::strerror(-rc));
  return "";
}

std::string install_filter(SeccompMode mode) {
  Filter ctx(seccomp_init(mode == SeccompMode::log ? SCMP_ACT_LOG : SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) return "seccomp: cannot create a filter";
  // Every thread, including any a library may have started.
  if (seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1) != 0)
    return "seccomp: cannot synchronise the filter across threads";
  // Denied calls reach the kernel log: the way to find a missing entry.
  if (seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_LOG, 1) != 0)
    return "seccomp: cannot ask the kernel to log denied calls";
  for (const char* name : kAllowed)
    if (std::string error = allow(ctx, name); !error.empty()) return error;
#ifdef TIERFS_ASAN_RUNTIME
  for (const char* name : kSanitizerRuntime)
    if (std::string error = allow(ctx, name); !error.empty()) return error;
#endif
  for (const int command : kBpfCommands) {
    const scmp_arg_cmp cmd = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(command));
    if (std::string error = allow(ctx, "bpf", 1, &cmd); !error.empty()) return error;
  }
  // Unmount after a signal (libfuse: umount2(mountpoint, MNT_DETACH) as root)
  // and of the kernel path's tmpfs at a clean exit, each in a window of the
  // CAP_SYS_ADMIN that stays permitted; no other flags.
  const scmp_arg_cmp detach = SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(MNT_DETACH));
  if (std::string error = allow(ctx, "umount2", 1, &detach); !error.empty()) return error;
  // The kernel data path (fs_kernel_path.cc): an open of a kernel-path file
  // registers its backing file with /dev/fuse and the last release drops it.
  // These two ioctls are the CAP_SYS_ADMIN use that stays besides the unmount
  // (fs/fuse/backing.c checks it in the initial user namespace, in each
  // call, so each runs in a window); no other ioctl.
  for (const unsigned long request : {kFuseBackingOpen, kFuseBackingClose}) {
    const scmp_arg_cmp cmd = SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(request));
    if (std::string error = allow(ctx, "ioctl", 1, &cmd); !error.empty()) return error;
  }
  // A move off the kernel path asks whether a mapping still uses the backing
  // file with a write lease, dropped at once (BackingFile::open_elsewhere);
  // no other fcntl.
  const scmp_arg_cmp lease = SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(F_SETLEASE));
  if (std::string error = allow(ctx, "fcntl", 1, &lease); !error.empty()) return error;
  // Pages of the server's own mappings only (pid 0): an in-place move of a
  // kernel-path file's pages (numa/file_move.cc), never another process's.
  const scmp_arg_cmp self = SCMP_A0(SCMP_CMP_EQ, 0);
  if (std::string error = allow(ctx, "move_pages", 1, &self); !error.empty()) return error;
  // syslog(3) talks to /dev/log: local sockets only, no network.
  const scmp_arg_cmp local = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(AF_UNIX));
  if (std::string error = allow(ctx, "socket", 1, &local); !error.empty()) return error;
  // libfuse 3.18 names its threads ("fuse_worker", "fuse-ring-N"); no other prctl.
  const scmp_arg_cmp set_name = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(PR_SET_NAME));
  if (std::string error = allow(ctx, "prctl", 1, &set_name); !error.empty()) return error;
  if (int rc = seccomp_load(ctx.get()); rc != 0)
    return fmt::format("seccomp: cannot load the filter: {}", std::strerror(-rc));
  return "";
}

// What the drop kept permitted (bit CAP_*), written once by drop_privilege
// while it is the only thread and read by threads started after it; 0: no
// drop, so nothing to raise or lower.
uint64_t kept_permitted = 0;
// The calling thread's effective set as CapabilityWindow last set it.
thread_local uint64_t thread_effective = 0;
std::array<std::atomic<uint64_t>, 64> windows_opened{};
std::atomic<bool> raise_failure_logged{false};

constexpr uint64_t bit(int capability) {
  return uint64_t{1} << capability;
}

// Sets the calling thread's capabilities to the kept permitted set and
// `effective` (a subset of it). libcap-ng's state is per thread, and another
// user in this thread (setid_rules.cc) may have pointed it at another
// process: start from a clear state and address this thread (pid 0 to capset).
int apply_effective(uint64_t effective) {
  capng_clear(CAPNG_SELECT_CAPS);
  capng_setpid(0);
  for (int cap = 0; cap < 64; ++cap) {
    if ((kept_permitted & bit(cap)) != 0 &&
        capng_update(CAPNG_ADD, CAPNG_PERMITTED, static_cast<unsigned>(cap)) != 0)
      return -1;
    if ((effective & bit(cap)) != 0 &&
        capng_update(CAPNG_ADD, CAPNG_EFFECTIVE, static_cast<unsigned>(cap)) != 0)
      return -1;
  }
  return capng_apply(CAPNG_SELECT_CAPS);
}

// Capabilities apply per thread: a thread started before the drop keeps them.
size_t thread_count() {
  std::error_code ec;
  size_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec))
    ++n;
  return n;
}

}  // namespace

std::string seccomp_mode_from_env(SeccompMode& mode) {
  const char* value = std::getenv("TIERFS_SECCOMP");
  mode = SeccompMode::enforce;
  if (value == nullptr || std::string_view(value) == "enforce") return "";
  if (std::string_view(value) == "log") {
    mode = SeccompMode::log;
    return "";
  }
  return fmt::format("TIERFS_SECCOMP=\"{:.32}\" is not \"enforce\" or \"log\"", value);
}

std::string drop_privilege(SeccompMode mode, bool keep_sys_nice) {
  if (geteuid() != 0) {
    spdlog::info(
        "running as uid {}: no capability to drop; no no_new_privs or seccomp filter, "
        "since an unmount after a signal needs the setuid fusermount3",
        geteuid());
    return "";
  }
  if (const size_t threads = thread_count(); threads != 1)
    return fmt::format(
        "cannot drop privilege: {} threads run already, and capabilities are "
        "per thread (start threads after the drop)",
        threads);
  // CAP_SYS_ADMIN stays permitted: libfuse unmounts with umount2 when a
  // signal ends the server, a clean exit detaches the kernel path's tmpfs,
  // and the kernel path registers and drops backing files (capable() in each
  // FUSE_DEV_IOC_BACKING_OPEN and _CLOSE, fs/fuse/backing.c). CAP_SYS_NICE
  // stays permitted where kernel-path tiers move files in place:
  // MPOL_MF_MOVE_ALL (mm/mempolicy.c, mm/migrate.c) moves the pages another
  // process maps as well (MPOL_MF_MOVE skips a page mapped more than once);
  // the filter lets it reach no other process's pages (move_pages on pid 0
  // only; migrate_pages, setpriority and sched_setscheduler are not on the
  // list). Neither is effective in any thread: a CapabilityWindow raises one
  // in one thread around the one call. Every other capability, the bounding
  // set (nothing exec'd can regain one) and the ambient set go.
  capng_clear(CAPNG_SELECT_ALL);
  if (capng_update(CAPNG_ADD, CAPNG_PERMITTED, CAP_SYS_ADMIN) != 0)
    return "cannot drop capabilities: libcap-ng cannot keep CAP_SYS_ADMIN";
  if (keep_sys_nice && capng_update(CAPNG_ADD, CAPNG_PERMITTED, CAP_SYS_NICE) != 0)
    return "cannot drop capabilities: libcap-ng cannot keep CAP_SYS_NICE";
  if (int rc = capng_apply(CAPNG_SELECT_ALL); rc != 0)
    return fmt::format("cannot drop capabilities (libcap-ng error {})", rc);
  kept_permitted = bit(CAP_SYS_ADMIN) | (keep_sys_nice ? bit(CAP_SYS_NICE) : 0);
  thread_effective = 0;
  // No exec can ever give privilege back (set-user-ID, file capabilities); the
  // filter needs it too, as a process without CAP_SYS_ADMIN would.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fmt::format("cannot set no_new_privs: {}", std::strerror(errno));
  if (std::string error = install_filter(mode); !error.empty()) return error;
  if (mode == SeccompMode::log)
    spdlog::warn(
        "privilege dropped: no effective capability, CAP_SYS_ADMIN{} permitted, no_new_privs, "
        "seccomp allow-list in log mode (TIERFS_SECCOMP=log): calls off the list run and are "
        "only logged",
        keep_sys_nice ? " and CAP_SYS_NICE" : "");
  else
    spdlog::info(
        "privilege dropped: no effective capability; permitted, raised by one thread around "
        "each call that needs it: CAP_SYS_ADMIN (unmount, the kernel path's backing files){}; "
        "no_new_privs, seccomp allow-list (other calls fail with EPERM)",
        keep_sys_nice ? ", CAP_SYS_NICE (in-place moves between kernel-path tiers)" : "");
  return "";
}

CapabilityWindow::CapabilityWindow(std::initializer_list<int> capabilities) {
  if (kept_permitted == 0) return;  // no drop: nothing to raise
  uint64_t wanted = 0;
  for (int cap : capabilities) wanted |= bit(cap);
  previous_ = thread_effective;
  active_ = true;
  if ((wanted & ~kept_permitted) == 0 && apply_effective(previous_ | wanted) == 0) {
    thread_effective = previous_ | wanted;
    raised_ = true;
    for (int cap : capabilities) windows_opened[static_cast<size_t>(cap)].fetch_add(1);
    return;
  }
  if (!raise_failure_logged.exchange(true))
    spdlog::error("cannot raise capabilities {:#x} (permitted {:#x}): {}", wanted, kept_permitted,
                  std::strerror(errno));
}

CapabilityWindow::~CapabilityWindow() {
  if (!active_ || !raised_) return;
  // Lowering to a subset of the permitted set cannot be refused by the
  // kernel; if it were, the thread would keep what it raised: say so.
  if (apply_effective(previous_) != 0) {
    spdlog::error("cannot lower capabilities to {:#x}: {}", previous_, std::strerror(errno));
    return;
  }
  thread_effective = previous_;
}

uint64_t capability_windows(int capability) {
  if (capability < 0 || capability >= 64) return 0;
  return windows_opened[static_cast<size_t>(capability)].load();
}

}  // namespace tierfs
