// Job-wide scratch for jobs of several nodes (`tierfs job start --shared`):
// one MooseFS file system per job whose chunks live on every node's job
// scratch, mounted at [shared] base/<job id> on every node of the job.
// tierfs adds no distributed layer of its own: the master on the job's first
// node, a chunkserver and mfsmount on every node are MooseFS's, configured
// per job in [shared] state_dir/<job id> (local, not on tierfs, so that a
// dead tierfs server does not keep stop from finding them) and run as the
// job's user. Ports derive from the job id (k = id % 100): the master's
// port_base+3k .. +3k+2, the chunkserver's port_base+300+k.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "tierfs/jobs/node_config.h"

namespace tierfs::jobs {

struct SharedRequest {
  std::string job_id;  // numeric: the ports derive from it
  uid_t uid = 0;
  gid_t gid = 0;
  // The job's nodes as the others reach them (Slurm's NodeAddr: an address
  // or a host name); the first runs the master. This node is the one whose
  // address is on one of its own interfaces.
  std::vector<std::string> nodes;
};

// Throws JobError bad_request when the request cannot work on this node (a
// job id that is not a number, a node without an IPv4 address, none of the
// nodes this one, a uid or gid without a name), before anything is started.
void check_shared_request(const SharedRequest& request);

// Starts what this node runs for the job, keeping what already runs (a
// start after this node's tierfs server was restarted starts only its
// chunkserver again). scratch: this node's job mount, which holds the
// chunks. Returns the job-wide mount point. Throws JobError: bad_request for
// an unusable request, shared_failed when MooseFS did not start (after
// stopping what this call started).
std::string start_shared(const NodeConfig& node, const SharedRequest& request,
                         const std::string& scratch);

// Stops only this node's chunkserver, whose chunk folder is on the job's
// scratch: before that scratch is unmounted and mounted again.
void stop_chunkserver(const NodeConfig& node, const std::string& job_id);

// Unmounts and stops everything of the job-wide scratch on this node and
// removes its state. Returns false when there was nothing. Throws JobError
// cleanup_left naming what could not be removed.
bool stop_shared(const NodeConfig& node, const std::string& job_id);

// The job-wide mount point, when it is mounted on this node.
std::optional<std::string> shared_mountpoint(const NodeConfig& node, const std::string& job_id);

}  // namespace tierfs::jobs
