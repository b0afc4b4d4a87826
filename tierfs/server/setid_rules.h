// Which set-user-ID and set-group-ID bits a change of a file drops, by the
// kernel's rules (fs/attr.c: setattr_should_drop_suidgid, setattr_should_drop_sgid,
// and chown_common in fs/open.c). The server applies them itself: fs_init
// asks for FUSE_HANDLE_KILLPRIV, so the kernel leaves the bits to it on
// write, truncate, fallocate and chown (without it, fuse_setattr recomputes
// them by an older rule that keeps setgid on a file the writer's groups do
// not include, and open(O_TRUNC) and direct-I/O writes kill nothing).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/types.h>

#include "tierfs/server/inode.h"

namespace tierfs {

enum class SetidChange {
  // write, truncate, fallocate: both bits go unless the caller has
  // CAP_FSETID; setgid only when group-executable or the caller is not in
  // the file's group.
  modify,
  // chown/chgrp, chown(-1, -1) and the kernel's remove-privileges request
  // (a SETATTR that sets nothing, fs_setattr): setuid always goes; setgid
  // when group-executable, or when the caller is neither in the file's
  // (old) group nor has CAP_FSETID.
  owner,
};

// The bits of inode.mode that `change` by the caller of `req` drops (0 for
// a directory; for a modification, 0 for anything but a regular file). Reads the caller's groups
// and capabilities from /proc only when the file has a bit to lose.
mode_t setid_bits_to_drop(fuse_req_t req, const Inode& inode, SetidChange change);

// Clears those bits; true when the mode changed. Caller holds inode.lock uniquely.
bool drop_setid_bits(fuse_req_t req, Inode& inode, SetidChange change);

}  // namespace tierfs
