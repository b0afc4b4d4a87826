// The ioctl that `tierfs migrate` sends to a file on a tierfs mount, and the
// server answers (tierfs/server/fs_migrate.cc). An ioctl rather than an
// xattr: the kernel holds the inode's lock across setxattr, so writers of the
// file would wait for the whole copy; FUSE_IOCTL takes no lock.
#pragma once

#include <linux/ioctl.h>

#include <cstdint>

namespace tierfs {

inline constexpr uint32_t kMigrateAsync = 1;  // queue it for the mover, return at once
// Out: a move off the kernel path held by open passthrough handles; the
// server does it when the last of them closes (docs/operations.md).
inline constexpr uint32_t kMigrateHeld = 2;

struct MigrateRequest {
  char tier[64];         // the target tier's name, NUL-terminated
  uint32_t flags;        // kMigrateAsync in; kMigrateHeld out
  uint32_t reserved;     // 0
  uint64_t bytes_moved;  // out: bytes now on the target that came from other tiers
};

// Restricted ioctl: the kernel copies the struct in and out by its size.
inline constexpr unsigned long kMigrateIoctl = _IOWR('T', 0x40, MigrateRequest);

}  // namespace tierfs
