// Registering a tier's block-device regions with a fuse-iomap kernel, up to
// the ioctl: FUSE_DEV_IOC_BACKING_OPEN (type IOMAP) for each region's block
// device, and on a May 2026 kernel FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG
// for an equal-weight tier. The arguments are built here; the ioctl itself
// goes through FuseDeviceControl, which a test replaces. The probe guards
// it: a kernel without a generation tierfs speaks, or a connection that did
// not negotiate FUSE_IOMAP, never receives any of it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "bpf/iomap_answer.h"
#include "kernel/probe.h"

namespace tierfs::bpf {

// struct fuse_backing_map, the FUSE_DEV_IOC_BACKING_OPEN argument.
struct FuseBackingMap {
  int32_t fd;
  uint32_t flags;  // FUSE_BACKING_TYPE_IOMAP
  uint64_t padding;
};
static_assert(sizeof(FuseBackingMap) == 16, "struct fuse_backing_map");

// The ioctls on the connection's /dev/fuse descriptor.
class FuseDeviceControl {
 public:
  virtual ~FuseDeviceControl() = default;
  // ioctl(fd, request, arg): the kernel's result (>= 0) or -errno.
  virtual int ioctl(unsigned long request, void* arg) = 0;
};

// The real one.
class FuseDeviceFd final : public FuseDeviceControl {
 public:
  explicit FuseDeviceFd(int fuse_fd) : fd_(fuse_fd) {}
  int ioctl(unsigned long request, void* arg) override;

 private:
  int fd_;
};

unsigned long fuse_dev_ioc_backing_open();
unsigned long fuse_dev_ioc_backing_close();

// Empty when the kernel takes iomap device registration on this connection;
// otherwise one line naming what is missing.
std::string iomap_registration_refusal(const kernel::KernelFeatures& features,
                                       bool connection_negotiated_iomap);

class IomapDeviceRegistry {
 public:
  // nullptr (and `why`) where iomap_registration_refusal refuses: nothing is
  // sent to the kernel then.
  static std::unique_ptr<IomapDeviceRegistry> create(const kernel::KernelFeatures& features,
                                                     bool connection_negotiated_iomap,
                                                     FuseDeviceControl& control, std::string& why);

  // Registers the block device behind each region's descriptor (region i of
  // `layout` is region_fds[i]) and, on a May 2026 kernel, the tier as a
  // stripe when it is one (equal weights, block-aligned bases). Fills `out`
  // (layout, cookies, stripe id). 0, or -errno with every device this call
  // registered closed again. The kernel refuses a descriptor that is not a
  // block device (ENODEV): numa/ hands only block-device regions here.
  int register_tier(const tierfs_layout& layout, std::span<const int> region_fds,
                    IomapTierTarget& out);

  kernel::IomapKernel generation() const { return generation_; }

 private:
  IomapDeviceRegistry(kernel::IomapKernel generation, FuseDeviceControl& control)
      : generation_(generation), control_(control) {}
  kernel::IomapKernel generation_;
  FuseDeviceControl& control_;
};

}  // namespace tierfs::bpf
