// The two published generations of fuse-iomap as values, for C++ code that
// speaks either (the server's FUSE_IOMAP_BEGIN answer, the kernel-rules
// oracle): every number that differs between them, taken from
// kernel/fuse_iomap_abi.h, so a caller names the generation once and never
// picks a number by hand.
#pragma once

#include <cstdint>

#include "kernel/fuse_iomap_abi.h"

namespace tierfs::kernel {

struct IomapGeneration {
  const char* name;
  uint16_t pure_overwrite;
  uint16_t retry_cache;
  uint16_t nocache;
  bool stripes;  // MAPPED_STRIPE / UNWRITTEN_STRIPE exist
  uint16_t mapped_stripe;
  uint16_t unwritten_stripe;
  uint32_t op_writeback;
  uint32_t op_swapfile;
  uint32_t op_write_mask;    // fuse_is_iomap_file_write
  uint32_t op_nocache_mask;  // fuse_iomap_can_cache; 0 where the generation has no such check
  uint32_t attr_iomap;       // fuse_attr.flags that put an inode on iomap

  bool is_write(uint32_t opflags) const { return (opflags & op_write_mask) != 0; }
  bool is_stripe_type(uint16_t type) const {
    return stripes && (type == mapped_stripe || type == unwritten_stripe);
  }
};

inline constexpr IomapGeneration kFeb2026{
    "Feb 2026",
    TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE,
    TIERFS_FEB26_IOMAP_TYPE_RETRY_CACHE,
    TIERFS_FEB26_IOMAP_TYPE_NOCACHE,
    false,
    0,
    0,
    TIERFS_FEB26_IOMAP_OP_WRITEBACK,
    TIERFS_FEB26_IOMAP_OP_SWAPFILE,
    TIERFS_FEB26_IOMAP_OP_WRITE_MASK,
    0,
    TIERFS_FEB26_FUSE_ATTR_IOMAP,
};

inline constexpr IomapGeneration kMay2026{
    "May 2026",
    TIERFS_MAY26_IOMAP_TYPE_PURE_OVERWRITE,
    TIERFS_MAY26_IOMAP_TYPE_RETRY_CACHE,
    TIERFS_MAY26_IOMAP_TYPE_NOCACHE,
    true,
    TIERFS_MAY26_IOMAP_TYPE_MAPPED_STRIPE,
    TIERFS_MAY26_IOMAP_TYPE_UNWRITTEN_STRIPE,
    TIERFS_MAY26_IOMAP_OP_WRITEBACK,
    TIERFS_MAY26_IOMAP_OP_SWAPFILE,
    TIERFS_MAY26_IOMAP_OP_WRITE_MASK,
    TIERFS_MAY26_IOMAP_OP_NOCACHE_MASK,
    TIERFS_MAY26_FUSE_ATTR_IOMAP,
};

// The renumbering the issue tracker reported, checked where it is stated.
static_assert(kFeb2026.pure_overwrite == 255 && kMay2026.pure_overwrite == 65535);
static_assert(kFeb2026.retry_cache == 254 && kMay2026.retry_cache == 65534);
static_assert(kFeb2026.nocache == 253 && kMay2026.nocache == 65533);
static_assert(kMay2026.mapped_stripe == 65532 && kMay2026.unwritten_stripe == 65531);
static_assert(kFeb2026.op_writeback == 1u << 31 && kMay2026.op_writeback == 1u << 11);
static_assert(kFeb2026.op_swapfile == 1u << 30 && kMay2026.op_swapfile == 1u << 31);
static_assert(kFeb2026.attr_iomap == 0x8 && kMay2026.attr_iomap == 0xc);

}  // namespace tierfs::kernel
