// Full kernel-path tiers (mover.h, look_at_kernel_tiers). The kernel writes
// a kernel-path file without the server, so nothing stops a write at the
// tier's capacity: the tiers that share a tmpfs may fill all of it (their
// capacities together plus the headroom, backing_store.h), and a write
// fails with ENOSPC only when it is full. What the mover does at each look
// is keep each tier's pages on its own nodes up to its capacity:
//  - a tier whose files hold its capacity, counting what they grew since
//    the last look, is full: its files get the policy of the first tier
//    below it in the same tmpfs that has room (set with mbind, no move), so
//    their new pages land on that tier's nodes, and new files of the tier
//    are made on that tier. The files stay the full tier's (their names and
//    its accounting say so); the watermark mover demotes its coldest ones;
//  - once the tier is back under its high watermark (90 % without
//    watermarks) its files get its own policy again, and the pages those
//    that grew meanwhile put on the other tier's nodes move back (in place,
//    as a move between tiers does).
// A tier's nodes can thus take more than its capacity only by what its
// writers add within one look ([mover] interval_ms), or, with no tier below
// with room, up to the tmpfs's headroom.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "tierfs/server/backing_store.h"
#include "tierfs/server/fs.h"
#include "tierfs/server/mover.h"

namespace tierfs {

uint32_t Mover::new_file_tier(uint32_t tier) const {
  std::lock_guard guard(lock_);
  return tier < spill_to_.size() && spill_to_[tier] >= 0 ? static_cast<uint32_t>(spill_to_[tier])
                                                         : tier;
}

std::vector<int> Mover::kernel_spills() const {
  std::lock_guard guard(lock_);
  return spill_to_;
}

bool Mover::with_backing_fd(const InodePtr& inode, uint32_t tier, bool reopen,
                            const std::function<void(int)>& step) {
  {
    std::lock_guard guard(lock_);
    // A migration of the file sets its policy itself.
    if (in_flight_.count(inode->ino) != 0) return false;
  }
  std::shared_lock guard(inode->lock);
  const BackingFile* backing = inode->data_released ? nullptr : inode->data->backing();
  if (backing == nullptr || backing->tier() != tier) return false;
  const BackingFile::Fd fd = backing->open();
  if (fd.get() < 0) return false;
  // A long step runs without the lock: an unlink meanwhile removes the
  // name, not this descriptor's file.
  if (reopen) guard.unlock();
  step(fd.get());
  return true;
}

void Mover::spill(uint32_t from, uint32_t to, const std::vector<KernelFile>& files) {
  const BackingStore& store = *fs_.backing_store();
  for (const KernelFile& file : files) {
    if (file.tier != from) continue;
    {
      std::lock_guard guard(lock_);
      auto it = spilled_.find(file.inode->ino);
      if (it != spilled_.end() && it->second.to == to) continue;
    }
    std::string why;
    if (!with_backing_fd(file.inode, from, false, [&](int fd) { why = store.set_policy(fd, to); }))
      continue;
    if (!why.empty()) {
      spdlog::warn("kernel path: inode {}: {}", file.inode->ino, why);
      continue;
    }
    std::lock_guard guard(lock_);
    auto [it, fresh] =
        spilled_.try_emplace(file.inode->ino, Spilled{from, to, file.allocated_bytes});
    it->second.to = to;  // a new target keeps the first base: all growth since is elsewhere
  }
}

void Mover::end_spill(uint32_t tier, const std::vector<KernelFile>& files) {
  const BackingStore& store = *fs_.backing_store();
  std::vector<std::pair<KernelFile, Spilled>> back;
  {
    std::lock_guard guard(lock_);
    for (const KernelFile& file : files) {
      auto it = spilled_.find(file.inode->ino);
      if (it != spilled_.end() && it->second.from == tier && file.tier == tier)
        back.emplace_back(file, it->second);
    }
  }
  uint64_t moved = 0, left = 0;
  for (const auto& [file, spilled] : back) {
    // Pages it allocated while spilling are on the other tier's nodes: back
    // with them (the tier's accounting counted them all along).
    const bool grew = file.allocated_bytes > spilled.base_bytes;
    std::string why;
    ::numa::PageMoves moves;
    const bool done = with_backing_fd(file.inode, tier, grew, [&](int fd) {
      why = grew ? store.move_pages(fd, tier, moves) : store.set_policy(fd, tier);
    });
    if (!done) continue;  // migrating: its move sets the policy
    if (!why.empty()) spdlog::warn("kernel path: inode {}: {}", file.inode->ino, why);
    moved += moves.moved_pages;
    left += moves.left_pages;
    std::lock_guard guard(lock_);
    spilled_.erase(file.inode->ino);
  }
  spdlog::info(
      "kernel path: tier {} is under its capacity again: its files' new pages are its own, "
      "{} pages moved back ({} left where they were)",
      fs_.config().tiers[tier].name, moved, left);
}

void Mover::look_at_kernel_tiers() {
  const BackingStore* store = fs_.backing_store();
  if (store == nullptr) return;
  const std::vector<TierConfig>& tiers = fs_.config().tiers;
  std::vector<int> spilling;
  {
    std::lock_guard guard(lock_);
    spill_to_.resize(tiers.size(), -1);
    last_kernel_used_.resize(tiers.size(), 0);
    spilling = spill_to_;
  }
  // Nothing to look at while the tmpfs hold less than any kernel-path
  // tier's capacity and no tier spills: one statfs per tmpfs, not a stat per file.
  uint64_t smallest = UINT64_MAX;
  for (uint32_t t = 0; t < tiers.size(); ++t)
    if (store->serves(t)) smallest = std::min(smallest, tiers[t].geometry.capacity_bytes);
  const uint64_t total = store->used_bytes();
  const uint64_t total_growth = total > last_store_used_ ? total - last_store_used_ : 0;
  last_store_used_ = total;
  if (std::all_of(spilling.begin(), spilling.end(), [](int to) { return to < 0; }) &&
      total + total_growth < smallest) {
    kernel_used_known_ = false;
    return;
  }
  const std::vector<KernelFile> files = fs_.kernel_files();
  std::vector<uint64_t> used(tiers.size(), 0), load(tiers.size(), 0), growth(tiers.size(), 0);
  for (const KernelFile& file : files) used[file.tier] += file.allocated_bytes;
  load = used;
  {
    std::lock_guard guard(lock_);
    // What spilling files grew is on their target's nodes; drop the ones
    // gone (unlinked, moved: their move set their policy).
    std::unordered_map<uint64_t, const KernelFile*> by_ino;
    for (const KernelFile& file : files) by_ino[file.inode->ino] = &file;
    for (auto it = spilled_.begin(); it != spilled_.end();) {
      auto found = by_ino.find(it->first);
      if (found == by_ino.end() || found->second->tier != it->second.from) {
        it = spilled_.erase(it);
        continue;
      }
      const uint64_t now = found->second->allocated_bytes;
      const uint64_t extra = now > it->second.base_bytes ? now - it->second.base_bytes : 0;
      load[it->second.from] -= std::min(load[it->second.from], extra);
      load[it->second.to] += extra;
      ++it;
    }
    // Growth since the last look that counted (none on the first after a
    // quiet spell: its baseline is gone).
    for (uint32_t t = 0; t < tiers.size(); ++t) {
      if (kernel_used_known_ && used[t] > last_kernel_used_[t])
        growth[t] = used[t] - last_kernel_used_[t];
      last_kernel_used_[t] = used[t];
    }
    kernel_used_known_ = true;
  }
  auto room_below = [&](uint32_t t) -> int {
    for (uint32_t u = t + 1; u < tiers.size(); ++u)
      if (store->same_store(t, u) && spilling[u] < 0 &&
          load[u] + growth[u] < tiers[u].geometry.capacity_bytes)
        return static_cast<int>(u);
    return -1;
  };
  for (uint32_t t = 0; t < tiers.size() && !stop_.load(); ++t) {
    if (!store->serves(t)) continue;
    const uint64_t capacity = tiers[t].geometry.capacity_bytes;
    const unsigned mark = tiers[t].high_watermark != 0 ? tiers[t].high_watermark : 90;
    if (spilling[t] >= 0 && used[t] + growth[t] < capacity / 100 * mark) {
      end_spill(t, files);
      spilling[t] = -1;
    } else if (spilling[t] >= 0 || used[t] + growth[t] >= capacity) {
      const int to = room_below(t);
      if (to < 0) {
        if (!warned_no_room_)
          spdlog::warn(
              "kernel path: tier {} is full ({} of {}) and no kernel-path tier below it in its "
              "tmpfs has room: its pages go past its capacity, into the tmpfs's headroom",
              tiers[t].name, used[t], capacity);
        warned_no_room_ = true;
        continue;  // a spill in place keeps its target
      }
      if (spilling[t] != to)
        spdlog::info(
            "kernel path: tier {} is full ({} B of {} B, {} B more since the last look): its "
            "files' new pages go to tier {}'s nodes",
            tiers[t].name, used[t], capacity, growth[t], tiers[to].name);
      spilling[t] = to;
      {
        std::lock_guard guard(lock_);
        spill_to_[t] = to;
      }
      // Every file of the tier, also the ones that came since the last look.
      spill(t, static_cast<uint32_t>(to), files);
    }
    std::lock_guard guard(lock_);
    spill_to_[t] = spilling[t];
  }
}

}  // namespace tierfs
