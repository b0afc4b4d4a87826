// The kernel's per-mount writeback and readahead settings (the backing device
// info in /sys/class/bdi/MAJOR:MINOR) sized for tierfs instead of the FUSE
// defaults: 128 KiB readahead and 1 % of the dirty limit for the page cache.
#pragma once

#include <string>

#include "tierfs/core/config.h"

namespace tierfs {

// Applies the settings to the mount at `mountpoint` (already mounted, before
// FUSE_INIT is answered). Logs one line and carries on when sysfs refuses
// (not root): the mount works with the kernel's defaults.
void tune_bdi(const std::string& mountpoint, const MountOptions& mount);

// The readahead the mount asks for, in bytes (also FUSE_INIT's max_readahead).
uint64_t readahead_bytes(const MountOptions& mount);

}  // namespace tierfs
