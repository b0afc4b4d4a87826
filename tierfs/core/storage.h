// Storage: all tiers of a mount, ranked as configured, opened from the
// configuration. No FUSE types here: tierfs/server/ adapts the data layer to
// the low-level API. Hot-path errors are negative errno values.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "bpf/iomap_maps.h"
#include "tierfs/core/config.h"
#include "tierfs/core/mount_state.h"
#include "tierfs/core/tier.h"

namespace tierfs {

class Journal;

// All tiers of a mount, ranked as configured (index 0 is the fastest).
class Storage {
 public:
  // Opens every region of every tier as its resolved geometry says (the
  // config is validated, or each tier.geometry set with tier_geometry).
  // Throws std::runtime_error with one line naming the tier and region when
  // a region cannot be mapped. With `state`, numa: regions are shared memory
  // under the names recorded there, adopted when a previous server left them;
  // without, unnamed (tools and tests).
  static std::unique_ptr<Storage> open(const Config& config, MountState* state = nullptr);
  // Tiers over regions the caller opened: regions[t][i] maps
  // config.tiers[t].geometry.regions[i], at least its bytes.
  static std::unique_ptr<Storage> create(
      const Config& config, std::vector<std::vector<std::unique_ptr<numa::Region>>> regions);
  size_t tier_count() const;
  Tier& tier(size_t index);
  int tier_index(std::string_view name) const;
  std::vector<TierStats> stats() const;
  // Clean unmount from here on: persistent tiers keep the bytes of what is freed.
  void prepare_unmount();
  // A reply built from `pieces` (pointers into region memory) could not be
  // copied out: every page of them that faults (guarded, copy_guard.h) marks
  // its block bad in its tier. Returns the pages found bad.
  size_t retire_faulting(std::span<const iovec> pieces);
  uint64_t capacity_bytes() const;
  uint64_t free_bytes() const;
  // The BPF maps told about every change of a file's extents; nullptr when none.
  void set_maps(bpf::IomapMaps* maps);
  bpf::IomapMaps* maps() const;
  // The metadata log: with one, FileData logs blocks it allocates before
  // copying into them and defers the blocks it drops until the caller has
  // logged the change (FileData::free_deferred). nullptr: frees are immediate.
  void set_journal(Journal* journal);
  Journal* journal() const;

 private:
  Storage() = default;
  std::vector<std::unique_ptr<Tier>> tiers_;
  std::atomic<bpf::IomapMaps*> maps_{nullptr};
  Journal* journal_ = nullptr;  // set before serving, cleared after
};

}  // namespace tierfs
