// The configuration against the machine: regions that exist and are large
// enough, no two regions sharing bytes, and every tier's size resolved to a
// whole number of rows. Also the built-in default and the effective
// configuration written back as TOML.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <filesystem>
#include <limits>
#include <sstream>

#include "numa/region_claim.h"
#include "numa/region_trust.h"
#include "tierfs/core/config_internal.h"
#include "tierfs/core/units.h"

namespace tierfs {

tierfs_layout tier_layout(const TierConfig& tier) {
  tierfs_layout layout{};
  layout.ways = static_cast<uint32_t>(std::min<size_t>(tier.regions.size(), TIERFS_MAX_WAYS));
  layout.granularity_shift = static_cast<uint32_t>(std::countr_zero(tier.granularity_bytes));
  for (uint32_t i = 0; i < layout.ways; ++i) {
    layout.weights[i] = static_cast<uint8_t>(tier.weights.empty() ? 1 : tier.weights[i]);
    layout.base[i] = tier.regions[i].offset_bytes;
  }
  return layout;
}

TierGeometry tier_geometry(const TierConfig& tier, uint64_t rows) {
  std::vector<numa::RegionSpec> specs;
  for (const TierRegion& region : tier.regions) specs.push_back(region.spec);
  return make_geometry(tier.name, tier_layout(tier), std::move(specs), rows);
}

namespace config_detail {

void resolve_data_paths(const Reader& reader, Config& config, const KernelFacts& facts) {
  std::vector<DataPathChoice> choices = choose_data_paths(config.tiers, config.mount, facts);
  for (size_t i = 0; i < config.tiers.size(); ++i) {
    TierConfig& tier = config.tiers[i];
    if (tier.data_path == DataPathMode::kernel && choices[i].path != DataPath::kernel)
      reader.fail(tier.data_path_pos,
                  fmt::format("tier \"{}\" cannot have data_path \"kernel\": {}", tier.name,
                              choices[i].reason));
    tier.data_path_choice = std::move(choices[i]);
  }
}

namespace {

constexpr uint64_t kUnbounded = std::numeric_limits<uint64_t>::max();

// A trust refusal names its path; the region's own path needs no second mention.
std::string without_own_path(std::string_view what, const std::string& path) {
  const std::string own = path + ": ";
  if (what.starts_with(own)) what.remove_prefix(own.size());
  return std::string(what);
}

// Files that mount would create or grow: the file system must take their
// final size (offset + bytes), checked as Region::open will size them.
void check_created_sizes(const Reader& reader, const TierConfig& tier) {
  if (!tier.create_files) return;
  for (size_t i = 0; i < tier.regions.size(); ++i) {
    const TierRegion& region = tier.regions[i];
    if (region.spec.kind != numa::RegionKind::file) continue;
    const uint64_t bytes = tier.geometry.regions[i].bytes;
    const std::string what =
        fmt::format("region \"{}\" of tier \"{}\"", region.spec.text, tier.name);
    if (region.offset_bytes > std::numeric_limits<int64_t>::max() - bytes)
      reader.fail(region.pos,
                  fmt::format("{}: offset {} and size {} are past the largest file", what,
                              format_size(region.offset_bytes), format_size(bytes)));
    try {
      numa::check_trusted(region.spec.path, numa::BackingKind::file_or_block, true,
                          region.offset_bytes + bytes);
    } catch (const std::runtime_error& e) {
      reader.fail(region.pos,
                  fmt::format("{}: {}", what, without_own_path(e.what(), region.spec.path)));
    }
  }
}

// Bytes a region can hold from its offset; kUnbounded when it will be created or grown.
uint64_t region_capacity(const Reader& reader, const TierConfig& tier, const TierRegion& region,
                         const numa::Topology& topology) {
  const numa::RegionSpec& spec = region.spec;
  const std::string what = fmt::format("region \"{}\" of tier \"{}\"", spec.text, tier.name);
  switch (spec.kind) {
    case numa::RegionKind::numa: {
      const numa::NumaNode* node = topology.node(spec.node);
      if (node == nullptr)
        reader.fail(region.pos, fmt::format("{}: NUMA node {} does not exist or has no memory",
                                            what, spec.node));
      return node->total_bytes;
    }
    case numa::RegionKind::dax: {
      const numa::DaxDevice* dax = topology.dax(spec.path);
      if (dax == nullptr) reader.fail(region.pos, fmt::format("{}: no such DAX device", what));
      if (dax->mode != "devdax")
        reader.fail(region.pos,
                    fmt::format("{}: device is in {} mode, tierfs needs devdax", what, dax->mode));
      if (dax->align_bytes != 0 && region.offset_bytes % dax->align_bytes != 0)
        reader.fail(region.pos,
                    fmt::format("{}: offset {} is not a multiple of the device alignment {}", what,
                                format_size(region.offset_bytes), format_size(dax->align_bytes)));
      if (region.offset_bytes >= dax->size_bytes)
        reader.fail(region.pos,
                    fmt::format("{}: offset {} is past the end of the {} device", what,
                                format_size(region.offset_bytes), format_size(dax->size_bytes)));
      return dax->size_bytes - region.offset_bytes;
    }
    case numa::RegionKind::file: {
      if (region.offset_bytes % 4096 != 0)
        reader.fail(region.pos, fmt::format("{}: offset {} is not a multiple of 4KiB", what,
                                            format_size(region.offset_bytes)));
      // The trust, type and lock rules of Region::open, without creating anything.
      numa::TrustedCheck found;
      try {
        found =
            numa::check_trusted(spec.path, numa::BackingKind::file_or_block, tier.create_files, 0);
      } catch (const std::runtime_error& e) {
        reader.fail(region.pos, fmt::format("{}: {}", what, without_own_path(e.what(), spec.path)));
      }
      // A file tierfs did not make, refused before anything sizes it (the
      // mount decides devices and files without xattrs: it has the records).
      if (found.exists && !found.block && found.signature == numa::FileSignature::absent &&
          !region.take_over)
        reader.fail(region.pos,
                    fmt::format("{}: {}", what, numa::foreign_file_refusal(found.signature)));
      if (!found.exists || (!found.block && tier.create_files)) return kUnbounded;  // grown to fit
      const uint64_t size = found.size_bytes;
      if (region.offset_bytes >= size)
        reader.fail(region.pos, fmt::format("{}: offset {} is past the end of the {} file", what,
                                            format_size(region.offset_bytes), format_size(size)));
      return size - region.offset_bytes;
    }
  }
  return 0;
}

void resolve_tier_size(const Reader& reader, TierConfig& tier, const numa::Topology& topology) {
  for (size_t i = 0; i < tier.regions.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (tier.regions[i].spec.kind == numa::RegionKind::numa &&
          tier.regions[j].spec.kind == numa::RegionKind::numa &&
          tier.regions[i].spec.node == tier.regions[j].spec.node)
        reader.fail(tier.regions[i].pos, fmt::format("tier \"{}\" names NUMA node {} twice",
                                                     tier.name, tier.regions[i].spec.node));
  const tierfs_layout layout = tier_layout(tier);
  const uint64_t row = tierfs_row_bytes(&layout);
  std::vector<uint64_t> capacity;
  for (const TierRegion& region : tier.regions)
    capacity.push_back(region_capacity(reader, tier, region, topology));

  uint64_t rows = 0;
  if (tier.size_bytes != 0) {
    rows = tier.size_bytes / row;
    if (rows == 0)
      reader.fail(tier.size_pos,
                  fmt::format("size {} of tier \"{}\" is smaller than one row ({})",
                              format_size(tier.size_bytes), tier.name, format_size(row)));
  } else {
    rows = kUnbounded;
    for (size_t i = 0; i < tier.regions.size(); ++i) {
      if (capacity[i] == kUnbounded || tier.regions[i].spec.kind == numa::RegionKind::numa)
        reader.fail(tier.pos,
                    fmt::format("tier \"{}\" needs a size: region \"{}\" has no size of its own",
                                tier.name, tier.regions[i].spec.text));
      rows = std::min<uint64_t>(
          rows, capacity[i] / tierfs_region_row_bytes(&layout, static_cast<uint32_t>(i)));
    }
    if (rows == 0)
      reader.fail(tier.pos, fmt::format("the regions of tier \"{}\" hold less than one row ({})",
                                        tier.name, format_size(row)));
  }
  for (size_t i = 0; i < tier.regions.size(); ++i) {
    const uint64_t per_row = tierfs_region_row_bytes(&layout, static_cast<uint32_t>(i));
    if (capacity[i] != kUnbounded && rows > capacity[i] / per_row)
      reader.fail(
          tier.size_pos,
          fmt::format("size {} of tier \"{}\" needs {} of region \"{}\", which holds {}",
                      format_size(tier.size_bytes), tier.name, format_size_approx(rows * per_row),
                      tier.regions[i].spec.text, format_size_approx(capacity[i])));
  }
  tier.geometry = tier_geometry(tier, rows);
  tier.size_bytes = tier.geometry.capacity_bytes;
  check_created_sizes(reader, tier);
}

struct ClaimedRange {
  std::string key;  // device or canonical file path
  uint64_t begin, end;
  const TierRegion* region;
  std::string tier;
};

void refuse_overlaps(const Reader& reader, const Config& config) {
  std::vector<ClaimedRange> claims;
  for (const TierConfig& tier : config.tiers)
    for (size_t i = 0; i < tier.regions.size(); ++i) {
      const numa::RegionSpec& spec = tier.regions[i].spec;
      if (spec.kind == numa::RegionKind::numa) continue;
      std::string key = spec.path;
      if (spec.kind == numa::RegionKind::file) {
        // The error_code form: a path the system refuses (too long, ...) is bad input, not a crash.
        std::error_code error;
        key = std::filesystem::weakly_canonical(spec.path, error).string();
        if (error)
          reader.fail(tier.regions[i].pos,
                      fmt::format("region \"{}\" of tier \"{}\": cannot resolve the path: {}",
                                  spec.text, tier.name, error.message()));
      }
      const RegionGeometry& range = tier.geometry.regions[i];
      const uint64_t begin = range.offset_bytes;
      const uint64_t end = begin + range.bytes;
      for (const ClaimedRange& other : claims)
        if (other.key == key && begin < other.end && other.begin < end)
          reader.fail(
              tier.regions[i].pos,
              fmt::format("region \"{}\" of tier \"{}\" overlaps region \"{}\" of tier \"{}\" "
                          "({} from offset {})",
                          spec.text, tier.name, other.region->spec.text, other.tier,
                          format_size_approx(other.end - other.begin), format_size(other.begin)));
      claims.push_back({key, begin, end, &tier.regions[i], tier.name});
    }
}

}  // namespace

void validate_against_machine(const Reader& reader, Config& config,
                              const numa::Topology& topology) {
  if (!config.mount.state_dir.empty()) {
    // The rules MountState::open applies, without creating anything.
    try {
      numa::check_trusted_dir(config.mount.state_dir);
    } catch (const std::runtime_error& e) {
      reader.fail(config.mount.state_dir_pos, fmt::format("state_dir: {}", e.what()));
    }
  }
  for (TierConfig& tier : config.tiers) resolve_tier_size(reader, tier, topology);
  refuse_overlaps(reader, config);
}

}  // namespace config_detail

Config default_config(const numa::Topology& topology) {
  Config config;
  config.source = kBuiltinDefaultSource;
  TierConfig tier;
  tier.name = "dram";
  uint64_t free_bytes = 0;
  for (const numa::NumaNode& node : topology.nodes) {
    numa::RegionSpec spec;
    spec.kind = numa::RegionKind::numa;
    spec.node = node.id;
    spec.text = fmt::format("numa:{}", node.id);
    tier.regions.push_back(TierRegion{spec, 0, SourcePos{}});
    free_bytes += node.free_bytes;
    if (tier.regions.size() == TIERFS_MAX_WAYS) break;
  }
  if (tier.regions.size() >= 2) tier.weights.assign(tier.regions.size(), 1);
  // A quarter of free memory leaves the job that mounts the scratch space room to run.
  const tierfs_layout layout = tier_layout(tier);
  tier.geometry =
      tier_geometry(tier, std::max<uint64_t>(1, free_bytes / 4 / tierfs_row_bytes(&layout)));
  tier.size_bytes = tier.geometry.capacity_bytes;
  config.default_tier = tier.name;
  config.tiers.push_back(std::move(tier));
  config.tiers.front().data_path_choice =
      choose_data_paths(config.tiers, config.mount, probe_kernel_facts()).front();
  return config;
}

const char* feature_mode_name(FeatureMode mode) {
  switch (mode) {
    case FeatureMode::off:
      return "off";
    case FeatureMode::required:
      return "required";
    case FeatureMode::automatic:
      break;
  }
  return "auto";
}

std::string to_toml(const Config& config) {
  toml::table mount{
      {"cache", config.mount.cache == CacheMode::none ? "none" : "kernel"},
      {"allow_other", config.mount.allow_other},
      {"default_permissions", config.mount.default_permissions},
      {"max_io", format_size(config.mount.max_io_bytes)},
      {"threads", static_cast<int64_t>(config.mount.threads)},
      {"bpf", feature_mode_name(config.mount.bpf)},
      {"io_uring", feature_mode_name(config.mount.io_uring)},
      {"fsname", config.mount.fsname},
      {"sandbox", config.mount.sandbox},
      {"set_node_weights", config.mount.set_node_weights},
      {"kernel_path_headroom", static_cast<int64_t>(config.mount.kernel_path_headroom)},
  };
  if (!config.mount.state_dir.empty()) mount.insert("state_dir", config.mount.state_dir);
  toml::array tiers;
  for (const TierConfig& tier : config.tiers) {
    toml::array regions;
    for (const TierRegion& region : tier.regions) {
      if (region.offset_bytes == 0 && !region.take_over) {
        regions.push_back(region.spec.text);
        continue;
      }
      toml::table table{{"region", region.spec.text}};
      if (region.offset_bytes != 0) table.insert("offset", format_size(region.offset_bytes));
      if (region.take_over) table.insert("take_over", true);
      regions.push_back(std::move(table));
    }
    toml::table t{{"name", tier.name},
                  {"regions", std::move(regions)},
                  {"size", format_size(tier.size_bytes)},
                  {"granularity", format_size(tier.granularity_bytes)},
                  {"hugepages", tier.hugepages},
                  {"create", tier.create_files},
                  {"persistent", tier.persistent},
                  {"data_path", data_path_mode_name(tier.data_path)}};
    if (tier.high_watermark != 0) {
      t.insert("high_watermark", static_cast<int64_t>(tier.high_watermark));
      t.insert("low_watermark", static_cast<int64_t>(tier.low_watermark));
    }
    if (!tier.weights.empty()) {
      toml::array weights;
      for (uint32_t w : tier.weights) weights.push_back(static_cast<int64_t>(w));
      t.insert("weights", std::move(weights));
    }
    tiers.push_back(std::move(t));
  }
  toml::table root{{"mount", std::move(mount)}, {"tier", std::move(tiers)}};
  if (!config.placement.empty()) {
    toml::array rules;
    for (const PlacementRule& rule : config.placement) {
      toml::table r{{"tier", rule.tier}};
      if (!rule.path_glob.empty()) r.insert("path", rule.path_glob);
      if (rule.min_size_bytes) r.insert("min_size", format_size(*rule.min_size_bytes));
      if (rule.pin) r.insert("pin", true);
      rules.push_back(std::move(r));
    }
    root.insert("placement", std::move(rules));
  }
  root.insert("defaults", toml::table{{"tier", config.default_tier}});
  root.insert("mover",
              toml::table{{"rate", format_size(config.mover.rate_bytes_per_s)},
                          {"interval_ms", static_cast<int64_t>(config.mover.interval_ms)},
                          {"promote_reads", static_cast<int64_t>(config.mover.promote_reads)}});
  std::ostringstream out;
  out << "# tierfs effective configuration of " << config.source << "\n" << root << "\n";
  // Which path each tier takes is resolved, not configured: comments, so that
  // the output still reads back as the same configuration.
  out << "\n# data paths\n";
  for (const TierConfig& tier : config.tiers)
    out << "# tier \"" << tier.name << "\": " << data_path_name(tier.data_path_choice.path)
        << " path: " << tier.data_path_choice.reason << "\n";
  return out.str();
}

}  // namespace tierfs
