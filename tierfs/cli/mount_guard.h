// Guards `tierfs mount` runs before it opens anything: a mount point that
// tierfs already serves (or a stale one whose server died) is refused, since
// a second mount would hide the first one's files and keep both servers.
#pragma once

#include <string>

namespace tierfs {

// Throws std::runtime_error with one line when `path` (as given, or resolved)
// is the mount point of a tierfs mount in this mount namespace.
void refuse_served_mountpoint(const std::string& path);

}  // namespace tierfs
