// See setid_rules.h. The caller is the process that made the system call:
// FUSE passes its fsuid, fsgid and pid; its supplementary groups come from
// libfuse (fuse_req_getgroups) and its capabilities from libcap-ng, both
// read from /proc/PID/status, and only for files with a set-ID bit.
#include "tierfs/server/setid_rules.h"

#include <cap-ng.h>
#include <linux/capability.h>

#include <array>

namespace tierfs {
namespace {

// capable(CAP_FSETID) of the caller. A process gone before we look (or a
// request without one) counts as root only when its uid is 0.
bool caller_has_fsetid(const fuse_ctx& ctx) {
  if (ctx.pid <= 0) return ctx.uid == 0;
  // libcap-ng's state is per thread (TLS): this worker's copy describes the caller.
  capng_setpid(static_cast<int>(ctx.pid));
  if (capng_get_caps_process() != 0) return ctx.uid == 0;
  return capng_have_capability(CAPNG_EFFECTIVE, CAP_FSETID) == 1;
}

// in_group_p: the caller's fsgid or one of its supplementary groups.
bool caller_in_group(fuse_req_t req, const fuse_ctx& ctx, gid_t gid) {
  if (ctx.gid == gid) return true;
  std::array<gid_t, 256> groups{};
  const int count = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  for (int i = 0; i < count && i < static_cast<int>(groups.size()); ++i)
    if (groups[static_cast<size_t>(i)] == gid) return true;
  return false;
}

}  // namespace

mode_t setid_bits_to_drop(fuse_req_t req, const Inode& inode, SetidChange change) {
  const mode_t mode = inode.mode;
  if ((mode & (S_ISUID | S_ISGID)) == 0) return 0;
  // A modification drops them from regular files (should_remove_suid); a
  // chown from every file but a directory (chown_common), a FIFO or a
  // device node included, as tmpfs does.
  if (change == SetidChange::modify ? !inode.is_regular() : inode.is_dir()) return 0;
  const fuse_ctx& ctx = *fuse_req_ctx(req);
  if (change == SetidChange::modify) {
    if (caller_has_fsetid(ctx)) return 0;
    mode_t drop = mode & S_ISUID;
    if ((mode & S_ISGID) && ((mode & S_IXGRP) || !caller_in_group(req, ctx, inode.gid)))
      drop |= S_ISGID;
    return drop;
  }
  mode_t drop = mode & S_ISUID;
  if ((mode & S_ISGID) &&
      ((mode & S_IXGRP) || (!caller_in_group(req, ctx, inode.gid) && !caller_has_fsetid(ctx))))
    drop |= S_ISGID;
  return drop;
}

bool drop_setid_bits(fuse_req_t req, Inode& inode, SetidChange change) {
  const mode_t drop = setid_bits_to_drop(req, inode, change);
  inode.mode &= ~drop;
  return drop != 0;
}

}  // namespace tierfs
