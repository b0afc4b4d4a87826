// Guards `tierfs mount` runs before it opens anything: a mount point that
// tierfs already serves (or a stale one whose server died) is refused, since
// a second mount would hide the first one's files and keep both servers.
#pragma once

#include <string>
#include <vector>

namespace tierfs {

// The mount points of every fuse.tierfs mount in this mount namespace, in
// /proc/self/mountinfo's order (a stale mount whose server died included).
std::vector<std::string> tierfs_mount_points();

// Throws std::runtime_error with one line when `path` (as given, or resolved)
// is the mount point of a tierfs mount in this mount namespace.
void refuse_served_mountpoint(const std::string& path);

// `mount -o remount,ro|rw DIR` (mount(8) runs the helper with "remount" among
// the options): switches the live tierfs mount at `path` between read-only
// and read-write with the kernel's own remount, which keeps the server and
// every other flag of the mount (nosuid, nodev, ...) as it is; the kernel
// refuses ro while a file is open for writing (EBUSY). Throws
// std::runtime_error with one line when `path` is no tierfs mount or the
// kernel refuses.
void remount_served(const std::string& path, bool read_only);

}  // namespace tierfs
