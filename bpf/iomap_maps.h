// The one interface through which tierfs keeps the BPF maps current: tier
// layouts once at mount, and every change of a file's extents (Storage calls
// it from write, fallocate, truncate and release). IomapLoader implements it
// over the kernel's maps; tests record the calls.
#pragma once

#include <cstdint>
#include <span>

#include "bpf/tierfs_map.h"

namespace tierfs::bpf {

class IomapMaps {
 public:
  virtual ~IomapMaps() = default;
  // Layout of tier `tier` and the device cookie of each of its regions
  // (the value FUSE_DEV_IOC_BACKING_OPEN returned; 0 where none).
  virtual int set_tier(uint32_t tier, const tierfs_layout& layout,
                       std::span<const uint32_t> device_cookies) = 0;
  // Replaces the extents of inode `nodeid`. An inode with more extents than
  // the maps hold, or one whose update failed, is removed instead, so the
  // program falls back to the server rather than read stale extents. The
  // file operation never fails for it: callers may ignore the result.
  virtual int set_extents(uint64_t nodeid, std::span<const tierfs_extent> extents) = 0;
  virtual int remove_inode(uint64_t nodeid) = 0;
};

}  // namespace tierfs::bpf
