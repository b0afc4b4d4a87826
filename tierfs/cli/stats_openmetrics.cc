// The OpenMetrics / Prometheus text exposition of `tierfs stats` (see
// stats_openmetrics.h). Every family's samples are written together, as both
// formats require, so the samples of all mounts are gathered first. The
// Prometheus 0.0.4 text is prometheus-cpp's TextSerializer's; OpenMetrics 1.0,
// which Debian 12's prometheus-cpp 1.0.1 cannot write, is written here.
#include "tierfs/cli/stats_openmetrics.h"

#include <fmt/core.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <concepts>
#include <cstdint>
#include <map>
#include <string_view>
#include <utility>

namespace tierfs {

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Kind { gauge, counter };

struct Sample {
  Labels labels;
  double value;
  std::string text;  // the exact value (a uint64_t counter may not fit a double)
};

struct Family {
  std::string name;  // without _total for counters
  Kind kind;
  std::string help;
  std::vector<Sample> samples;
};

class Exposition {
 public:
  void add(std::string_view name, Kind kind, std::string_view help, const Labels& labels,
           double value) {
    add_sample(name, kind, help, {labels, value, fmt::format("{}", value)});
  }
  template <std::unsigned_integral Count>
  void add(std::string_view name, Kind kind, std::string_view help, const Labels& labels,
           Count value) {
    add_sample(name, kind, help, {labels, static_cast<double>(value), std::to_string(value)});
  }

  std::string text(MetricsFormat format) const {
    return format == MetricsFormat::openmetrics ? openmetrics() : prometheus();
  }

 private:
  void add_sample(std::string_view name, Kind kind, std::string_view help, Sample sample) {
    auto [it, fresh] = index_.try_emplace(std::string(name), families_.size());
    if (fresh) families_.push_back({std::string(name), kind, std::string(help), {}});
    families_[it->second].samples.push_back(std::move(sample));
  }

  // Prometheus 0.0.4 names a counter family as its samples, with _total.
  std::string prometheus() const {
    std::vector<prometheus::MetricFamily> out;
    for (const Family& family : families_) {
      const bool counter = family.kind == Kind::counter;
      prometheus::MetricFamily f{
          counter ? family.name + "_total" : family.name,
          family.help,
          counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge,
          {}};
      for (const Sample& sample : family.samples) {
        prometheus::ClientMetric metric;
        for (const auto& [key, value] : sample.labels) metric.label.push_back({key, value});
        (counter ? metric.counter.value : metric.gauge.value) = sample.value;
        f.metric.push_back(std::move(metric));
      }
      out.push_back(std::move(f));
    }
    return prometheus::TextSerializer().Serialize(out);
  }

  // OpenMetrics 1.0: the counter family without _total, UNIT lines, # EOF.
  std::string openmetrics() const {
    std::string out;
    for (const Family& family : families_) {
      const bool counter = family.kind == Kind::counter;
      const std::string sample_name = counter ? family.name + "_total" : family.name;
      out += fmt::format("# HELP {} {}\n", family.name, family.help);
      out += fmt::format("# TYPE {} {}\n", family.name, counter ? "counter" : "gauge");
      // A unit must be the family name's suffix.
      for (std::string_view unit : {"bytes", "seconds"})
        if (family.name.ends_with(fmt::format("_{}", unit)))
          out += fmt::format("# UNIT {} {}\n", family.name, unit);
      for (const Sample& sample : family.samples) {
        out += sample_name;
        if (!sample.labels.empty()) {
          out += '{';
          for (size_t i = 0; i < sample.labels.size(); ++i)
            out += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", sample.labels[i].first,
                               escape_label_value(sample.labels[i].second));
          out += '}';
        }
        out += fmt::format(" {}\n", sample.text);
      }
    }
    return out + "# EOF\n";
  }

  std::vector<Family> families_;
  std::map<std::string, size_t> index_;
};

Labels with(Labels labels, std::string key, std::string value) {
  labels.emplace_back(std::move(key), std::move(value));
  return labels;
}

