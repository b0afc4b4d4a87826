// Running a tierfs mount: what `tierfs mount` hands to the server, and how
// the server reports the outcome of start-up (a daemon's parent waits for it).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tierfs/core/config.h"

namespace tierfs {

struct SessionOptions {
  std::string mountpoint;
  std::vector<std::string> extra_options;  // from -o, passed to the mount
  bool debug = false;                      // libfuse's -d: every request in the log
  std::string log_file;                    // tierfs mount --log-file (the CLI opens it)
  // Owner, group and permission bits of the mount's root directory (mount
  // options uid=, gid=, mode=); unset: the mounting user's, 0755.
  std::optional<uid_t> root_uid;
  std::optional<gid_t> root_gid;
  std::optional<mode_t> root_mode;
  // tierfs mount --fresh: discard what a previous server of this mount left
  // (shared memory, metadata log) instead of adopting it.
  bool fresh = false;
};

struct StartupReport {
  std::function<void(const std::string& one_line)> failed;  // nothing is mounted
  std::function<void()> mounted;                            // the mount is live
};

// Opens the regions, mounts, reports, and serves until unmount or SIGTERM,
// SIGINT or SIGHUP; then unmounts and releases the regions. Returns the exit
// status. Never throws: start-up failures go to report.failed.
int serve_mount(Config config, const SessionOptions& options, const StartupReport& report);

}  // namespace tierfs
