// The one check the iomap tests share: does a plain mapping the kernel would
// do I/O with put every byte where tierfs_map_extent puts it?
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/tierfs_map.h"
#include "kernel/iomap_rules.h"

namespace tierfs::test {

// Empty when every byte of `io` (a MAPPED or UNWRITTEN mapping on one
// device) is where tierfs_map_extent puts it: its first byte on the right
// device and offset, the whole mapping inside the run tierfs_map_extent says
// is contiguous in both the file and that region (so every later byte
// follows), and its last byte, mapped on its own, where the run says.
inline std::string misplaced(const tierfs_layout& l, const uint32_t* cookies,
                             const tierfs_extent& e, const kernel::IomapIo& io) {
  tierfs_mapping m{};
  if (tierfs_map_extent(&l, &e, io.offset, &m) != TIERFS_MAP_OK)
    return "tierfs_map_extent cannot map the first byte";
  if (io.dev != cookies[m.region]) return "first byte on the wrong device";
  if (io.addr != m.region_offset) return "first byte at the wrong device offset";
  if (io.length > m.length) return "mapping runs past tierfs's contiguous run";
  // The last byte mapped on its own must agree. Within one row of 2^64 a
  // 1-way tier's run reaches into a row tierfs_map_extent refuses to map
  // directly (it wants the whole row below 2^64): the run is the answer there.
  tierfs_mapping last{};
  const uint64_t end = io.offset + io.length - 1;
  const int status = tierfs_map_extent(&l, &e, end, &last);
  if (status == TIERFS_MAP_OVERFLOW) return "";
  if (status != TIERFS_MAP_OK || last.region != m.region ||
      last.region_offset != io.addr + io.length - 1)
    return "last byte misplaced";
  return "";
}

}  // namespace tierfs::test
