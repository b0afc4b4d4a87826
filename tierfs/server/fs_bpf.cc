// The server's side of the iomap BPF path. At mount it probes the kernel
// once, loads the BPF maps and the syscall twin, writes every tier's layout
// and keeps each file's extents in the maps (the loader is the Storage's
// IomapMaps). The fuse_iomap_bpf_ops program is attached later, when
// FUSE_INIT has negotiated FUSE_IOMAP (fs_init): the kernel registers it only
// on such a connection. Where a piece is missing one line names the first
// one, the server path serves, and the mount goes on.
//
// The maps are keyed by the FUSE nodeid the program gets from
// fuse_bpf_inode_nodeid(); tierfs replies to lookups with entry.ino = the
// inode number (Fs::entry_of), so nodeid and inode number are one number and
// the Storage's `ino` is the key as it stands.
#include <spdlog/spdlog.h>

#include <cstring>
#include <string>
#include <vector>

#include "bpf/iomap_loader.h"
#include "kernel/probe.h"
#include "tierfs/server/operations.h"

namespace tierfs {

namespace {

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

struct BpfPath {
  std::unique_ptr<bpf::IomapLoader> loader;
  BpfStatus status;
  kernel::KernelFeatures features;  // probed once, at mount
  int fuse_fd = -1;
  bool attach_at_init = false;  // every piece is there: attach once FUSE_INIT is done
};

std::string Fs::attach_iomap_program(int fuse_fd) {
  bpf_ = std::make_shared<BpfPath>();
  BpfStatus& status = bpf_->status;
  const FeatureMode mode = config_.mount.bpf;
  status.mode = mode;
  const bool required = mode == FeatureMode::required;
  const std::string prefix = required ? "mount.bpf = \"required\", but " : "";
  if (mode == FeatureMode::off) {
    status.server_path_reason = "mount.bpf = \"off\"";
    spdlog::info("iomap BPF path off (mount.bpf = \"off\"): the server path serves all I/O");
    return "";
  }

  // Once per mount: without BPF at all (not root, no CAP_BPF) its reason is the
  // clearest line, and the loader decides from it whether the program can attach.
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
    // The layout's base[i] is region i's device offset (the resolved geometry).
    if (const int err = bpf_->loader->set_tier(static_cast<uint32_t>(t), tier.layout(), cookies);
        err != 0)
      spdlog::warn("BPF tier map: tier \"{}\" left out ({}); its extents fall back to the server",
                   tier.name(), std::strerror(-err));
  }
  storage_->set_maps(bpf_->loader.get());
  status.maps_loaded = true;
  status.tiers_map_id = bpf_->loader->tiers_map_id();
  status.inodes_map_id = bpf_->loader->inodes_map_id();

  // Registration needs a connection that negotiated FUSE_IOMAP: the attach waits for
  // FUSE_INIT (attach_iomap_after_init). Here only whether it can ever happen is decided.
  const std::string why = kernel::iomap_program_unavailable(features);
  if (!why.empty()) {
    status.server_path_reason = first_line(why);
    if (required) {
      storage_->set_maps(nullptr);
      return prefix + status.server_path_reason;
    }
    spdlog::info("iomap BPF program not attached: {}", status.server_path_reason);
    return "";
  }
  bpf_->features = features;
  bpf_->fuse_fd = fuse_fd;
  bpf_->attach_at_init = true;
  status.server_path_reason = "waiting for FUSE_INIT to negotiate FUSE_IOMAP";
  return "";
}

void Fs::attach_iomap_after_init(bool iomap_negotiated) {
  if (!bpf_ || !bpf_->attach_at_init) return;
  bpf_->attach_at_init = false;
  BpfStatus& status = bpf_->status;
  const std::string why =
      iomap_negotiated ? bpf_->loader->attach_iomap(bpf_->fuse_fd, bpf_->features)
                       : "FUSE_INIT did not negotiate FUSE_IOMAP: the server path serves all I/O";
  if (!why.empty()) {
    status.server_path_reason = first_line(why);
    spdlog::warn("iomap BPF program not attached: {}", status.server_path_reason);
    if (why.find('\n') != std::string::npos) spdlog::debug("{}", why);
    return;
  }
  status.program_attached = true;
  status.server_path_reason.clear();
  spdlog::info("iomap BPF program attached: fuse_iomap_bpf_ops answers iomap_begin in the kernel");
}

BpfStatus Fs::bpf_status() const {
  if (!bpf_) {
    BpfStatus none;
    none.mode = config_.mount.bpf;
    none.server_path_reason = "not mounted yet";
    return none;
  }
  BpfStatus status = bpf_->status;
  if (bpf_->loader) status.map_update_errors = bpf_->loader->map_update_errors();
  return status;
}

}  // namespace tierfs
