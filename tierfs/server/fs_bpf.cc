// The server's side of the iomap BPF path. At mount it loads the BPF maps and
// the syscall twin, writes every tier's layout, keeps each file's extents in
// the maps as the Storage's ExtentListener, and attaches the
// fuse_iomap_bpf_ops program where the kernel has it. On every other kernel
// one line says why the server path serves, and the mount goes on.
//
// The maps are keyed by the FUSE nodeid the program gets from
// fuse_bpf_inode_nodeid(); tierfs replies to lookups with entry.ino = the
// inode number (Fs::entry_of), so nodeid and inode number are one number and
// the listener's `ino` is the key as it stands.
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "bpf/loader.h"
#include "kernel/probe.h"
#include "tierfs/server/operations.h"

namespace tierfs {

namespace {

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

// Region i's row 0 as the kernel would address it: the device offset for
// file regions (a block device registered with FUSE_DEV_IOC_BACKING_OPEN),
// the region's own offset 0 otherwise (no device: the cookie stays 0).
tierfs_layout device_layout(const Tier& tier) {
  tierfs_layout layout = tier.layout();
  for (uint32_t i = 0; i < layout.ways && i < TIERFS_MAX_WAYS; ++i) {
    const numa::RegionSpec& spec = tier.region(i).spec();
    if (spec.kind == numa::RegionKind::file) layout.base[i] = spec.offset_bytes;
  }
  return layout;
}

}  // namespace

// Runs inside write, fallocate, truncate and release, under the inode's lock:
// one bpf() map update each, and never an error for the file operation. A
// failed update removes the inode from the map instead, so that the program
// falls back to the server rather than read stale extents.
class IomapMapsListener final : public ExtentListener {
 public:
  explicit IomapMapsListener(bpf::IomapMaps& maps) : maps_(maps) {}

  void extents_changed(uint64_t ino, std::span<const tierfs_extent> extents) override {
    const int err = maps_.set_extents(ino, extents);
    if (err != 0) failed("update", ino, err, maps_.remove_inode(ino));
  }

  void inode_removed(uint64_t ino) override {
    if (const int err = maps_.remove_inode(ino); err != 0) failed("remove", ino, err, err);
  }

  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  void failed(const char* what, uint64_t ino, int err, int remove_err) {
    if (errors_.fetch_add(1, std::memory_order_relaxed) != 0) return;  // the first one is logged
    spdlog::warn("BPF inode map: cannot {} inode {} ({}){}; such inodes fall back to the server",
                 what, ino, std::strerror(-err),
                 remove_err == 0 ? "" : ", and its stale entry could not be removed");
  }

  bpf::IomapMaps& maps_;
  std::atomic<uint64_t> errors_{0};
};

struct BpfPath {
  std::unique_ptr<bpf::IomapLoader> loader;
  std::unique_ptr<IomapMapsListener> listener;
  BpfStatus status;
};

std::string Fs::attach_iomap_program(int fuse_fd) {
  bpf_ = std::make_shared<BpfPath>();
  BpfStatus& status = bpf_->status;
  const BpfMode mode = config_.mount.bpf;
  status.mode = mode;
  const bool required = mode == BpfMode::required;
  const std::string prefix = required ? "mount.bpf = \"required\", but " : "";
  if (mode == BpfMode::off) {
    status.server_path_reason = "mount.bpf = \"off\"";
    spdlog::info("iomap BPF path off (mount.bpf = \"off\"): the server path serves all I/O");
    return "";
  }

  // Without BPF at all (not root, no CAP_BPF) the probe's reason is the clearest line.
  const kernel::KernelFeatures features = kernel::probe_kernel();
  std::string error = features.bpf_missing;
  if (features.bpf_usable) bpf_->loader = bpf::IomapLoader::load(error);
  if (!bpf_->loader) {
    status.server_path_reason = first_line(error);
    if (required) return prefix + status.server_path_reason;
    spdlog::warn("iomap BPF path unavailable: {}", status.server_path_reason);
    if (error.find('\n') != std::string::npos) spdlog::debug("{}", error);
    return "";
  }
  for (size_t t = 0; t < storage_->tier_count(); ++t) {
    const Tier& tier = storage_->tier(t);
    // No device is registered (that needs libfuse's iomap API and a patched kernel; see
    // docs/bpf.md): every cookie is 0, so the program answers holes and falls back for data.
    const std::vector<uint32_t> cookies(tier.ways(), 0);
    if (const int err =
            bpf_->loader->set_tier(static_cast<uint32_t>(t), device_layout(tier), cookies);
        err != 0)
      spdlog::warn("BPF tier map: tier \"{}\" left out ({}); its extents fall back to the server",
                   tier.name(), std::strerror(-err));
  }
  bpf_->listener = std::make_unique<IomapMapsListener>(*bpf_->loader);
  storage_->set_listener(bpf_->listener.get());
  status.maps_loaded = true;
  status.tiers_map_id = bpf_->loader->tiers_map_id();
  status.inodes_map_id = bpf_->loader->inodes_map_id();

  const std::string why = bpf_->loader->attach_iomap(fuse_fd);
  if (!why.empty()) {
    status.server_path_reason = first_line(why);
    if (required) {
      storage_->set_listener(nullptr);
      return prefix + status.server_path_reason;
    }
    spdlog::info("iomap BPF program not attached: {}", status.server_path_reason);
    if (why.find('\n') != std::string::npos) spdlog::debug("{}", why);
    return "";
  }
  status.program_attached = true;
  spdlog::info("iomap BPF program attached: fuse_iomap_bpf_ops answers iomap_begin in the kernel");
  return "";
}

BpfStatus Fs::bpf_status() const {
  if (!bpf_) {
    BpfStatus none;
    none.mode = config_.mount.bpf;
    none.server_path_reason = "not mounted yet";
    return none;
  }
  BpfStatus status = bpf_->status;
  if (bpf_->listener) status.map_update_errors = bpf_->listener->errors();
#ifdef TIERFS_HAVE_FUSE_IOMAP
  status.libfuse_iomap = true;
#endif
  return status;
}

}  // namespace tierfs
