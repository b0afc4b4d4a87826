// The JSON documents behind the virtual xattrs, as types: a page of a file's
// extent map (user.tierfs.map, user.tierfs.map@N) and the mount's statistics
// (user.tierfs.stats). The server writes them and `tierfs map`/`tierfs stats`,
// the tests and the VM probe read them through these same structs, so a key
// is spelled once. Header-only over nlohmann's type macros: readers need no
// FUSE and no server code. A reader throws on a missing key (json::at), so a
// document that lost a field fails loudly instead of reading as zero.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tierfs::inspect {

// The part of an extent that lies in one region of its tier.
struct MapRegion {
  uint32_t index = 0;
  std::string spec;
  uint64_t region_offset = 0;  // first byte in the region
  uint64_t region_end = 0;     // one past the last byte in the region
  uint64_t device_offset =
      0;               // region_offset inside the device or file (the region's offset added)
  uint64_t bytes = 0;  // bytes of the extent in this region
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MapRegion, index, spec, region_offset, region_end, device_offset,
                                   bytes)

struct MapExtent {
  uint64_t file_offset = 0;
  uint64_t length = 0;
  std::string tier;
  uint32_t tier_index = 0;
  uint64_t tier_address = 0;  // where the extent starts in the tier's interleaved address space
  uint64_t granularity_bytes = 0;
  uint32_t ways = 0;
  std::vector<unsigned> weights;
  bool unwritten = false;
  std::vector<MapRegion> regions;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MapExtent, file_offset, length, tier, tier_index, tier_address,
                                   granularity_bytes, ways, weights, unwritten, regions)

// One page of user.tierfs.map: the extents from first_extent on that fit in
// an xattr value; next_extent, when present, names the page that follows
// (user.tierfs.map@next_extent). A whole map joined from its pages has neither.
// A migration copying the file now (`tierfs map` during a move).
struct MapMigration {
  std::string to_tier;
  uint64_t copied_bytes = 0;
  uint64_t total_bytes = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MapMigration, to_tier, copied_bytes, total_bytes)

struct MapPage {
  uint64_t ino = 0;
  uint64_t size = 0;
  uint64_t allocated_bytes = 0;
  std::string preferred_tier;
  // "server" (the extents below) or "kernel" (a backing file the kernel
  // serves and places by memory policy; no extents).
  std::string data_path = "server";
  uint64_t extent_count = 0;
  std::optional<uint64_t> first_extent;
  std::optional<uint64_t> next_extent;
  std::optional<MapMigration> migration;  // absent when no migration runs
  // A move off the kernel path held by open passthrough handles: its tier.
  std::optional<std::string> held_move_tier;
  std::vector<MapExtent> extents;
};

// By hand only for the two keys that are absent rather than null.
inline void to_json(nlohmann::json& j, const MapPage& page) {
  j = {{"ino", page.ino},
       {"size", page.size},
       {"allocated_bytes", page.allocated_bytes},
       {"preferred_tier", page.preferred_tier},
       {"data_path", page.data_path},
       {"extent_count", page.extent_count},
       {"extents", page.extents}};
  if (page.first_extent) j["first_extent"] = *page.first_extent;
  if (page.next_extent) j["next_extent"] = *page.next_extent;
  if (page.migration) j["migration"] = *page.migration;
  if (page.held_move_tier) j["held_move_tier"] = *page.held_move_tier;
}

inline void from_json(const nlohmann::json& j, MapPage& page) {
  j.at("ino").get_to(page.ino);
  j.at("size").get_to(page.size);
  j.at("allocated_bytes").get_to(page.allocated_bytes);
  j.at("preferred_tier").get_to(page.preferred_tier);
  page.data_path = j.value("data_path", std::string("server"));
  j.at("extent_count").get_to(page.extent_count);
  j.at("extents").get_to(page.extents);
  page.first_extent.reset();
  page.next_extent.reset();
  if (j.contains("first_extent")) page.first_extent = j.at("first_extent").get<uint64_t>();
  if (j.contains("next_extent")) page.next_extent = j.at("next_extent").get<uint64_t>();
  page.migration.reset();
  if (j.contains("migration")) page.migration = j.at("migration").get<MapMigration>();
  page.held_move_tier.reset();
  if (j.contains("held_move_tier")) page.held_move_tier = j.at("held_move_tier").get<std::string>();
}

