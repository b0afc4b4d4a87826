// MountState: the one directory per mount where a server keeps what the next
// server for the same mount must find again: the lock that makes a mount
// point served by one server at a time, the unpredictable names of the numa:
// regions' shared-memory objects, and the metadata log (journal, checkpoint).
// It is `[mount] state_dir` when configured (required for persistent tiers),
// else /run/tierfs/<key> for root or $XDG_RUNTIME_DIR/tierfs/<key>, with key
// the hex XXH3-64 of the canonical mount point. Created 0700, owned by the
// mounter, walked with the trust rules of numa/region_trust.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tierfs/core/config.h"

namespace tierfs {

class MountState {
 public:
  // The state directory of a mount at `mountpoint` (canonical) under `config`.
  // Throws std::runtime_error (one line) when there is no default location.
  static std::string directory_for(const Config& config, const std::string& mountpoint);

  // Opens (creating) the state directory and takes its lock for the life of
  // the object. A second server for the same mount is refused with one line
  // naming the holder (after waiting up to 10 s for a server that is still
  // ending its unmount). With `fresh`, what a previous server left (shared
  // memory, metadata log) is discarded first. Throws std::runtime_error.
  static std::unique_ptr<MountState> open(const Config& config, const std::string& mountpoint,
                                          bool fresh);
  // For `tierfs cleanup`: the existing directory `path`, locked; nullptr when
  // it does not exist. Refused (one line) while a server holds the lock.
  static std::unique_ptr<MountState> open_existing(const std::string& path);
  ~MountState();

  int dir_fd() const { return dir_fd_; }
  const std::string& path() const { return path_; }
  // Nothing to adopt: a new directory, --fresh, or one that was cleaned.
  bool fresh() const { return fresh_; }

  // The built-in default sizes its tier from the memory free at mount time,
  // so a restart would compute another size and could not adopt what the
  // previous server left. The first server records the size it chose; a
  // later one (state not fresh) takes the recorded size instead. Explicit
  // configurations are left as they are. Throws std::runtime_error.
  void keep_default_size(Config& config);

  // The shared-memory name of numa: region `index` of tier `tier`: the name a
  // previous server recorded (its object is adopted if it still exists), or a
  // new unpredictable one, recorded before the object is created so that a
  // crash in between leaves nothing `tierfs cleanup` cannot find.
  std::string shm_name(const std::string& tier, size_t index);
  // Removes the shared memory recorded for region `index` of `tier`, and its
  // record, if any: a tier that no longer maps its regions (a kernel-path
  // tier; states of older versions mapped them too).
  void forget_shm(const std::string& tier, size_t index) const;
  // The identity line (numa::region_identity) recorded for file: region
  // `index` of tier `tier` once tierfs claimed its object, "" when none:
  // what makes a block device or a file on a file system without user xattrs
  // tierfs's own at the next mount (numa/region_claim.h). Records stay with
  // the directory: across kill -9, and across a persistent mount's unmount.
  std::string region_identity(const std::string& tier, size_t index) const;
  void record_region(const std::string& tier, size_t index, const std::string& identity);
  // Every recorded shared-memory name, "/tierfs.<uid>.<hex>".
  std::vector<std::string> shm_names() const;

  // Removes the shared-memory objects and their records (memory back to the
  // system); the rest stays (a persistent mount's metadata). Returns one line
  // per thing removed.
  std::vector<std::string> remove_shared_memory();
  // The shared memory and the kernel path's tmpfs (detached, its files with
  // it): every byte of memory a dead mount holds, its metadata kept
  // (`tierfs cleanup` of a persistent mount). Returns one line per thing removed.
  std::vector<std::string> remove_memory();
  // Everything: shared memory, every file in the directory, the directory
  // (clean unmount of a scratch mount, `tierfs cleanup`). The lock is held
  // until the object goes and is the last file removed; a server that
  // mounts in the instant between it and the directory keeps the directory.
  // Returns one line per thing removed.
  std::vector<std::string> remove_all();

  MountState(const MountState&) = delete;
  MountState& operator=(const MountState&) = delete;

 private:
  MountState() = default;
  // Opens the directory and takes its lock, waiting up to 10 s for a server
  // that is still ending; false when !create and the directory is gone.
  bool lock_current(bool create, const std::string& what);
  void close_fds();
  std::vector<std::string> entries() const;
  // Removes one entry: a file, or a kernel-path tier's tmpfs (detached).
  // Returns the line to report for a tmpfs, else "". Throws one line.
  std::string remove_entry(const std::string& name);

  std::string path_;
  int dir_fd_ = -1;
  int lock_fd_ = -1;
  bool fresh_ = false;
  bool created_ = false;  // the directory was made by this open
};

}  // namespace tierfs
