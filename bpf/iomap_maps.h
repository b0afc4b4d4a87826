// The BPF side of tierfs's truth about files: the loader keeps tier layouts
// and per-inode extents in BPF maps that the iomap struct_ops program and its
// syscall twin read. The server calls into this whenever extents change.
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
  // the maps hold is removed instead, so the program falls back to the server.
  virtual int set_extents(uint64_t nodeid, std::span<const tierfs_extent> extents) = 0;
  virtual int remove_inode(uint64_t nodeid) = 0;
};

}  // namespace tierfs::bpf
