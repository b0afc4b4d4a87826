// The node configuration of per-job scratch (/etc/tierfs/node.toml): where
// job mounts go, which tiers they get, how large they are by default, and the
// admission limits: how much of each NUMA node and DAX device all job mounts
// of the node may take together. Loading throws ConfigError ("FILE:LINE:COL: what").
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

struct NodeConfig {
  std::string source;             // file name, for messages
  std::string base = "/scratch";  // a job's scratch is BASE/<job id>
  std::string state_dir = "/run/tierfs";
  std::string mount_config;                  // tiers of a job mount; empty = the built-in default
  uint64_t default_size_bytes = 1ULL << 30;  // when the job asks for no size
  unsigned stop_timeout_s = 10;              // how long `job stop` waits for the server to exit
  std::vector<AdmissionLimit> limits;        // regions without a limit are not limited
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
