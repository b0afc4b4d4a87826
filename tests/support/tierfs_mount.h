// The one C++ way to start a tierfs mount for a test or a benchmark: writes
// the configuration into a private temporary directory, runs
// `$TIERFS_BIN mount --config FILE MOUNTPOINT` (daemon mode, which returns
// only once the mount is live or prints the one line that says why not),
// unmounts with fusermount3 -u, waits for the server to exit and removes the
// directory. This process becomes a child subreaper, so the daemonized server
// is its child: its pid and exit status stay observable.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace tierfs::testing {

// $TIERFS_BIN, else "tierfs" from PATH.
std::string tierfs_bin();
// Listed in /proc/mounts.
bool is_mounted(const std::string& mountpoint);
// Runs a command, returns its exit status and puts stdout+stderr in `output`.
int run_command(const std::vector<std::string>& argv, std::string& output);

class TierfsMount {
 public:
  enum class Mode {
    daemon,
    // `tierfs mount -f` with its log in log(): only for tests that read the
    // server's own log lines, which a daemon sends to syslog.
    foreground,
  };

  explicit TierfsMount(std::string name_prefix = "tierfs-mount");
  ~TierfsMount();
  TierfsMount(const TierfsMount&) = delete;
  TierfsMount& operator=(const TierfsMount&) = delete;

  // Writes `config_toml` (every "@WORK@" replaced by work_dir()) into a new
  // work directory and mounts it; false when the mount did not come up (the
  // reason is in log()).
  bool start(const std::string& config_toml, const std::vector<std::string>& extra_args = {},
             Mode mode = Mode::daemon);
  // Unmounts (fusermount3 -u), waits for the server, removes the work
  // directory; returns the server's exit status (-1 when it had to be killed).
  int stop();

  const std::string& dir() const { return mountpoint_; }
  const std::string& work_dir() const { return work_dir_; }
  std::string path(const std::string& name) const { return mountpoint_ + "/" + name; }
  std::string config_path() const { return work_dir_ + "/tierfs.toml"; }
  pid_t server_pid() const { return pid_; }
  // What `tierfs mount` printed (stdout and stderr; the whole server log in foreground mode).
  std::string log() const;

 private:
  void remove_work_dir();

  std::string name_prefix_, work_dir_, mountpoint_, log_path_, last_log_;
  pid_t pid_ = -1;
};

}  // namespace tierfs::testing
