// `tierfs stats --openmetrics` and `--prometheus`: the statistics of one or
// every tierfs mount of the node as the text formats monitoring reads: the
// Prometheus 0.0.4 text by prometheus-cpp's TextSerializer, OpenMetrics 1.0
// (which Debian 12's prometheus-cpp 1.0.1 cannot write) by a small writer to
// its specification; both checked by tests/integration/stats_openmetrics.sh
// with prometheus_client's parsers and node_exporter's textfile collector.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tierfs/core/inspect_schema.h"

namespace tierfs {

// OpenMetrics names a counter family without its _total suffix and ends with
// "# EOF"; Prometheus 0.0.4 (node_exporter's textfile collector reads only
// that) names the family as its samples and has no end marker.
enum class MetricsFormat { openmetrics, prometheus };

struct MountMetrics {
  std::string mountpoint;
  std::optional<inspect::Stats> stats;  // empty: the server did not answer (tierfs_up 0)
  std::string slurm_job_id;             // empty: not a job mount
};

// The exposition of `mounts` on host `node`: one family per quantity, its
// samples labelled mount, node, slurm_job_id (job mounts), tier, region,
// numa_node, op or state.
std::string metrics_text(const std::vector<MountMetrics>& mounts, const std::string& node,
                         MetricsFormat format);

// A label value escaped as both formats require (backslash, quote, newline).
std::string escape_label_value(const std::string& value);

}  // namespace tierfs
