// RequestTraffic: the bytes one data request moved per tier and region of a
// mount, counted into the tiers' statistics once the request is done.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "tierfs/core/storage.h"

namespace tierfs {

// Bytes one request moved per tier and region, counted when the request is
// done, so a region it reached through several runs counts one operation.
class RequestTraffic {
 public:
  void add(uint32_t tier, uint32_t region, uint64_t bytes) {
    bytes_of(tier)[region % TIERFS_MAX_WAYS] += bytes;
  }
  void count_reads(Storage& storage) const {
    each([&](uint32_t tier, const Tier::RegionBytes& b) { storage.tier(tier).count_read(b); });
  }
  void count_writes(Storage& storage) const {
    each([&](uint32_t tier, const Tier::RegionBytes& b) { storage.tier(tier).count_write(b); });
  }

 private:
  struct Slot {
    uint32_t tier;
    Tier::RegionBytes bytes;
  };
  static constexpr uint32_t kNoTier = std::numeric_limits<uint32_t>::max();
  Tier::RegionBytes& bytes_of(uint32_t tier) {
    if (first_.tier == kNoTier || first_.tier == tier) {
      first_.tier = tier;
      return first_.bytes;
    }
    for (Slot& slot : more_)
      if (slot.tier == tier) return slot.bytes;
    return more_.emplace_back(Slot{tier, {}}).bytes;
  }
  template <typename Visit>
  void each(Visit&& visit) const {
    if (first_.tier != kNoTier) visit(first_.tier, first_.bytes);
    for (const Slot& slot : more_) visit(slot.tier, slot.bytes);
  }
  // A request nearly always stays in one tier: no allocation for that one.
  Slot first_{kNoTier, {}};
  std::vector<Slot> more_;
};

}  // namespace tierfs
