// The May 2026 generation's stripes as the kernel handles them, as a test
// oracle: what FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG accepts
// (fuse_iomap_backing_stripe_config) and how a MAPPED_STRIPE or
// UNWRITTEN_STRIPE answer becomes a plain mapping on one block device
// (fuse_iomap_find_bdev's stripe branch, then fuse_iomap_adjust_stripe,
// which runs on every answer and every cache hit). Rendered from
// fs/fuse/fuse_iomap.c at 0d91ba1028c411680cfbd2c3e04e6086ae0e3768, not
// copied. This is the kernel's arithmetic; tierfs's own stays in
// bpf/tierfs_map.h, and the tests hold one against the other.
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "kernel/iomap_rules.h"

namespace tierfs::kernel {

// The kernel's EFSCORRUPTED is EUCLEAN.
inline constexpr int kEfscorrupted = EUCLEAN;

// One strip of a registered stripe (struct fuse_backing_strip): the iomap
// device it lies on and the byte address of its first byte there.
struct KernelStrip {
  uint32_t device_id = 0;
  uint64_t addr = 0;
};

struct KernelStripe {
  uint64_t strip_width = 0;
  std::vector<KernelStrip> strips;
  // A stripe backing never has a block device of its own; the kernel checks
  // it anyway (stripe_fb->bdev != NULL). Only a test sets this.
  bool has_bdev = false;
};

// The connection's backing table as far as the stripe rules look at it:
// iomap devices (ids 1 .. 1024) and stripes (ids 2048 .. 3072).
class KernelBackings {
 public:
  // FUSE_DEV_IOC_BACKING_OPEN of a block device with FUSE_BACKING_TYPE_IOMAP:
  // the next device id, or -ENOSPC when all 1024 are taken.
  int open_device();
  // FUSE_DEV_IOC_BACKING_CLOSE: the id is removed; a stripe that holds the
  // device keeps it, but its id reads 0 (FUSE_BACKING_ID_REMOVED).
  void close_device(uint32_t id);
  // FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG on the argument's bytes: the new
  // stripe id, or -EFAULT (argument shorter than it says), -EINVAL (reserved
  // bytes set, no strips, width 0), -ENOMEM (more than 256 strips), -ENODEV (a
  // strip's device is not a registered iomap device), -ENOSPC (no id left).
  int configure_stripe(std::span<const uint8_t> arg);
  // Registers a stripe as given, bypassing configure_stripe's checks, so a
  // test can build what configure_stripe would refuse.
  int add_stripe_unchecked(KernelStripe stripe);

  bool device_open(uint32_t id) const;
  const KernelStripe* stripe(uint32_t id) const;

 private:
  uint32_t next_device_ = TIERFS_FUSE_IOMAP_DEVICE_ID_FIRST;
  uint32_t next_stripe_ = TIERFS_MAY26_STRIPE_ID_FIRST;
  std::map<uint32_t, bool> devices_;  // id -> still open
  std::map<uint32_t, KernelStripe> stripes_;
};

// Turns the striped mapping `map` of an answer to iomap_begin(pos) into the
// plain mapping the kernel does I/O with: 0, or -EFSCORRUPTED with the
// failed rule in *why. `map` is changed only on success. The answer itself
// has passed iomap_begin_violation (fuse_iomap_begin_validate) before.
int adjust_stripe(const KernelBackings& backings, uint64_t block_size, uint64_t pos, IomapIo& map,
                  std::string* why = nullptr);

}  // namespace tierfs::kernel
