// The kernel's stripe configuration and stripe adjustment, check by check in
// the kernel's order, so that the first reason named is the one the
// kernel's BAD_DATA trace would name.
#include "kernel/iomap_stripe_rules.h"

#include <cstring>
#include <string>
#include <utility>

#include "kernel/iomap_generation.h"

namespace tierfs::kernel {
namespace {

// The uapi layout (struct fuse_iomap_backing_stripe / _strip), read
// byte by byte as the kernel's copy_from_user would see it.
constexpr size_t kHeaderBytes = 16;
constexpr size_t kStripBytes = 16;

template <typename T>
T load(std::span<const uint8_t> bytes, size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(value));
  return value;
}

int fail(std::string* why, const char* rule) {
  if (why != nullptr) *why = rule;
  return -kEfscorrupted;
}

}  // namespace

int KernelBackings::open_device() {
  if (next_device_ > TIERFS_FUSE_IOMAP_DEVICE_ID_LAST) return -ENOSPC;
  devices_[next_device_] = true;
  return static_cast<int>(next_device_++);
}

void KernelBackings::close_device(uint32_t id) {
  if (auto it = devices_.find(id); it != devices_.end()) it->second = false;
}

bool KernelBackings::device_open(uint32_t id) const {
  auto it = devices_.find(id);
  return it != devices_.end() && it->second;
}

const KernelStripe* KernelBackings::stripe(uint32_t id) const {
  auto it = stripes_.find(id);
  return it == stripes_.end() ? nullptr : &it->second;
}

int KernelBackings::add_stripe_unchecked(KernelStripe stripe) {
  if (next_stripe_ > TIERFS_MAY26_STRIPE_ID_LAST) return -ENOSPC;
  stripes_[next_stripe_] = std::move(stripe);
  return static_cast<int>(next_stripe_++);
}

int KernelBackings::configure_stripe(std::span<const uint8_t> arg) {
  if (arg.size() < kHeaderBytes) return -EFAULT;
  const auto nr_strips = load<uint16_t>(arg, 0);
  for (size_t i = 2; i < 8; ++i)
    if (arg[i] != 0) return -EINVAL;
  const auto width = load<uint64_t>(arg, 8);
  if (nr_strips == 0 || width == 0) return -EINVAL;
  if (nr_strips > TIERFS_MAY26_STRIPE_MAX_STRIPS) return -ENOMEM;
  KernelStripe stripe;
  stripe.strip_width = width;
  for (size_t i = 0; i < nr_strips; ++i) {
    const size_t at = kHeaderBytes + i * kStripBytes;
    if (arg.size() < at + kStripBytes) return -EFAULT;
    const auto dev = load<uint32_t>(arg, at);
    if (load<uint32_t>(arg, at + 4) != 0) return -EINVAL;
    if (!device_open(dev)) return -ENODEV;
    stripe.strips.push_back({dev, load<uint64_t>(arg, at + 8)});
  }
  return add_stripe_unchecked(std::move(stripe));
}

int adjust_stripe(const KernelBackings& backings, uint64_t block_size, uint64_t pos, IomapIo& map,
                  std::string* why) {
  const IomapGeneration& gen = kMay2026;
  // fuse_iomap_find_bdev: a striped mapping names a stripe id.
  if (map.dev == TIERFS_IOMAP_DEV_NULL) return fail(why, "stripe mapping without a device");
  const KernelStripe* stripe = backings.stripe(map.dev);
  if (stripe == nullptr) return fail(why, "stripe mapping whose device is not a stripe");

  // fuse_iomap_adjust_stripe
  const uint64_t start = pos / block_size * block_size;
  if (stripe->has_bdev) return fail(why, "stripe backing with a block device");
  if (stripe->strip_width % block_size != 0)
    return fail(why, "strip width not a multiple of the block size");
  if (map.type != gen.mapped_stripe && map.type != gen.unwritten_stripe)
    return fail(why, "not a stripe mapping type");
  if (map.addr == TIERFS_IOMAP_NULL_ADDR) return fail(why, "stripe mapping without an address");
  if ((map.flags & (TIERFS_IOMAP_F_ANON_WRITE | TIERFS_IOMAP_F_ATOMIC_BIO)) != 0)
    return fail(why, "stripe mapping with ANON_WRITE or ATOMIC_BIO");
  IomapIo out = map;
  // Move the mapping up to the block holding pos; addr follows the offset.
  if (out.offset < start) {
    const uint64_t delta = start - out.offset;
    if (out.length <= delta) return fail(why, "stripe mapping ends before pos's block");
    out.length -= delta;
    out.addr += delta;  // unsigned, as the kernel's u64: a wrap shows in the result
    out.offset += delta;
  }
  // The stripe is a virtual RAID0 device: its address selects a strip and
  // how many times the strips have been walked round.
  const uint64_t strip_number = out.addr / stripe->strip_width;
  const uint64_t addr_in_strip = out.addr % stripe->strip_width;
  const uint64_t strides = strip_number / stripe->strips.size();
  const KernelStrip& strip = stripe->strips[strip_number % stripe->strips.size()];
  // fb NULL cannot happen: configure_stripe took a reference on each device.
  // fb->bdev NULL cannot either: only block devices open as iomap devices.
  if (!backings.device_open(strip.device_id)) return fail(why, "strip device id below 1");
  if (strip.addr % block_size != 0) return fail(why, "strip address not block-aligned");
  uint64_t strip_addr = 0, addr = 0;
  if (__builtin_mul_overflow(strides, stripe->strip_width, &strip_addr) ||
      __builtin_add_overflow(strip.addr, strip_addr, &addr) ||
      __builtin_add_overflow(addr, addr_in_strip, &addr))
    return fail(why, "strip address overflows");
  out.addr = addr;
  out.dev = strip.device_id;
  out.type = out.type == gen.mapped_stripe ? TIERFS_IOMAP_TYPE_MAPPED : TIERFS_IOMAP_TYPE_UNWRITTEN;
  // The mapping ends with the strip: the next strip is on another device.
  if (out.length > stripe->strip_width - addr_in_strip)
    out.length = stripe->strip_width - addr_in_strip;
  map = out;
  return 0;
}

}  // namespace tierfs::kernel