struct RegionUse {
  std::string spec;
  uint64_t size_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t free_bytes = 0;
  int numa_node = -1;
  // Requests that moved bytes in this region, and those bytes.
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RegionUse, spec, size_bytes, used_bytes, free_bytes, numa_node,
                                   reads, writes, bytes_read, bytes_written)

struct TierUse {
  std::string name;
  uint64_t granularity_bytes = 0;
  uint32_t ways = 0;
  uint64_t row_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  // Blocks retired after a SIGBUS in a copy (memory error), counted in used_bytes.
  uint64_t bad_bytes = 0;
  bool persistent = false;  // keeps its contents across unmount
  // Watermarks in percent (0: none) and what migrations moved in and out.
  unsigned high_watermark = 0;
  unsigned low_watermark = 0;
  uint64_t bytes_moved_in = 0;
  uint64_t bytes_moved_out = 0;
  uint64_t files_moved_in = 0;
  uint64_t files_moved_out = 0;
  // Which path the tier's new files take ("server" or "kernel") and why; the
  // bytes the kernel path's backing files hold (its tmpfs), not in used_bytes.
  std::string data_path;
  std::string data_path_reason;
  uint64_t kernel_path_used_bytes = 0;
  // A full kernel-path tier: the tier its files' new pages go to; empty when not full.
  std::string kernel_path_spills_to;
  std::vector<RegionUse> regions;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TierUse, name, granularity_bytes, ways, row_bytes,
                                   capacity_bytes, used_bytes, free_bytes, reads, writes,
                                   bytes_read, bytes_written, bad_bytes, persistent, high_watermark,
                                   low_watermark, bytes_moved_in, bytes_moved_out, files_moved_in,
                                   files_moved_out, data_path, data_path_reason,
                                   kernel_path_used_bytes, kernel_path_spills_to, regions)

// The mover ([mover] and tierfs/server/mover.h).
struct MoverState {
  std::string state;  // "off", "idle", "demoting", "promoting", "queued", "stopped"
  uint64_t rate_bytes_per_s = 0;
  uint64_t interval_ms = 0;
  unsigned promote_reads = 0;
  uint64_t queued = 0;
  uint64_t in_flight = 0;
  uint64_t migrations = 0;
  uint64_t failures = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MoverState, state, rate_bytes_per_s, interval_ms, promote_reads,
                                   queued, in_flight, migrations, failures)

// What the iomap BPF path of the mount is doing (docs/bpf.md).
struct BpfState {
  std::string mode;  // mount.bpf as configured: "auto", "off" or "required"
  bool maps_loaded = false;
  bool program_attached = false;
  std::string server_path_reason;  // why not attached; empty when attached
  uint32_t tiers_map_id = 0;       // for bpf_map_get_fd_by_id; 0 when not loaded
  uint32_t inodes_map_id = 0;
  uint64_t map_update_errors = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(BpfState, mode, maps_loaded, program_attached,
                                   server_path_reason, tiers_map_id, inodes_map_id,
                                   map_update_errors)

// user.tierfs.stats on the mount root.
struct Stats {
  uint64_t capacity_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t inodes = 0;
  uint64_t xattrs = 0;       // stored extended attributes, every inode
  uint64_t xattr_bytes = 0;  // their names and values
  std::vector<TierUse> tiers;
  std::map<std::string, uint64_t> ops;  // operation name -> count
  BpfState bpf;
  MoverState mover;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Stats, capacity_bytes, free_bytes, inodes, xattrs, xattr_bytes,
                                   tiers, ops, bpf, mover)

}  // namespace tierfs::inspect
