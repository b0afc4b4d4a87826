// The loader of tierfs's BPF programs (iomap.bpf.c and its twin, twin.bpf.c,
// with the structs they share in iomap.h and twin.h): owns the tier and inode
// maps, keeps them current for the server (IomapMaps), always loads the twin, and
// attaches the fuse_iomap_bpf_ops program where the running kernel has it.
// Also maps batches of requests through the twin in the kernel and through
// the same header code in C++, for `tierfs bpf check`, tests and benchmarks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/iomap.h"
#include "bpf/iomap_maps.h"
#include "bpf/twin.h"
#include "kernel/probe.h"

struct bpf_link;
struct bpf_object;
struct twin;

namespace tierfs::bpf {

// What the verifier said about one program.
struct ProgramReport {
  std::string name;
  bool loaded = false;
  uint32_t object_insns = 0;    // instructions in the object file
  uint32_t verified_insns = 0;  // instructions the verifier processed
  uint32_t xlated_bytes = 0;
  uint32_t jited_bytes = 0;
  std::string log;  // libbpf's and the verifier's messages when loading failed
};

// A copy of the maps as the kernel holds them, read back with map lookups.
struct MapsSnapshot {
  std::vector<tierfs_tier_value> tiers;  // TIERFS_MAX_TIERS entries, zero where unset
  std::unordered_map<uint64_t, tierfs_inode_value> inodes;
};

// The C++ compile of the struct_ops program's iomap_begin: same header code,
// answers from a snapshot instead of BPF maps.
tierfs_twin_answer map_request_in_userspace(const MapsSnapshot& maps,
                                            const tierfs_twin_request& request);

// What the struct_ops object declares, read from its BTF without loading it
// (works on every kernel): the type and member names CO-RE will resolve.
struct IomapObjectNames {
  std::string struct_ops_type;  // the value type of the struct_ops map
  std::vector<std::string> members;
  std::vector<std::string> programs;
};
std::optional<IomapObjectNames> inspect_iomap_object(std::string& error);

class IomapLoader final : public IomapMaps {
 public:
  // Creates the maps and loads the twin. nullptr and `error` (one line, with
  // the verifier log after it when the verifier refused) when that fails.
  static std::unique_ptr<IomapLoader> load(std::string& error);
  ~IomapLoader() override;
  IomapLoader(const IomapLoader&) = delete;
  IomapLoader& operator=(const IomapLoader&) = delete;

  int set_tier(uint32_t tier, const tierfs_layout& layout,
               std::span<const uint32_t> device_cookies) override;
  // Runs inside write, fallocate, truncate and release, under the inode's
  // lock: one bpf() map update each. The first failure is logged; all are counted.
  int set_extents(uint64_t nodeid, std::span<const tierfs_extent> extents) override;
  int remove_inode(uint64_t nodeid) override;
  uint64_t map_update_errors() const { return map_update_errors_.load(std::memory_order_relaxed); }

  // Loads the struct_ops program for the FUSE session on `fuse_fd` and
  // attaches it with a link, where `features` (probed once by the caller)
  // has every piece. Call it only once FUSE_INIT negotiated FUSE_IOMAP: the
  // kernel refuses the registration (EOPNOTSUPP) on any other connection.
  // Empty when attached; otherwise the one line that says why the server
  // path serves (log it once and carry on).
  std::string attach_iomap(int fuse_fd, const kernel::KernelFeatures& features);
  bool iomap_attached() const { return iomap_link_ != nullptr; }
  // Loads the struct_ops program through the verifier without attaching it
  // (`tierfs bpf check`). Empty when the kernel accepted it; otherwise why not.
  std::string verify_iomap(const kernel::KernelFeatures& features);

  // Kernel ids of the two maps: any root process (a test, bpftool) can open
  // them with bpf_map_get_fd_by_id and read what the program reads.
  uint32_t tiers_map_id() const { return tiers_map_id_; }
  uint32_t inodes_map_id() const { return inodes_map_id_; }

  // Maps the requests through the twin in the running kernel, in runs of
  // TIERFS_TWIN_BATCH. 0 or -errno.
  int map_in_kernel(std::span<const tierfs_twin_request> requests,
                    std::span<tierfs_twin_answer> answers);
  // Reads the maps back from the kernel (one lookup per entry).
  int snapshot(MapsSnapshot& out) const;

  const ProgramReport& twin_report() const { return twin_report_; }
  // Present once attach_iomap() tried to load the struct_ops program.
  const std::optional<ProgramReport>& iomap_report() const { return iomap_report_; }

 private:
  IomapLoader() = default;
  std::string load_iomap_object(int fuse_fd, bool attach);
  void map_update_failed(const char* what, uint64_t nodeid, int err, int remove_err);

  twin* twin_ = nullptr;
  int twin_prog_fd_ = -1;
  int tiers_fd_ = -1;
  int inodes_fd_ = -1;
  uint32_t tiers_map_id_ = 0;
  uint32_t inodes_map_id_ = 0;
  ProgramReport twin_report_;
  std::optional<ProgramReport> iomap_report_;
  bpf_object* iomap_object_ = nullptr;
  bpf_link* iomap_link_ = nullptr;
  std::atomic<uint64_t> map_update_errors_{0};
};

}  // namespace tierfs::bpf
