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

// The largest READ request (the max_read mount option and FUSE_INIT's).
// cache = "none" sends a read(2) to the server as it is, cut into requests of
// at most max_read bytes and at most max_pages pages of the caller's buffer
// (max_write / 4 KiB, the kernel allows 256). A buffer that does not start on
// a page boundary spans one page more than its bytes, so requests of
// max_pages pages ended mid-page, and a truncate and rewrite between two of
// them tore that page for the reader: part old bytes and part new, or the
// file's end in the middle of it. One page less never ends mid-page (for a
// read that starts on a page boundary of the file). The page cache of
// cache = "kernel" reads whole pages anyway and keeps max_io.
uint64_t read_request_bytes(const MountOptions& mount);

}  // namespace tierfs
