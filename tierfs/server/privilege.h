// Least privilege for the server once its mount is up and FUSE_INIT is
// answered: every capability but CAP_SYS_ADMIN dropped (libcap-ng), the
// bounding and ambient sets emptied, no_new_privs set, and a seccomp
// allow-list (libseccomp) of the system calls the server makes; anything else
// fails with EPERM (never a kill: a denied call must not lose data). What
// stays and why is in docs/operations.md (Security) and privilege.cc.
#pragma once

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
// `keep_sys_nice`: CAP_SYS_NICE stays as well, for in-place moves between
// kernel-path tiers (mbind and move_pages with MPOL_MF_MOVE_ALL move the
// pages other processes map too; without it those stay where they are).
std::string drop_privilege(SeccompMode mode, bool keep_sys_nice = false);

}  // namespace tierfs
