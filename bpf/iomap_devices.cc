// IomapDeviceRegistry: the argument bytes of the registration ioctls, built
// in the uapi layouts checked in bpf/stripe.h and here, and the guard.
#include "bpf/iomap_devices.h"

#include <linux/ioctl.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bpf/stripe.h"

namespace tierfs::bpf {

namespace {
constexpr unsigned long kBackingOpen =
    _IOW(TIERFS_FUSE_DEV_IOC_MAGIC, TIERFS_FUSE_DEV_IOC_BACKING_OPEN_NR, FuseBackingMap);
static_assert(kBackingOpen == TIERFS_FUSE_DEV_IOC_BACKING_OPEN_VALUE, "FUSE_DEV_IOC_BACKING_OPEN");
// FUSE_DEV_IOC_BACKING_CLOSE = _IOW(229, 2, uint32_t), the same in both generations.
constexpr unsigned long kBackingClose = _IOW(TIERFS_FUSE_DEV_IOC_MAGIC, 2, uint32_t);
}  // namespace

unsigned long fuse_dev_ioc_backing_open() {
  return kBackingOpen;
}
unsigned long fuse_dev_ioc_backing_close() {
  return kBackingClose;
}

int FuseDeviceFd::ioctl(unsigned long request, void* arg) {
  const int r = ::ioctl(fd_, request, arg);
  return r < 0 ? -errno : r;
}

std::string iomap_registration_refusal(const kernel::KernelFeatures& features,
                                       bool connection_negotiated_iomap) {
  switch (kernel::iomap_kernel(features)) {
    case kernel::IomapKernel::none:
    case kernel::IomapKernel::unknown_revision:
      return "kernel " + features.release + " has no fuse-iomap generation tierfs speaks (" +
             kernel::iomap_generation(features) + "): no iomap devices registered";
    case kernel::IomapKernel::feb2026:
    case kernel::IomapKernel::may2026:
      break;
  }
  // fuse_iomap_may_admin refuses (EPERM) on a connection without fc->iomap.
  if (!connection_negotiated_iomap)
    return "the FUSE connection did not negotiate FUSE_IOMAP in FUSE_INIT: no iomap devices "
           "registered";
  return "";
}

std::unique_ptr<IomapDeviceRegistry> IomapDeviceRegistry::create(
    const kernel::KernelFeatures& features, bool connection_negotiated_iomap,
    FuseDeviceControl& control, std::string& why) {
  why = iomap_registration_refusal(features, connection_negotiated_iomap);
  if (!why.empty()) return nullptr;
  return std::unique_ptr<IomapDeviceRegistry>(
      new IomapDeviceRegistry(kernel::iomap_kernel(features), control));
}

int IomapDeviceRegistry::register_tier(const tierfs_layout& layout, std::span<const int> region_fds,
                                       IomapTierTarget& out) {
  if (!tierfs_layout_valid(&layout) || region_fds.size() != layout.ways) return -EINVAL;
  IomapTierTarget target;
  target.layout = layout;
  auto undo = [&](uint32_t opened, int err) {
    for (uint32_t i = 0; i < opened; ++i) control_.ioctl(kBackingClose, &target.device_cookie[i]);
    return err;
  };
  for (uint32_t i = 0; i < layout.ways; ++i) {
    FuseBackingMap map{region_fds[i], TIERFS_FUSE_BACKING_TYPE_IOMAP, 0};
    const int id = control_.ioctl(kBackingOpen, &map);
    if (id < 0) return undo(i, id);
    if (id < TIERFS_FUSE_IOMAP_DEVICE_ID_FIRST || id > TIERFS_FUSE_IOMAP_DEVICE_ID_LAST) {
      target.device_cookie[i] = static_cast<uint32_t>(id);
      return undo(i + 1, -EPROTO);  // not an iomap device id: a kernel tierfs does not know
    }
    target.device_cookie[i] = static_cast<uint32_t>(id);
  }
  tierfs_stripe_config config{};
  if (generation_ == kernel::IomapKernel::may2026 &&
      tierfs_stripe_config_of(&layout, target.device_cookie.data(), &config) == 0) {
    // The kernel reads the header, then nr_strips entries after it.
    std::vector<uint8_t> arg(tierfs_stripe_arg_bytes(config.header.nr_strips));
    std::memcpy(arg.data(), &config, arg.size());
    const int id = control_.ioctl(TIERFS_FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG, arg.data());
    if (id < 0) return undo(layout.ways, id);
    if (id < TIERFS_MAY26_STRIPE_ID_FIRST || id > TIERFS_MAY26_STRIPE_ID_LAST)
      return undo(layout.ways, -EPROTO);
    target.stripe_id = static_cast<uint32_t>(id);
  }
  out = target;
  return 0;
}

}  // namespace tierfs::bpf
