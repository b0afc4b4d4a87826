// The TOML configuration of a tierfs mount: mount options, tiers, placement
// rules and defaults, as loaded and validated. Loading throws ConfigError,
// whose message is exactly one line "FILE:LINE:COLUMN: what is wrong".
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/tierfs_map.h"
#include "numa/region.h"
#include "numa/topology.h"
#include "tierfs/core/data_path.h"
#include "tierfs/core/geometry.h"

namespace tierfs {

struct SourcePos {
  int line = 0;  // 1-based; 0 when the value did not come from a file
  int column = 0;
};

enum class CacheMode { none, kernel };
// A kernel feature the mount uses when it can ("auto"), never, or insists on.
enum class FeatureMode { automatic, off, required };
// The spelling of a mode in the configuration: "auto", "off" or "required".
const char* feature_mode_name(FeatureMode mode);

struct MountOptions {
  CacheMode cache = CacheMode::none;
  bool allow_other = false;
  bool default_permissions = true;
  uint64_t max_io_bytes = 1 << 20;  // max_read / max_write
  unsigned threads = 0;             // FUSE worker threads, 0 = libfuse default
  FeatureMode bpf = FeatureMode::automatic;
  // FUSE over io_uring (libfuse 3.18 and the kernel's fuse.enable_uring):
  // requests and replies through per-core rings instead of /dev/fuse reads.
  FeatureMode io_uring = FeatureMode::automatic;
  std::string fsname = "tierfs";
  // Least privilege once mounted (tierfs/server/privilege.h); false keeps
  // every capability and no filter, for debugging with strace or gdb.
  bool sandbox = true;
  // Weighted kernel-path tiers need /sys/kernel/mm/mempolicy/weighted_interleave/nodeN,
  // which are system-wide: tierfs writes them only when this says it may.
  bool set_node_weights = false;
  // How far past their capacities kernel-path tiers sharing a tmpfs may
  // grow together while the tiers below them have room (percent of those
  // capacities; tierfs/server/backing_store.h sizes the tmpfs with it).
  unsigned kernel_path_headroom = 25;
  // Where the mount keeps its state (lock, shared-memory names, metadata log);
  // empty: /run/tierfs/<key> (root) or $XDG_RUNTIME_DIR/tierfs/<key>, see MountState.
  std::string state_dir;
  SourcePos state_dir_pos;
};

struct TierRegion {
  numa::RegionSpec spec;
  uint64_t offset_bytes = 0;  // the configured `offset`: where tierfs's range starts in the device
  SourcePos pos;
  // file: only: an existing file or device that is not tierfs's (no
  // signature, a file system on it) is taken over, its contents lost.
  bool take_over = false;
};

struct TierConfig {
  std::string name;
  std::vector<TierRegion> regions;
  uint64_t size_bytes = 0;  // total capacity across the regions; 0 = all the devices hold
  uint64_t granularity_bytes = 2 << 20;
  std::vector<uint32_t> weights;  // one per region; empty = equal weights
  bool hugepages = false;
  bool create_files = false;  // file: regions are created and sized when missing
  // file:/dax: only: the regions keep their contents across unmount (and, with
  // the metadata in [mount] state_dir, across reboots); never punched or zeroed at unmount.
  bool persistent = false;
  // Percent of capacity: past the high mark the mover demotes the coldest
  // files to the next tier until the tier is under the low mark; under the
  // low mark it promotes files read often from the next tier. 0: no marks.
  unsigned high_watermark = 0;
  unsigned low_watermark = 0;
  DataPathMode data_path = DataPathMode::automatic;
  SourcePos data_path_pos;
  SourcePos pos;
  SourcePos size_pos;  // where "size" stood, for messages about it
  // Resolved once by validation (size_bytes is then geometry.capacity_bytes);
  // everything after validation reads rows, region ranges and the layout here.
  TierGeometry geometry;
  // Resolved once by validation (data_path.h): the path this tier's files take and why.
  DataPathChoice data_path_choice;
};

struct PlacementRule {
  std::string path_glob;  // fnmatch(3) pattern against the path from the mount root
  std::optional<uint64_t> min_size_bytes;  // applies when the size hint is at least this
  std::string tier;
  bool pin = false;  // the mover never moves a file this rule matches
  SourcePos pos;
};

// [mover]: the background thread that moves files between tiers by watermark.
struct MoverOptions {
  uint64_t rate_bytes_per_s = uint64_t{256} << 20;  // its copies together; 0 = no limit
  uint64_t interval_ms = 1000;  // between looks at the tiers; read scores halve each
  unsigned promote_reads = 8;   // read score from which a file on a lower tier is hot
};

struct Config {
  std::string source;  // file name, or kBuiltinDefaultSource
  MountOptions mount;
  std::vector<TierConfig> tiers;  // ranked: fastest first; spill goes down the list
  std::vector<PlacementRule> placement;
  std::string default_tier;
  MoverOptions mover;

  const TierConfig* tier(std::string_view name) const;
  bool any_persistent() const;
  // A tier with file: or dax: regions, whose bytes can outlive the machine
  // (numa: memory cannot): the metadata log must then reach storage at fsync.
  bool any_bytes_outlive_machine() const;
  int tier_index(std::string_view name) const;  // -1 when absent
};

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, SourcePos pos, const std::string& what);
  const std::string& file() const { return file_; }
  SourcePos pos() const { return pos_; }

 private:
  std::string file_;
  SourcePos pos_;
};

// Parses and validates text as a tierfs configuration. Checks that need the
// machine (NUMA nodes exist, devices exist and are large enough) use topology.
// Config::source of default_config(): no file behind it.
inline constexpr const char* kBuiltinDefaultSource = "<built-in default>";

Config parse_config(std::string_view text, const std::string& source_name,
                    const numa::Topology& topology);
Config load_config(const std::string& path, const numa::Topology& topology);
// The same with the kernel's facts given (tests); the others probe this machine.
Config parse_config(std::string_view text, const std::string& source_name,
                    const numa::Topology& topology, const KernelFacts& facts);

// The built-in default: one DRAM tier interleaved over every NUMA node with
// memory, sized to a safe share of their free memory.
Config default_config(const numa::Topology& topology);

// The effective configuration as TOML, every default spelled out.
std::string to_toml(const Config& config);

// The layout bpf/tierfs_map.h computes with: ways, granularity, weights
// (empty = all 1) and base[i] = region i's configured device offset.
tierfs_layout tier_layout(const TierConfig& tier);
// The geometry of `rows` rows of the tier. Validation calls it once and
// stores the result in tier.geometry; code that builds a TierConfig without
// validation (tests, benchmarks) calls it the same way.
TierGeometry tier_geometry(const TierConfig& tier, uint64_t rows);

}  // namespace tierfs