// Traffic of a tier or a region: counters that only grow while the mount lives.
template <typename Use>
void add_traffic(Exposition& out, std::string_view scope, const Labels& labels, const Use& use) {
  out.add(fmt::format("tierfs_{}_reads", scope), Kind::counter,
          fmt::format("Read requests that moved bytes in the {}.", scope), labels, use.reads);
  out.add(fmt::format("tierfs_{}_writes", scope), Kind::counter,
          fmt::format("Write requests that moved bytes in the {}.", scope), labels, use.writes);
  out.add(fmt::format("tierfs_{}_read_bytes", scope), Kind::counter,
          fmt::format("Bytes read from the {}.", scope), labels, use.bytes_read);
  out.add(fmt::format("tierfs_{}_written_bytes", scope), Kind::counter,
          fmt::format("Bytes written to the {}.", scope), labels, use.bytes_written);
}

void add_tier(Exposition& out, const Labels& mount, const inspect::TierUse& tier) {
  const Labels labels = with(mount, "tier", tier.name);
  out.add("tierfs_tier_capacity_bytes", Kind::gauge, "Capacity of the tier.", labels,
          tier.capacity_bytes);
  out.add("tierfs_tier_used_bytes", Kind::gauge, "Bytes of the tier in use (bad blocks included).",
          labels, tier.used_bytes);
  out.add("tierfs_tier_free_bytes", Kind::gauge, "Free bytes of the tier.", labels,
          tier.free_bytes);
  out.add("tierfs_tier_bad_bytes", Kind::gauge,
          "Bytes of the tier retired after a memory error in a copy.", labels, tier.bad_bytes);
  out.add("tierfs_tier_ways", Kind::gauge, "Regions the tier interleaves over.", labels, tier.ways);
  out.add("tierfs_tier_granularity_bytes", Kind::gauge, "Interleave granularity of the tier.",
          labels, tier.granularity_bytes);
  // On the kernel path the kernel moves the bytes (FUSE passthrough) and the
  // server counts none of them: no traffic series rather than zeros. Used
  // bytes come from the backing tmpfs.
  const bool kernel_path = tier.data_path == "kernel";
  out.add("tierfs_tier_kernel_path", Kind::gauge,
          "1 when the kernel moves the tier's bytes (FUSE passthrough): no traffic series then.",
          labels, kernel_path ? 1U : 0U);
  if (!kernel_path) add_traffic(out, "tier", labels, tier);
  out.add("tierfs_tier_migrated_in_bytes", Kind::counter, "Bytes migrations moved into the tier.",
          labels, tier.bytes_moved_in);
  out.add("tierfs_tier_migrated_out_bytes", Kind::counter,
          "Bytes migrations moved out of the tier.", labels, tier.bytes_moved_out);
  out.add("tierfs_tier_migrated_in_files", Kind::counter, "Files migrations moved into the tier.",
          labels, tier.files_moved_in);
  out.add("tierfs_tier_migrated_out_files", Kind::counter,
          "Files migrations moved out of the tier.", labels, tier.files_moved_out);
  if (tier.high_watermark != 0) {
    out.add("tierfs_tier_high_watermark_ratio", Kind::gauge,
            "Use of the tier above which the mover demotes.", labels, tier.high_watermark / 100.0);
    out.add("tierfs_tier_low_watermark_ratio", Kind::gauge,
            "Use of the tier the mover demotes down to.", labels, tier.low_watermark / 100.0);
  }
  for (const inspect::RegionUse& region : tier.regions) {
    Labels region_labels = with(labels, "region", region.spec);
    if (region.numa_node >= 0)
      region_labels = with(region_labels, "numa_node", std::to_string(region.numa_node));
    out.add("tierfs_region_capacity_bytes", Kind::gauge, "Capacity of the region.", region_labels,
            region.size_bytes);
    out.add("tierfs_region_used_bytes", Kind::gauge, "Bytes of the region in use.", region_labels,
            region.used_bytes);
    out.add("tierfs_region_free_bytes", Kind::gauge, "Free bytes of the region.", region_labels,
            region.free_bytes);
    if (!kernel_path) add_traffic(out, "region", region_labels, region);
  }
}

