// Least privilege for the mounted server (see privilege.h). The allow-list
// was measured by running the whole test suite (integration, jobs, security,
// slurm, bench smoke) with TIERFS_SECCOMP=log and reading the kernel's audit
// lines (scripts/seccomp-audit.sh), then grouped below by what needs each
// call. Groups marked "coming" hold calls of features other branches are
// adding (metadata journal, reserved backing space, SIGBUS handling, the
// mover, cache invalidation), so that they do not break when they land.
// Everything else fails with EPERM and leaves one audit line in the kernel
// log ("type=1326 ... comm=\"tierfs\" syscall=N"): a missing entry shows up as
// one failed operation and one log line, never as a killed server.
#include "tierfs/server/privilege.h"

#include <cap-ng.h>
#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

namespace tierfs {
namespace {

// Calls allowed with any arguments.
constexpr const char* kAllowed[] = {
    // The FUSE loop (libfuse): requests read from /dev/fuse, replies and
    // notifications (fuse_lowlevel_notify_inval_inode, coming) written with
    // writev; poll and close when the session ends.
    "read",
    "readv",
    "write",
    "writev",
    "poll",
    "ppoll",
    "close",
    // Threads: libfuse's workers (more start under load) and the mover
    // (coming). glibc starts a thread with clone3 (clone on older kernels),
    // parks and wakes them with futex, frees their stacks with madvise and
    // munmap; std::thread::hardware_concurrency reads the affinity.
    "clone",
    "clone3",
    "futex",
    "futex_waitv",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "set_tid_address",
    "sched_yield",
    "sched_getaffinity",
    "exit",
    "exit_group",
    // Memory: the allocator and thread stacks.
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    // Region memory: hole punching (FALLOC_FL_PUNCH_HOLE) when blocks are
    // freed and the backing reservation (coming); msync of persistent tiers
    // (coming); NUMA policy of the placement and of migrated pages (mover, coming).
    "fallocate",
    "ftruncate",
    "msync",
    "mbind",
    "get_mempolicy",
    "set_mempolicy",
    "move_pages",
    "migrate_pages",
    // The state directory and its metadata journal and checkpoint (coming):
    // written with write/pwrite, made durable with fdatasync/fsync and a
    // rename, opened relative to the directory's descriptor; flock holds the
    // mount's lock; a clean unmount of a scratch mount removes the directory.
    "openat",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "lseek",
    "fsync",
    "fdatasync",
    "rename",
    "renameat",
    "renameat2",
    "linkat",
    "unlink",
    "unlinkat",
    "mkdirat",
    "getdents64",
    "flock",
    "fcntl",
    "newfstatat",
    "fstat",
    "statx",
    "fstatfs",
    "statfs",
    // The daemon's detach once the mount is reported live: chdir("/") and
    // standard input, output and error onto /dev/null.
    "chdir",
    "dup",
    "dup2",
    "dup3",
    // Signals: libfuse's SIGTERM/SIGINT/SIGHUP handler ends the loop, the
    // SIGBUS handler (coming: a failed page of backing store becomes EIO) runs
    // on an alternate stack and returns; pthread_cancel and raise use tgkill.
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "restart_syscall",
    "tgkill",
    "getpid",
    "gettid",
    // Time and randomness: timestamps, logging, timed waits, random names.
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "clock_nanosleep",
    "nanosleep",
    "getrandom",
    // Identity: the permission checks and the log.
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    // The log: spdlog's syslog sink (the socket itself is limited to AF_UNIX below).
    "connect",
    "sendto",
    "sendmsg",
};

// bpf(2) commands on maps the loader created before the drop: the tiers and
// inodes maps follow every extent change, map ids are read for `tierfs stats`,
// and detaching the struct_ops program at exit deletes its map element. No
// program or map can be created, nothing attached.
constexpr int kBpfCommands[] = {BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM,
                                BPF_MAP_GET_NEXT_KEY, BPF_OBJ_GET_INFO_BY_FD};

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
  for (const int command : kBpfCommands) {
    const scmp_arg_cmp cmd = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(command));
    if (std::string error = allow(ctx, "bpf", 1, &cmd); !error.empty()) return error;
  }
  // Unmount after a signal (libfuse: umount2(mountpoint, MNT_DETACH) as root),
  // the one use of the CAP_SYS_ADMIN that stays; no other flags.
  const scmp_arg_cmp detach = SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(MNT_DETACH));
  if (std::string error = allow(ctx, "umount2", 1, &detach); !error.empty()) return error;
  // syslog(3) talks to /dev/log: local sockets only, no network.
  const scmp_arg_cmp local = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(AF_UNIX));
  if (std::string error = allow(ctx, "socket", 1, &local); !error.empty()) return error;
  if (int rc = seccomp_load(ctx.get()); rc != 0)
    return fmt::format("seccomp: cannot load the filter: {}", std::strerror(-rc));
  return "";
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

std::string drop_privilege(SeccompMode mode) {
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
  // CAP_SYS_ADMIN alone stays: libfuse unmounts with umount2 when a signal
  // ends the server. Every other capability, the bounding set (nothing exec'd
  // can regain one) and the ambient set go.
  capng_clear(CAPNG_SELECT_ALL);
  if (capng_update(CAPNG_ADD, static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED),
                   CAP_SYS_ADMIN) != 0)
    return "cannot drop capabilities: libcap-ng cannot keep CAP_SYS_ADMIN";
  if (int rc = capng_apply(CAPNG_SELECT_ALL); rc != 0)
    return fmt::format("cannot drop capabilities (libcap-ng error {})", rc);
  // No exec can ever give privilege back (set-user-ID, file capabilities); the
  // filter needs it too, as a process without CAP_SYS_ADMIN would.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fmt::format("cannot set no_new_privs: {}", std::strerror(errno));
  if (std::string error = install_filter(mode); !error.empty()) return error;
  spdlog::info(
      "privilege dropped: CAP_SYS_ADMIN only (for the unmount), no_new_privs, seccomp "
      "allow-list ({})",
      mode == SeccompMode::log ? "log mode: nothing denied" : "others fail with EPERM");
  return "";
}

}  // namespace tierfs
