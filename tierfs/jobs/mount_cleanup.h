// Removal of every trace of a dead tierfs mount: the stale FUSE mount, the
// shared-memory objects of its numa: regions, its lock file and, for a
// scratch mount, its state directory. `tierfs cleanup MOUNTPOINT` and
// `tierfs job stop` (the Slurm epilog) both run it.
#pragma once

#include <string>
#include <vector>

#include "tierfs/core/config.h"

namespace tierfs::jobs {

// The mount point as the server named it (realpath of its parent plus the
// last component: a dead FUSE mount itself cannot be resolved, it answers ENOTCONN).
std::string cleanup_mountpoint(const std::string& path);

// Removes what a dead server of the mount at `mountpoint` (canonical) left,
// with `config` saying where its state is (state_dir) and whether it is
// persistent (then its metadata and region files stay). Returns one line per
// thing removed. Throws std::runtime_error with one line, removing nothing,
// when a live server holds the mount.
std::vector<std::string> cleanup_mount(const std::string& mountpoint, const Config& config);

}  // namespace tierfs::jobs
