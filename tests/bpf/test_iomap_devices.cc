// Registering block-device regions (bpf/iomap_devices.h) up to the ioctl: a
// fake /dev/fuse records every request and its argument bytes and answers
// as the May 2026 kernel's rules do (kernel/iomap_stripe_rules.h). A stock
// kernel, or a connection without FUSE_IOMAP, receives nothing. Plain C++.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "bpf/iomap_devices.h"
#include "bpf/stripe.h"
#include "kernel/iomap_stripe_rules.h"

namespace {

using tierfs::bpf::FuseBackingMap;
using tierfs::bpf::IomapDeviceRegistry;
using tierfs::bpf::IomapTierTarget;
using tierfs::kernel::KernelFeatures;

struct Call {
  unsigned long request;
  std::vector<uint8_t> bytes;
};

class FakeFuseDevice final : public tierfs::bpf::FuseDeviceControl {
 public:
  int ioctl(unsigned long request, void* arg) override {
    Call call{request, {}};
    const auto* p = static_cast<const uint8_t*>(arg);
    int result = -ENOTTY;
    if (request == tierfs::bpf::fuse_dev_ioc_backing_open()) {
      call.bytes.assign(p, p + sizeof(FuseBackingMap));
      FuseBackingMap map{};
      std::memcpy(&map, p, sizeof(map));
      result = fail_open_at == calls.size() ? -ENODEV
               : map.flags == TIERFS_FUSE_BACKING_TYPE_IOMAP && map.padding == 0
                   ? kernel.open_device()
                   : -EINVAL;
    } else if (request == tierfs::bpf::fuse_dev_ioc_backing_close()) {
      call.bytes.assign(p, p + 4);
      uint32_t id = 0;
      std::memcpy(&id, p, 4);
      kernel.close_device(id);
      result = 0;
    } else if (request == TIERFS_MAY26_FUSE_DEV_IOC_STRIPE_CONFIG_VALUE) {
      // As the kernel: the header first, then as many strips as it says.
      tierfs_stripe_header header{};
      std::memcpy(&header, p, sizeof(header));
      call.bytes.assign(p, p + tierfs_stripe_arg_bytes(header.nr_strips));
      result = kernel.configure_stripe(call.bytes);
    }
    calls.push_back(std::move(call));
    return result;
  }
  tierfs::kernel::KernelBackings kernel;
  std::vector<Call> calls;
  size_t fail_open_at = SIZE_MAX;
};

KernelFeatures features(bool bpf_hook, bool stripes) {
  KernelFeatures f;
  f.release = "test";
  f.btf = true;
  f.fuse_iomap = bpf_hook || stripes;
  f.fuse_iomap_bpf_ops = bpf_hook;
  f.fuse_iomap_stripe = stripes;
  f.iomap_btf = "vmlinux";
  return f;
}

tierfs_layout layout(uint32_t ways, std::vector<uint8_t> weights = {}) {
  tierfs_layout l{};
  l.ways = ways;
  l.granularity_shift = 16;
  for (uint32_t i = 0; i < ways; ++i) {
    l.weights[i] = weights.empty() ? 1 : weights[i];
    l.base[i] = uint64_t{i} << 20;
  }
  return l;
}

TEST(IomapDevices, AStockKernelReceivesNothing) {
  FakeFuseDevice dev;
  std::string why;
  EXPECT_EQ(IomapDeviceRegistry::create(features(false, false), true, dev, why), nullptr);
  EXPECT_NE(why.find("no fuse-iomap generation tierfs speaks"), std::string::npos) << why;
  // fuse-iomap types without the hook or stripes: a revision tierfs does not speak.
  KernelFeatures older = features(false, false);
  older.fuse_iomap = true;
  EXPECT_EQ(IomapDeviceRegistry::create(older, true, dev, why), nullptr);
  // A patched kernel, but FUSE_INIT did not negotiate FUSE_IOMAP.
  EXPECT_EQ(IomapDeviceRegistry::create(features(false, true), false, dev, why), nullptr);
  EXPECT_NE(why.find("FUSE_IOMAP"), std::string::npos) << why;
  EXPECT_TRUE(dev.calls.empty());
}

TEST(IomapDevices, TheBackingOpenArgument) {
  FakeFuseDevice dev;
  std::string why;
  auto registry = IomapDeviceRegistry::create(features(true, false), true, dev, why);
  ASSERT_NE(registry, nullptr) << why;
  EXPECT_EQ(tierfs::bpf::fuse_dev_ioc_backing_open(), 0x4010e501u) << "_IOW(229, 1, 16 bytes)";
  IomapTierTarget t;
  const int fds[2] = {41, 42};
  ASSERT_EQ(registry->register_tier(layout(2), fds, t), 0);
  ASSERT_EQ(dev.calls.size(), 2u) << "Feb 2026: devices only, no stripe";
  const std::vector<uint8_t> expect = {42, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(dev.calls[1].bytes, expect) << "fd 42, FUSE_BACKING_TYPE_IOMAP, zero padding";
  EXPECT_EQ(t.device_cookie[0], 1u);
  EXPECT_EQ(t.device_cookie[1], 2u);
  EXPECT_EQ(t.stripe_id, 0u);
}

TEST(IomapDevices, AMayKernelGetsEqualWeightTiersAsStripes) {
  FakeFuseDevice dev;
  std::string why;
  auto registry = IomapDeviceRegistry::create(features(false, true), true, dev, why);
  ASSERT_NE(registry, nullptr) << why;
  IomapTierTarget t;
  const int fds[3] = {10, 11, 12};
  ASSERT_EQ(registry->register_tier(layout(3), fds, t), 0);
  ASSERT_EQ(dev.calls.size(), 4u);
  const Call& stripe = dev.calls[3];
  EXPECT_EQ(stripe.request, 0x4010e567u) << "_IOW(229, 103, 16 bytes)";
  ASSERT_EQ(stripe.bytes.size(), 16u + 3 * 16);
  EXPECT_EQ(stripe.bytes[0], 3);  // nr_strips
  uint64_t width = 0, addr2 = 0;
  uint32_t dev2 = 0;
  std::memcpy(&width, &stripe.bytes[8], 8);
  std::memcpy(&dev2, &stripe.bytes[16 + 2 * 16], 4);
  std::memcpy(&addr2, &stripe.bytes[16 + 2 * 16 + 8], 8);
  EXPECT_EQ(width, 64u * 1024);
  EXPECT_EQ(dev2, 3u) << "strip 2 on region 2's device";
  EXPECT_EQ(addr2, uint64_t{2} << 20) << "at region 2's base";
  EXPECT_EQ(t.stripe_id, static_cast<uint32_t>(TIERFS_MAY26_STRIPE_ID_FIRST));
  ASSERT_NE(dev.kernel.stripe(t.stripe_id), nullptr);

  // A weighted tier is no stripe: its devices only.
  IomapTierTarget w;
  const int two[2] = {13, 14};
  ASSERT_EQ(registry->register_tier(layout(2, {3, 1}), two, w), 0);
  EXPECT_EQ(dev.calls.size(), 6u);
  EXPECT_EQ(w.stripe_id, 0u);
}

TEST(IomapDevices, AFailureLeavesNothingRegistered) {
  FakeFuseDevice dev;
  dev.fail_open_at = 2;  // the third region's device is refused
  std::string why;
  auto registry = IomapDeviceRegistry::create(features(false, true), true, dev, why);
  ASSERT_NE(registry, nullptr);
  IomapTierTarget t;
  t.stripe_id = 77;
  const int fds[4] = {1, 2, 3, 4};
  EXPECT_EQ(registry->register_tier(layout(4), fds, t), -ENODEV);
  EXPECT_EQ(t.stripe_id, 77u) << "out untouched";
  ASSERT_EQ(dev.calls.size(), 5u) << "two opens, the refused one, two closes";
  EXPECT_FALSE(dev.kernel.device_open(1));
  EXPECT_FALSE(dev.kernel.device_open(2));
  EXPECT_EQ(registry->register_tier(layout(2), std::span<const int>(fds, 1), t), -EINVAL)
      << "one descriptor per region";
}

}  // namespace
