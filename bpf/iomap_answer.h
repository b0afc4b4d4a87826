// The server's own answer to FUSE_IOMAP_BEGIN, for either generation of
// fuse-iomap: what a connection needs whenever the BPF program falls back
// (Feb 2026) or the kernel has no BPF hook at all (May 2026). One pure
// function of the file's extents, the tiers' registered devices, the
// position, count and op flags; the caller replies with its `out`, or does
// the allocation it asks for and asks again. The mapping itself comes from
// tierfs_iomap_fill and tierfs_stripe_answer_of (bpf/iomap.h, bpf/stripe.h):
// nothing here computes where a byte lives.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "bpf/iomap.h"
#include "kernel/iomap_generation.h"
#include "kernel/iomap_rules.h"

namespace tierfs::bpf {

// A tier as the iomap path sees it: its layout, the FUSE_DEV_IOC_BACKING_OPEN
// cookie of each region's block device (0: not registered), and on a May
// 2026 kernel the id it is registered under as a stripe (0: none; only
// equal-weight tiers are stripes).
struct IomapTierTarget {
  tierfs_layout layout{};
  std::array<uint32_t, TIERFS_MAX_WAYS> device_cookie{};
  uint32_t stripe_id = 0;
};

struct IomapBeginAnswer {
  // -errno to reply instead of a mapping: -EOPNOTSUPP for untorn (ATOMIC)
  // writes and swapfile activation, -EIO for a position tierfs cannot map
  // onto a registered device, -EINVAL for a request the kernel never sends.
  int error = 0;
  // A write over a hole: allocate [alloc_offset, alloc_offset +
  // alloc_length) (whole blocks, up to the next extent), then ask again and
  // reply with that answer, which maps the new blocks.
  bool allocate = false;
  uint64_t alloc_offset = 0;
  uint64_t alloc_length = 0;
  kernel::IomapBeginOut out{};  // the reply when error == 0 and !allocate
};

// `extents` sorted by file offset, not overlapping, block-aligned (as the
// server's allocator makes them); `tiers` indexed by tierfs_extent.tier.
//
// Reads: HOLE between extents, UNWRITTEN over reserved extents, MAPPED on
// the region's device otherwise (MAPPED_STRIPE / UNWRITTEN_STRIPE on the
// tier's stripe where the generation has stripes and the tier is one). Every
// answer covers whole blocks from pos's block to the end of the contiguous
// run, not cut at count (iomap's iterator trims). The write mapping is
// always the generation's PURE_OVERWRITE: the kernel writes through the
// read mapping. Writes (WRITE, WRITEBACK) over a hole ask for allocation;
// over reserved space they get UNWRITTEN, and the kernel's ioend
// (FUSE_IOMAP_IOEND_UNWRITTEN) tells the server to convert it. ZERO and
// UNSHARE alone over a hole get HOLE: there is nothing to zero or unshare.
IomapBeginAnswer iomap_begin_answer(std::span<const tierfs_extent> extents,
                                    std::span<const IomapTierTarget> tiers, uint64_t pos,
                                    uint64_t count, uint32_t opflags,
                                    const kernel::IomapGeneration& generation);

}  // namespace tierfs::bpf
