// BackingStore: where the kernel path keeps its files' bytes. A file's bytes
// are one file in a private tmpfs mounted in the mount's state directory
// (root-only, 0700, outside the mount and every job's view), whose shared
// memory policy (numa/file_policy.h) spreads its pages over its tier's
// nodes. Kernel-path tiers that want the same tmpfs (huge pages or not: the
// granularity class) share one, so that a file moves between them in place:
// only its policy and its name change, and the kernel moves the pages. The
// tmpfs is sized to the class's tiers together plus a headroom; each tier's
// own capacity is the server's accounting of its files' bytes.
//
// A backing file is named "<inode>.<tier>": the name is the record of its
// tier, changed by one rename, so a restart knows each file's tier. The
// tmpfs is mounted with its first tier's policy (mpol=), which the kernel
// gives each new file: that tier's files need no mbind of their own. A move
// in progress is named "<inode>.<tier>.moving" (the new tier) until its pages
// have moved; a restart that finds one finishes the move. Between the two
// tmpfs a file moves by copy (migrate_between_backings): the old file is
// "<inode>.<tier>.retired" until the copy has its name. The tmpfs outlives
// a killed server, so a restart adopts every file; a clean unmount of a
// scratch mount and `tierfs cleanup` detach it (MountState::remove_all).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "numa/file_policy.h"
#include "tierfs/core/backing_file.h"
#include "tierfs/core/config.h"

namespace tierfs {

class BackingStore {
 public:
  // Mounts (or, after a crash, adopts) the tmpfs of every granularity class
  // some kernel-path tier has, and writes the node weights of weighted tiers
  // where [mount] set_node_weights allows it. Throws std::runtime_error
  // (one line). Null when no tier takes the kernel path.
  static std::unique_ptr<BackingStore> open(const Config& config, int state_dir_fd,
                                            const std::string& state_dir);
  ~BackingStore();
  BackingStore(const BackingStore&) = delete;
  BackingStore& operator=(const BackingStore&) = delete;

  // Whether new files of `tier` take the kernel path.
  bool serves(uint32_t tier) const;
  // Whether two kernel-path tiers share a tmpfs (files move in place).
  bool moves_files() const;
  // Whether a file moves between the two kernel-path tiers in place (they
  // share a tmpfs); else one line saying why not in `why`.
  bool moves_in_place(uint32_t from, uint32_t to, std::string& why) const;
  // The backing file of inode `ino` on `tier`: a new one (its policy set
  // first, so no page is placed before it) or, with !create, the existing
  // one. Null and `error` (one line, errno in `err`) when it cannot be.
  // `keep_created`: the new file keeps the descriptor it was made with for
  // the open that follows (BackingFile::take_created).
  std::unique_ptr<BackingFile> open_file(uint64_t ino, uint32_t tier, bool create, int& err,
                                         std::string& error, bool keep_created = false) const;
  // A new backing file of `tier` with no name yet (O_TMPFILE, its policy set
  // before any page): a migration's copy, named file_name() with
  // BackingFile::link at the switch, so that a crash before it leaves nothing.
  std::unique_ptr<BackingFile> open_unnamed(uint32_t tier, int& err, std::string& error) const;
  // The name of the backing file of `ino` on `tier`, and the name it takes
  // while a copy replaces it (migrate_between_backings).
  std::string file_name(uint64_t ino, uint32_t tier) const;
  std::string retired_name(uint64_t ino, uint32_t tier) const;

  // A backing file found in a store (what a restart adopts).
  struct Found {
    size_t store = 0;
    std::string name;
    uint64_t ino = 0;
    std::optional<uint32_t> tier;  // none: its name names no kernel-path tier of this store
    bool moving = false;           // a move to `tier` did not finish
    bool retired = false;          // a copy was replacing it (keep it only if the copy is gone)
  };
  std::vector<Found> files() const;
  // Opens a found file as a backing file of `tier` (a tier of its store):
  // renamed to file_name(ino, tier) when it is not so named, its pages moved
  // to the tier's nodes when it was `moving` or named for another tier.
  // files() lists retired files last: one whose inode took another file
  // is dropped, one whose copy never got its name is taken back.
  std::unique_ptr<BackingFile> adopt(const Found& found, uint32_t tier, int& err,
                                     std::string& error) const;
  // Removes a backing file no inode owns (a file unlinked before a crash).
  void remove(const Found& found) const;
  // The kernel-path tier a found file of no (known) tier goes to: `preferred`
  // when it is one of the store's, else the store's first.
  uint32_t fallback_tier(size_t store, uint32_t preferred) const;

  // The in-place move of `file` to `to` (moves_in_place): begin_move renames
  // it "<ino>.<to>.moving" (from then on its tier is `to`), move_pages gives
  // it the tier's policy and moves its pages (no lock needed: the kernel
  // moves pages under open files and live mappings), end_move renames it
  // "<ino>.<to>". 0 or -errno; move_pages: "" or one line.
  int begin_move(BackingFile& file, uint64_t ino, uint32_t to) const;
  std::string move_pages(int fd, uint32_t to, ::numa::PageMoves& moves) const;
  // Gives the backing file open on `fd` the policy of `tier` for the pages
  // it allocates from now on (a full tier's files take the next tier's,
  // Mover's spill); the pages it has stay. "" or one line.
  std::string set_policy(int fd, uint32_t tier) const;
  // Whether the two kernel-path tiers share a tmpfs.
  bool same_store(uint32_t a, uint32_t b) const;
  int end_move(BackingFile& file, uint64_t ino) const;

  // The tmpfs that `tier` shares: its size and the bytes all its files hold.
  struct Usage {
    uint64_t capacity_bytes = 0;
    uint64_t used_bytes = 0;
  };
  Usage store_usage(uint32_t tier) const;
  // What every store's files hold together (cheap: one statfs per store).
  uint64_t used_bytes() const;

 private:
  BackingStore() = default;
  struct Store {
    int dir_fd = -1;
    std::string path;
    std::string name;  // "page" or "huge"
    uint64_t folio_bytes = 0;
    uint64_t headroom_bytes = 0;  // its size past its tiers' capacities
    // The tier whose policy the tmpfs gives every new file (mpol=, its
    // first tier's), so that its files need no mbind; -1: none.
    int policy_tier = -1;
  };
  struct TierStore {
    int store = -1;  // -1: the tier is on the server path
    std::string name;
    ::numa::FilePolicy policy;
  };
  // `index` (the tier `tier`) when a new file of `st` has that tier's policy, else -1.
  int new_files_have(const Store& st, const TierStore& tier, size_t index) const;
  // Gives the new file open on `fd` (named `name`, "" for none) the tier's
  // policy; false, the file unlinked, and `err` and `error` set when it cannot.
  bool policy_set(int fd, const TierStore& tier, const std::string& name, int& err,
                  std::string& error) const;
  std::vector<Store> stores_;
  std::vector<TierStore> tiers_;
};

// The granularity class of a kernel-path tier ("page" or "huge"), and the
// name of its tmpfs in the state directory.
std::string backing_class(const TierConfig& tier);
std::string backing_dir_name(const std::string& class_name);

}  // namespace tierfs