void add_mover(Exposition& out, const Labels& mount, const inspect::MoverState& mover) {
  // One sample per state, 1 for the current one: a state set as a gauge.
  constexpr std::array<std::string_view, 6> states = {"off",       "idle",   "demoting",
                                                      "promoting", "queued", "stopped"};
  bool known = false;
  for (std::string_view state : states) {
    known = known || state == mover.state;
    out.add("tierfs_mover_state", Kind::gauge, "1 for the state the mover is in, else 0.",
            with(mount, "state", std::string(state)), state == mover.state);
  }
  if (!known)
    out.add("tierfs_mover_state", Kind::gauge, "1 for the state the mover is in, else 0.",
            with(mount, "state", mover.state), 1U);
  out.add("tierfs_mover_rate_limit_bytes_per_second", Kind::gauge,
          "The mover's copy rate limit (0: unlimited).", mount, mover.rate_bytes_per_s);
  out.add("tierfs_mover_interval_seconds", Kind::gauge, "How often the mover checks watermarks.",
          mount, static_cast<double>(mover.interval_ms) / 1000.0);
  out.add("tierfs_mover_queued_requests", Kind::gauge, "Migration requests waiting.", mount,
          mover.queued);
  out.add("tierfs_mover_running_moves", Kind::gauge, "Migrations copying now.", mount,
          mover.in_flight);
  out.add("tierfs_mover_migrations", Kind::counter, "Migrations the mover completed.", mount,
          mover.migrations);
  out.add("tierfs_mover_failed_migrations", Kind::counter, "Migrations that failed.", mount,
          mover.failures);
}

void add_mount(Exposition& out, const Labels& mount, const inspect::Stats& stats) {
  out.add("tierfs_capacity_bytes", Kind::gauge, "Capacity of the mount (statfs).", mount,
          stats.capacity_bytes);
  out.add("tierfs_free_bytes", Kind::gauge, "Free bytes of the mount (statfs).", mount,
          stats.free_bytes);
  out.add("tierfs_inodes", Kind::gauge, "Inodes of the mount.", mount, stats.inodes);
  out.add("tierfs_xattrs", Kind::gauge, "Stored extended attributes.", mount, stats.xattrs);
  out.add("tierfs_xattr_bytes", Kind::gauge, "Bytes of the stored extended attributes.", mount,
          stats.xattr_bytes);
  for (const inspect::TierUse& tier : stats.tiers) add_tier(out, mount, tier);
  add_mover(out, mount, stats.mover);
  for (const auto& [op, count] : stats.ops)
    out.add("tierfs_operations", Kind::counter, "FUSE operations the server answered.",
            with(mount, "op", op), count);
  out.add("tierfs_bpf_program_attached", Kind::gauge,
          "1 when the iomap BPF program is attached, else 0.", mount, stats.bpf.program_attached);
  out.add("tierfs_bpf_map_update_errors", Kind::counter, "Failed updates of the BPF maps.", mount,
          stats.bpf.map_update_errors);
}

}  // namespace

std::string escape_label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string metrics_text(const std::vector<MountMetrics>& mounts, const std::string& node,
                         MetricsFormat format) {
  Exposition out;
  out.add("tierfs_mounts", Kind::gauge, "tierfs mounts of the node.", {{"node", node}},
          mounts.size());
  for (const MountMetrics& mount : mounts) {
    Labels labels{{"mount", mount.mountpoint}, {"node", node}};
    if (!mount.slurm_job_id.empty()) labels.emplace_back("slurm_job_id", mount.slurm_job_id);
    out.add("tierfs_up", Kind::gauge, "1 when the mount's server answered, 0 when it did not.",
            labels, mount.stats.has_value());
    if (mount.stats) add_mount(out, labels, *mount.stats);
  }
  return out.text(format);
}

}  // namespace tierfs
