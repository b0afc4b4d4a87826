// The JSON behind the virtual xattrs: a file's extents with the regions and
// region byte ranges they touch (user.tierfs.map), and the mount's tiers,
// regions and operation counts (user.tierfs.stats). Region ranges come from
// walking the extent with tierfs_map_extent, the one mapping function.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <vector>

#include "bpf/tierfs_map.h"
#include "tierfs/server/operations.h"

namespace tierfs {

namespace {

struct RegionSpan {
  uint64_t first = UINT64_MAX;
  uint64_t end = 0;
  uint64_t bytes = 0;
};

nlohmann::json extent_json(Storage& storage, const tierfs_extent& extent) {
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
  nlohmann::json regions = nlohmann::json::array();
  for (const auto& [index, span] : spans) {
    const numa::RegionSpec& spec = tier.region(index).spec();
    regions.push_back({{"index", index},
                       {"spec", spec.text},
                       {"region_offset", span.first},
                       {"region_end", span.end},
                       // where region_offset is inside the device or file (its `offset` added)
                       {"device_offset", spec.offset_bytes + span.first},
                       {"bytes", span.bytes}});
  }
  const std::vector<unsigned> weights(layout.weights, layout.weights + layout.ways);
  return {{"file_offset", extent.file_offset},
          {"length", extent.length},
          {"tier", tier.name()},
          {"tier_index", extent.tier},
          {"first_row", extent.first_row},
          {"rows", tierfs_extent_rows(&layout, &extent)},
          {"granularity_bytes", tier.granularity_bytes()},
          {"ways", tier.ways()},
          {"weights", weights},
          {"unwritten", (extent.flags & TIERFS_EXTENT_UNWRITTEN) != 0},
          {"regions", std::move(regions)}};
}

nlohmann::json bpf_json(const BpfStatus& bpf) {
  return {
      {"mode", bpf_mode_name(bpf.mode)},           {"maps_loaded", bpf.maps_loaded},
      {"program_attached", bpf.program_attached},  {"server_path_reason", bpf.server_path_reason},
      {"tiers_map_id", bpf.tiers_map_id},          {"inodes_map_id", bpf.inodes_map_id},
      {"map_update_errors", bpf.map_update_errors}};
}

}  // namespace

std::string extent_map_json(Fs& fs, const Inode& inode, size_t first_extent) {
  std::span<const tierfs_extent> all;
  if (!inode.data_released) all = inode.data->extents();
  uint32_t preferred = inode.data->preferred_tier();
  nlohmann::json doc = {
      {"ino", inode.ino},
      {"size", inode.size},
      {"allocated_bytes", inode.data_released ? 0 : inode.data->allocated_bytes()},
      {"preferred_tier", fs.storage().tier(preferred).name()},
      {"extent_count", all.size()},
      {"first_extent", first_extent},
      {"extents", nlohmann::json::array()}};
  size_t bytes = doc.dump().size() + 64;
  for (size_t i = first_extent; i < all.size(); ++i) {
    nlohmann::json extent = extent_json(fs.storage(), all[i]);
    size_t extent_bytes = extent.dump().size() + 1;
    if (bytes + extent_bytes > map_page_bytes && i > first_extent) {
      doc["next_extent"] = i;
      break;
    }
    bytes += extent_bytes;
    doc["extents"].push_back(std::move(extent));
  }
  return doc.dump();
}

std::string stats_json(Fs& fs) {
  nlohmann::json tiers = nlohmann::json::array();
  for (const TierStats& tier : fs.storage().stats()) {
    nlohmann::json regions = nlohmann::json::array();
    for (const RegionStats& region : tier.regions)
      regions.push_back(
          {{"spec", region.spec},
           {"size_bytes", region.size_bytes},
           {"used_bytes", region.used_bytes},
           {"free_bytes", region.size_bytes - std::min(region.size_bytes, region.used_bytes)},
           {"numa_node", region.numa_node}});
    tiers.push_back(
        {{"name", tier.name},
         {"granularity_bytes", tier.granularity_bytes},
         {"ways", tier.ways},
         {"row_bytes", tier.row_bytes},
         {"capacity_bytes", tier.capacity_bytes},
         {"used_bytes", tier.used_bytes},
         {"free_bytes", tier.capacity_bytes - std::min(tier.capacity_bytes, tier.used_bytes)},
         {"reads", tier.reads},
         {"writes", tier.writes},
         {"bytes_read", tier.bytes_read},
         {"bytes_written", tier.bytes_written},
         {"regions", std::move(regions)}});
  }
  nlohmann::json ops = nlohmann::json::object();
  for (unsigned i = 0; i < static_cast<unsigned>(Op::count_); ++i)
    ops[op_name(static_cast<Op>(i))] = fs.op_count(static_cast<Op>(i));
  nlohmann::json doc = {{"capacity_bytes", fs.storage().capacity_bytes()},
                        {"free_bytes", fs.storage().free_bytes()},
                        {"inodes", fs.inode_count()},
                        {"tiers", std::move(tiers)},
                        {"ops", std::move(ops)},
                        {"bpf", bpf_json(fs.bpf_status())}};
  return doc.dump();
}

}  // namespace tierfs
