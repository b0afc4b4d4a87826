// BackingStore: where the kernel path keeps its files' bytes. Each
// kernel-path tier gets a private tmpfs mounted in the mount's state
// directory (root-only, 0700, outside the mount and every job's view), sized
// to the tier's capacity, with huge pages when the tier's granularity is a
// huge page. A file's bytes are one file in it, named by inode number, whose
// shared memory policy (numa/file_policy.h) spreads its pages over the tier's
// nodes. The tmpfs outlives a killed server, so a restart adopts every file;
// a clean unmount of a scratch mount and `tierfs cleanup` detach it
// (MountState::remove_all).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "numa/file_policy.h"
#include "tierfs/core/backing_file.h"
#include "tierfs/core/config.h"

namespace tierfs {

class BackingStore {
 public:
  // Mounts (or, after a crash, adopts) the tmpfs of every tier whose data
  // path is the kernel's, and writes the node weights of weighted tiers
  // where [mount] set_node_weights allows it. Throws std::runtime_error
  // (one line). Null when no tier takes the kernel path.
  static std::unique_ptr<BackingStore> open(const Config& config, int state_dir_fd,
                                            const std::string& state_dir);
  ~BackingStore();
  BackingStore(const BackingStore&) = delete;
  BackingStore& operator=(const BackingStore&) = delete;

  // Whether new files of `tier` take the kernel path.
  bool serves(uint32_t tier) const;
  // The backing file of inode `ino` on `tier`: a new one (its policy set
  // first, so no page is placed before it) or, with !create, the existing
  // one. Null and `error` (one line, errno in `err`) when it cannot be.
  std::unique_ptr<BackingFile> open_file(uint64_t ino, uint32_t tier, bool create, int& err,
                                         std::string& error) const;
  // A new backing file of `tier` with no name yet (O_TMPFILE, its policy set
  // before any page): a migration's copy, named with BackingFile::link at
  // the switch, so that a crash before it leaves nothing behind.
  std::unique_ptr<BackingFile> open_unnamed(uint32_t tier, int& err, std::string& error) const;
  // Every backing file present, as (tier, inode number): what a restart adopts.
  std::vector<std::pair<uint32_t, uint64_t>> files() const;
  // Removes a backing file no inode owns (a file unlinked before a crash).
  void remove_orphan(uint32_t tier, uint64_t ino) const;
  // The tmpfs of `tier`: its size and the bytes its files hold.
  struct Usage {
    uint64_t capacity_bytes = 0;
    uint64_t used_bytes = 0;
  };
  Usage usage(uint32_t tier) const;

 private:
  BackingStore() = default;
  struct TierStore {
    int dir_fd = -1;  // -1: the tier is on the server path
    std::string path;
    ::numa::FilePolicy policy;
  };
  std::vector<TierStore> tiers_;
};

// The name of a kernel-path tier's tmpfs in the state directory.
std::string backing_dir_name(const std::string& tier_name);

}  // namespace tierfs
