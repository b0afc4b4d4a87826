// The mount(8) helper convention: `mount -t fuse.tierfs SOURCE DIR -o OPTS`
// and fstab lines make mount.fuse3 run `tierfs SOURCE DIR -o OPTS`; this
// turns that into `tierfs mount -o OPTS DIR` (OPTS may hold config=FILE,
// uid=, gid=, mode= and the usual mount options; see cmd_mount.cc).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace tierfs {

// The rewritten arguments (argv[0] first), or nullopt when argv is an ordinary
// `tierfs SUBCOMMAND ...` line. Throws std::runtime_error for a helper call
// it cannot read.
std::optional<std::vector<std::string>> mount_helper_args(
    int argc, char** argv, const std::vector<std::string>& subcommands);

}  // namespace tierfs

#include <sys/types.h>

namespace tierfs {

// The -o options that tierfs itself takes instead of passing them to FUSE:
// config=FILE, uid=ID|NAME, gid=ID|NAME, mode=OCTAL (of the mount's root
// directory), log_file=FILE. Removes them from options.
struct TierfsMountOptions {
  std::string config_file;
  std::optional<uid_t> root_uid;
  std::optional<gid_t> root_gid;
  std::optional<mode_t> root_mode;
  std::string log_file;
  bool fresh = false;  // as --fresh: discard what a previous server left
};

// Throws std::runtime_error naming the option that is wrong.
TierfsMountOptions take_tierfs_options(std::vector<std::string>& options);

}  // namespace tierfs
