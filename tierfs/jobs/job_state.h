// What `tierfs job start` records about a job mount in the node's state
// directory (/run/tierfs/job-<id>.json), so that `job stop` can remove every
// trace even after the server crashed, and admission can add up what the
// node's job mounts hold. Also the directory's lock and small /proc helpers.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tierfs::jobs {

struct JobState {
  std::string job_id;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string mountpoint;                 // BASE/<job id>, canonical
  uint64_t size_bytes = 0;                // what the job asked for (its first tier's size)
  pid_t server_pid = 0;                   // 0 until the server was started
  uint64_t server_start_ticks = 0;        // /proc/PID/stat field 22: tells a reused pid apart
  std::map<std::string, uint64_t> usage;  // admission key -> bytes this mount holds
};

// File names in the state directory for a job: "<dir>/job-<id>.<suffix>".
std::string job_file(const std::string& state_dir, const std::string& job_id,
                     const std::string& suffix);

void write_job_state(const std::string& state_dir, const JobState& state);  // atomic
std::optional<JobState> read_job_state(const std::string& state_dir, const std::string& job_id);
std::vector<JobState> list_job_states(const std::string& state_dir);

// Writes text to path atomically (temporary file, fsync, rename), mode 0644:
// the job's user reads its record with `job env` in the TaskProlog.
void write_file_atomically(const std::string& path, const std::string& text);

// An exclusive flock(2) on <state_dir>/lock, held for the object's lifetime:
// starts and stops of all jobs on the node take turns, so two starts cannot
// both pass the admission check.
class StateLock {
 public:
  explicit StateLock(const std::string& state_dir);
  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  int fd_ = -1;
};

// Whether path is a mount point now (/proc/self/mountinfo), and its fs type.
std::optional<std::string> mount_type(const std::string& path);
// Field 22 of /proc/PID/stat, 0 when the process is gone or a zombie.
uint64_t process_start_ticks(pid_t pid);

}  // namespace tierfs::jobs
