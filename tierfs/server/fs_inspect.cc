// The JSON behind the virtual xattrs: a file's extents with the regions and
// region byte ranges they touch (user.tierfs.map), and the mount's tiers,
// regions and operation counts (user.tierfs.stats), filled into the types of
// tierfs/core/inspect_schema.h that the readers parse back. Region ranges
// come from walking the extent with tierfs_map_extent, the one mapping function.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <vector>

#include "bpf/tierfs_map.h"
#include "tierfs/core/inspect_schema.h"
#include "tierfs/server/backing_store.h"
#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"

namespace tierfs {

namespace {

struct RegionSpan {
  uint64_t first = UINT64_MAX;
  uint64_t end = 0;
  uint64_t bytes = 0;
};

inspect::MapExtent extent_of(Storage& storage, const tierfs_extent& extent) {
  Tier& tier = storage.tier(extent.tier);
  const tierfs_layout& layout = tier.layout();
  std::map<uint32_t, RegionSpan> spans;
  uint64_t off = extent.file_offset;
  const uint64_t end = extent.file_offset + extent.length;
  while (off < end) {
    tierfs_mapping mapping{};
    if (tierfs_map_extent(&layout, &extent, off, &mapping) != TIERFS_MAP_OK || mapping.length == 0)
      break;
    RegionSpan& span = spans[mapping.region];
    span.first = std::min<uint64_t>(span.first, mapping.region_offset);
    span.end = std::max<uint64_t>(span.end, mapping.region_offset + mapping.length);
    span.bytes += mapping.length;
    off += mapping.length;
  }
  inspect::MapExtent out;
  for (const auto& [index, span] : spans) {
    // The layout's base is the region's device offset (the resolved
    // geometry), so spans are device offsets; region_offset counts from row 0.
    const uint64_t base = layout.base[index];
    out.regions.push_back({.index = index,
                           .spec = tier.region(index).spec().text,
                           .region_offset = span.first - base,
                           .region_end = span.end - base,
                           .device_offset = span.first,
                           .bytes = span.bytes});
  }
  out.file_offset = extent.file_offset;
  out.length = extent.length;
  out.tier = tier.name();
  out.tier_index = extent.tier;
  out.tier_address = extent.tier_address;
  out.granularity_bytes = tier.granularity_bytes();
  out.ways = tier.ways();
  out.weights.assign(layout.weights, layout.weights + layout.ways);
  out.unwritten = (extent.flags & TIERFS_EXTENT_UNWRITTEN) != 0;
  return out;
}

inspect::BpfState bpf_state(const BpfStatus& bpf) {
  return {.mode = feature_mode_name(bpf.mode),
          .maps_loaded = bpf.maps_loaded,
          .program_attached = bpf.program_attached,
          .server_path_reason = bpf.server_path_reason,
          .tiers_map_id = bpf.tiers_map_id,
          .inodes_map_id = bpf.inodes_map_id,
          .map_update_errors = bpf.map_update_errors};
}

}  // namespace

std::string extent_map_json(Fs& fs, const Inode& inode, size_t first_extent) {
  std::span<const tierfs_extent> all;
  if (!inode.data_released) all = inode.data->extents();
  inspect::MapPage page;
  page.ino = inode.ino;
  page.size = inode.size;
  page.allocated_bytes = inode.data_released ? 0 : inode.data->allocated_bytes();
  page.preferred_tier = fs.storage().tier(inode.data->preferred_tier()).name();
  page.data_path = data_path_name(fs.data_path_of(inode));
  if (!inode.data_released) page.size = inode.data->size(inode.size);
  page.extent_count = all.size();
  page.first_extent = first_extent;
  if (auto moving = fs.mover().progress(inode.ino))
    page.migration = inspect::MapMigration{fs.storage().tier(moving->to_tier).name(),
                                           moving->copied_bytes, moving->total_bytes};
  if (inode.held_move_tier >= 0)
    page.held_move_tier = fs.storage().tier(static_cast<uint32_t>(inode.held_move_tier)).name();
  size_t bytes = nlohmann::json(page).dump().size() + 64;
  for (size_t i = first_extent; i < all.size(); ++i) {
    inspect::MapExtent extent = extent_of(fs.storage(), all[i]);
    size_t extent_bytes = nlohmann::json(extent).dump().size() + 1;
    if (bytes + extent_bytes > map_page_bytes && i > first_extent) {
      page.next_extent = i;
      break;
    }
    bytes += extent_bytes;
    page.extents.push_back(std::move(extent));
  }
  return nlohmann::json(page).dump();
}

// A region's weight in its tier's interleave (1 when the weights are equal).
static uint64_t region_weight(const Fs& fs, size_t tier, size_t region) {
  const std::vector<uint32_t>& weights = fs.config().tiers[tier].weights;
  return region < weights.size() && weights[region] != 0 ? weights[region] : 1;
}

std::string stats_json(Fs& fs, bool full) {
  inspect::Stats stats;
  const Fs::Space space = fs.space();
  stats.capacity_bytes = space.capacity_bytes;
  stats.free_bytes = space.free_bytes;
  stats.inodes = fs.inode_count();
  if (!full) return nlohmann::json(stats).dump();
  const MoverStatus mover = fs.mover().status();
  stats.mover = {.state = mover.state,
                 .rate_bytes_per_s = mover.rate_bytes_per_s,
                 .interval_ms = mover.interval_ms,
                 .promote_reads = mover.promote_reads,
                 .queued = mover.queued,
                 .in_flight = mover.in_flight,
                 .migrations = mover.migrations,
                 .failures = mover.failures};
  const std::vector<uint64_t> kernel_used = fs.kernel_tier_used();
  const std::vector<int> spills = fs.mover().kernel_spills();
  for (const TierStats& tier : fs.storage().stats()) {
    const size_t index = stats.tiers.size();
    inspect::TierUse& use = stats.tiers.emplace_back();
    use.high_watermark = fs.config().tiers[index].high_watermark;
    use.low_watermark = fs.config().tiers[index].low_watermark;
    use.bytes_moved_in = mover.tiers[index].bytes_in;
    use.bytes_moved_out = mover.tiers[index].bytes_out;
    use.files_moved_in = mover.tiers[index].files_in;
    use.files_moved_out = mover.tiers[index].files_out;
    for (const RegionStats& region : tier.regions)
      use.regions.push_back(
          {.spec = region.spec,
           .size_bytes = region.size_bytes,
           .used_bytes = region.used_bytes,
           .free_bytes = region.size_bytes - std::min(region.size_bytes, region.used_bytes),
           .numa_node = region.numa_node,
           .reads = region.reads,
           .writes = region.writes,
           .bytes_read = region.bytes_read,
           .bytes_written = region.bytes_written});
    use.name = tier.name;
    use.granularity_bytes = tier.granularity_bytes;
    use.ways = tier.ways;
    use.row_bytes = tier.row_bytes;
    use.capacity_bytes = tier.capacity_bytes;
    use.used_bytes = tier.used_bytes;
    use.free_bytes = tier.capacity_bytes - std::min(tier.capacity_bytes, tier.used_bytes);
    use.reads = tier.reads;
    use.writes = tier.writes;
    use.bytes_read = tier.bytes_read;
    use.bytes_written = tier.bytes_written;
    use.bad_bytes = tier.bad_bytes;
    use.persistent = tier.persistent;
    const DataPathChoice& path = fs.config().tiers[index].data_path_choice;
    use.data_path = data_path_name(path.path);
    use.data_path_reason = path.reason;
    if (path.path == DataPath::kernel) {
      // The tier's files' backing bytes; per node in the proportions its
      // policy places them (`tierfs map --pages` measures one file).
      use.kernel_path_used_bytes = kernel_used[index];
      if (index < spills.size() && spills[index] >= 0)
        use.kernel_path_spills_to = fs.config().tiers[spills[index]].name;
      use.used_bytes = kernel_used[index];
      use.free_bytes = tier.capacity_bytes - std::min(tier.capacity_bytes, use.used_bytes);
      uint64_t weights = 0;
      for (size_t r = 0; r < use.regions.size(); ++r) weights += region_weight(fs, index, r);
      for (size_t r = 0; r < use.regions.size() && weights != 0; ++r) {
        inspect::RegionUse& region = use.regions[r];
        region.used_bytes = kernel_used[index] / weights * region_weight(fs, index, r);
        region.free_bytes = region.size_bytes - std::min(region.size_bytes, region.used_bytes);
      }
    }
  }
  for (unsigned i = 0; i < static_cast<unsigned>(Op::count_); ++i)
    stats.ops[op_name(static_cast<Op>(i))] = fs.op_count(static_cast<Op>(i));
  stats.xattrs = fs.xattr_count();
  stats.xattr_bytes = fs.xattr_bytes();
  stats.bpf = bpf_state(fs.bpf_status());
  return nlohmann::json(stats).dump();
}

}  // namespace tierfs
