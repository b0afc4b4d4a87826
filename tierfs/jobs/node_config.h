// The node configuration of per-job scratch (/etc/tierfs/node.toml): where
// job mounts go, which tiers they get, how large they are by default, the
// admission limits (how much of each NUMA node and DAX device all job mounts
// of the node may take together) and the job-wide scratch settings. Loading throws ConfigError
// ("FILE:LINE:COL: what").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "numa/topology.h"
#include "tierfs/core/config.h"

namespace tierfs::jobs {

struct AdmissionLimit {
  std::string region;  // "numa:N" or "dax:/dev/daxX.Y", as in a tier's regions
  uint64_t bytes = 0;  // all job mounts together may hold at most this much of it
  SourcePos pos;
};

// [shared]: job-wide scratch (`tierfs job start --shared`), one MooseFS file
// system per job whose chunks live on every node's job scratch.
struct SharedConfig {
  bool by_default = false;               // `default = true`: every job of several nodes gets it
  std::string base = "/scratch-shared";  // mounted at BASE/<job id> on every node
  std::string state_dir = "/run/tierfs-shared";  // daemons' configuration and metadata (local)
  unsigned port_base = 47400;                    // uses port_base .. port_base + 399
  unsigned goal = 2;                             // copies of every chunk (mfssetgoal)
  std::string empty_metadata = "/var/lib/mfs/metadata.mfs.empty";
  unsigned mount_timeout_s = 20;  // how long a node waits for the master to mount
  // mfsmount's mfsioretries: how often a read or write is retried before it
  // fails (MooseFS's default 30; a lost chunk reads ENXIO only after them).
  unsigned io_retries = 30;
};

struct NodeConfig {
  std::string source;             // file name, for messages
  std::string base = "/scratch";  // a job's scratch is BASE/<job id>
  std::string state_dir = "/run/tierfs";
  std::string mount_config;                  // tiers of a job mount; empty = the built-in default
  uint64_t default_size_bytes = 1ULL << 30;  // when the job asks for no size
  unsigned stop_timeout_s = 10;              // how long `job stop` waits for the server to exit
  std::vector<AdmissionLimit> limits;        // regions without a limit are not limited
  SharedConfig shared;
};

// Parses text as a node configuration; "80%" in [admission] is a share of the
// NUMA node's or DAX device's capacity as topology reports it.
NodeConfig parse_node_config(std::string_view text, const std::string& source_name,
                             const numa::Topology& topology);
NodeConfig load_node_config(const std::string& path, const numa::Topology& topology);

// The admission key of a region: "numa:N" or "dax:PATH"; empty for file:
// regions (disk or page cache, not memory the node's jobs compete for).
std::string admission_key(const numa::RegionSpec& spec);

}  // namespace tierfs::jobs
