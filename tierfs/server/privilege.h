// Least privilege for the server once its mount is up and FUSE_INIT is
// answered: no capability in any thread's effective set; CAP_SYS_ADMIN (and
// CAP_SYS_NICE where kernel-path tiers move files in place) kept in the
// permitted set only, raised by one thread around the one call that needs it
// (CapabilityWindow); every other capability, the bounding and ambient sets
// dropped (libcap-ng), no_new_privs set, and a seccomp allow-list
// (libseccomp) of the system calls the server makes; anything else fails
// with EPERM (never a kill: a denied call must not lose data). What stays
// and why is in docs/operations.md (Security) and privilege.cc.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

namespace tierfs {

// What the filter does with a call that is not on the list.
enum class SeccompMode {
  enforce,  // fail it with EPERM and log it (kernel log, "audit: type=1326")
  log,      // let it run and log it: how the list is measured (scripts/seccomp-audit.sh)
};

// TIERFS_SECCOMP=log in the server's environment selects SeccompMode::log,
// unset or "enforce" the default; any other value is an error line.
std::string seccomp_mode_from_env(SeccompMode& mode);

// Called at FUSE_INIT (fs_init, which serve_mount runs on the main thread
// before the loop starts its workers), right after the BPF attach and before
// any other thread starts: capabilities and no_new_privs are per thread, and
// threads started later inherit them. A server with a second thread already
// running is refused (that thread would keep every capability): start
// threads (the mover) after the drop. Returns "" or the one line that must fail the mount.
// A server that is not root has no capability to drop and needs the setuid
// fusermount3 to unmount after a signal: it gets neither no_new_privs nor the
// filter, and says so once in the log.
// CAP_SYS_ADMIN stays permitted (not effective) for the unmount after a
// signal and the kernel path's backing files. `keep_sys_nice`: CAP_SYS_NICE
// stays permitted as well, for in-place moves between kernel-path tiers
// (mbind and move_pages with MPOL_MF_MOVE_ALL move the pages other processes
// map too; without it those stay where they are).
std::string drop_privilege(SeccompMode mode, bool keep_sys_nice = false);

// Raises capabilities the drop kept permitted into the effective set of the
// calling thread for its lifetime, and lowers them again (the thread's
// previous effective set) when it ends: around the one call that needs them
// (the backing-file ioctls, an in-place page move, the unmounts at exit).
// capset(2) changes only the calling thread's credentials, so no other
// thread of the server can use them meanwhile. Does nothing in a process
// whose privilege was not dropped (not root, sandbox = false, start-up):
// there the capabilities are effective already, or absent. A capability the
// drop did not keep cannot be raised: raised() is false, the call then fails
// as it would without it, and the first such failure is logged. A thread
// started inside a window would inherit what it raised: start none there.
class CapabilityWindow {
 public:
  explicit CapabilityWindow(std::initializer_list<int> capabilities);
  ~CapabilityWindow();
  CapabilityWindow(const CapabilityWindow&) = delete;
  CapabilityWindow& operator=(const CapabilityWindow&) = delete;
  bool raised() const { return raised_; }

 private:
  uint64_t previous_ = 0;
  bool active_ = false;
  bool raised_ = false;
};

// How many windows this process has opened per capability (the privilege
// test and `tierfs stats` style diagnostics count them): index CAP_*.
uint64_t capability_windows(int capability);

}  // namespace tierfs
