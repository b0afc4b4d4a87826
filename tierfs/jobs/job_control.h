// Per-job scratch mounts: `tierfs job start|stop|env`. start creates
// BASE/<job id>, admits the mount against the node's limits, runs the server
// and records it, and for a job that wants it starts this node's part of the
// job-wide scratch (shared_scratch.h); stop unmounts (lazily if need be), waits for the server,
// and removes the mount point, the server's shared memory and the records,
// also after a crash. Both are idempotent. Errors are JobError: one line and
// a distinct exit status (JobExit).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "numa/topology.h"
#include "tierfs/jobs/job_state.h"
#include "tierfs/jobs/node_config.h"

namespace tierfs::jobs {

// Exit statuses of `tierfs job`, documented in tierfs(1) and docs/operations.md.
enum class JobExit : int {
  ok = 0,
  failed = 1,         // anything else (state directory, fork, ...)
  bad_request = 2,    // job id, uid, gid or size unusable
  bad_config = 3,     // node or mount configuration invalid
  refused = 4,        // admission: the node's allowance would be exceeded
  mount_failed = 5,   // the server did not mount (its line says why)
  not_started = 6,    // env: the job has no scratch mount
  cleanup_left = 7,   // stop: something could not be removed (named in the line)
  shared_failed = 8,  // start --shared: the job-wide file system did not start
};

class JobError : public std::runtime_error {
 public:
  JobError(JobExit status, const std::string& what) : std::runtime_error(what), status_(status) {}
  JobExit status() const { return status_; }

 private:
  JobExit status_;
};

struct JobRequest {
  std::string job_id;
  uid_t uid = 0;
  gid_t gid = 0;
  std::optional<uint64_t> size_bytes;  // nullopt = the node's default_size
  // Job-wide scratch: yes, no, or nullopt = the node's [shared] default.
  // Only jobs of several nodes get it; nodes are as in SharedRequest.
  std::optional<bool> shared;
  std::vector<std::string> nodes;
};

struct StartOutcome {
  JobState state;
  bool already_running = false;                  // a second start of the same job changed nothing
  std::optional<std::string> shared_mountpoint;  // the job-wide mount, when it has one
};

// tierfs_exe: the tierfs binary that serves the mount (`tierfs mount -f`).
StartOutcome start_job(const NodeConfig& node, const numa::Topology& topology,
                       const JobRequest& request, const std::string& tierfs_exe);

// Stops the job-wide scratch's part on this node first, then the job's
// scratch. Returns false when there was nothing to stop.
bool stop_job(const NodeConfig& node, const std::string& job_id);

// The TaskProlog lines ("export TIERFS_SCRATCH=...", and TIERFS_SHARED= when
// the job-wide scratch is mounted here). Throws JobError
// refused (with start's reason) or not_started.
std::string job_env(const NodeConfig& node, const std::string& job_id);

// Throws JobError bad_request unless id is 1-64 of [A-Za-z0-9_.-], not starting with '.'.
void check_job_id(const std::string& job_id);

}  // namespace tierfs::jobs
