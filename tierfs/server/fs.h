// The Fs object: the server's state for one mount (configuration, Storage,
// placement, the inode table, operation counters, open handles and the
// iomap BPF path).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tierfs/core/config.h"
#include "tierfs/core/journal.h"
#include "tierfs/core/placement.h"
#include "tierfs/core/storage.h"
#include "tierfs/server/inode.h"

namespace tierfs {

enum class Op : unsigned {
  lookup,
  forget,
  getattr,
  setattr,
  readlink,
  mknod,
  mkdir,
  unlink,
  rmdir,
  symlink,
  rename,
  link,
  open,
  read,
  write,
  flush,
  release,
  fsync,
  opendir,
  readdir,
  releasedir,
  fsyncdir,
  statfs,
  setxattr,
  getxattr,
  listxattr,
  removexattr,
  access,
  create,
  fallocate,
  lseek,
  readdirplus,
  ioctl,
  count_
};
const char* op_name(Op op);

// What the iomap BPF path of a mount is doing (user.tierfs.stats "bpf").
struct BpfStatus {
  FeatureMode mode = FeatureMode::automatic;
  bool maps_loaded = false;        // twin and maps loaded, maps follow every extent change
  bool program_attached = false;   // fuse_iomap_bpf_ops answers iomap_begin in the kernel
  std::string server_path_reason;  // why not attached (one line); empty when attached
  uint32_t tiers_map_id = 0;       // kernel ids for bpf_map_get_fd_by_id; 0 when not loaded
  uint32_t inodes_map_id = 0;
  uint64_t map_update_errors = 0;
};
struct BpfPath;        // fs_bpf.cc
class BackingStore;    // backing_store.h
class Mover;           // mover.h
struct MigrateResult;  // tierfs/core/migrate.h

class Fs {
 public:
  Fs(Config config, std::unique_ptr<Storage> storage);
  ~Fs();

  const Config& config() const { return config_; }
  Storage& storage() { return *storage_; }
  const Placement& placement() const { return placement_; }

  // Inode table. Inode numbers grow and are never reused during a mount.
  InodePtr find(fuse_ino_t ino) const;
  InodePtr make_inode(mode_t mode, uid_t uid, gid_t gid);
  // The kernel now holds one more reference (an entry reply or create).
  void remember(Inode& inode);
  void forget(fuse_ino_t ino, uint64_t count);
  // Gives back an unlinked file's rows once it is closed, and drops the
  // inode from the table once the kernel forgot it as well.
  void maybe_drop(const InodePtr& inode);
  size_t inode_count() const;
  // Every regular file in the table (the mover's candidates).
  std::vector<InodePtr> regular_files() const;
  // Migrations: by hand (ioctl, user.tierfs.tier) and the watermark mover.
  Mover& mover() { return *mover_; }
  // The mount's session, for notifications to the kernel (null until mounted).
  void set_session(fuse_session* session) { session_ = session; }
  fuse_session* session() const { return session_; }

  // Path from the mount root ("dir/sub/name"); caller holds namespace_lock.
  std::string path_of(uint64_t parent, const std::string& name) const;
  // The tier that the directory's user.tierfs.tier (or its ancestors') names; caller holds
  // namespace_lock.
  std::optional<uint32_t> inherited_tier(uint64_t dir_ino) const;

  void count(Op op) {
    op_counts_[static_cast<unsigned>(op)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t op_count(Op op) const { return op_counts_[static_cast<unsigned>(op)].load(); }

  // Fills `attr` from the inode; caller holds its lock.
  void fill_attr(const Inode& inode, struct stat& attr) const;
  // An entry reply for the inode; caller holds its lock. `made_empty`: the
  // reply of the CREATE that made it (Fs::kernel_attrs_settled).
  fuse_entry_param entry_of(const Inode& inode, bool made_empty = false) const;
  // How long the kernel may keep an inode's attributes, and a name (or its
  // absence), without asking: fs_inode.cc says why these lengths. The
  // caller holds the inode's lock (a migration may switch its data path).
  double attr_timeout_s(const Inode& inode, bool made_empty = false) const;
  static double entry_timeout_s();

  // The iomap BPF path (fs_bpf.cc), once the session's /dev/fuse descriptor
  // exists: loads the maps and the twin, writes every tier's layout, keeps
  // the extents current as the Storage's IomapMaps, and attaches the
  // fuse_iomap_bpf_ops program where the kernel has it. Returns the one line
  // that must fail the mount (mount.bpf = "required"), else empty.
  std::string attach_iomap_program(int fuse_fd);
  // From FUSE_INIT: attaches the program when the mount found every piece and
  // the connection negotiated FUSE_IOMAP; otherwise records why not.
  void attach_iomap_after_init(bool iomap_negotiated);
  BpfStatus bpf_status() const;

  // Open file handles live here, so that the ones the kernel never released
  // (the server stopped with files open) are freed with the mount.
  FileHandle* add_handle(std::unique_ptr<FileHandle> handle);
  std::unique_ptr<FileHandle> take_handle(FileHandle* handle);

  // Stored extended attributes across the mount (user.tierfs.stats): each
  // inode is limited by fs_xattr.cc, this is what they hold together.
  void count_xattrs(int64_t count_delta, int64_t bytes_delta) {
    xattr_count_.fetch_add(static_cast<uint64_t>(count_delta), std::memory_order_relaxed);
    xattr_bytes_.fetch_add(static_cast<uint64_t>(bytes_delta), std::memory_order_relaxed);
  }
  uint64_t xattr_count() const { return xattr_count_.load(); }
  uint64_t xattr_bytes() const { return xattr_bytes_.load(); }

  // The metadata log (fs_journal.cc). attach_journal rebuilds the namespace
  // from the journal's replayed image (throws one line when the image cannot
  // be taken over) and from then on every change is logged.
  void attach_journal(std::unique_ptr<Journal> journal);
  Journal* journal() const { return journal_.get(); }
  // Clean unmount: a persistent mount checkpoints (its files stay), a scratch
  // mount removes its log (its files go with the regions).
  void close_journal(bool keep_files, int state_dir_fd);
  // The inode as the log records it; caller holds its lock.
  static InodeMeta meta_of(const Inode& inode);
  // Appends `records` and the current state of `inodes` (null ones skipped)
  // as one frame, holding the inodes' locks until it is written so that
  // records of one inode reach the log in the order of its changes. The
  // caller holds none of those locks. A no-op without a journal.
  void log_change(RecordBuilder& records, std::initializer_list<Inode*> inodes);
  // Logs `extra` (may be null) and the inode as one frame (caller holds its
  // lock uniquely), then gives back the blocks the change dropped.
  void log_inode_locked(Inode& inode, RecordBuilder* extra = nullptr);
  // An empty builder of the calling thread for one change.
  static RecordBuilder& change_records();
  // The log's `drop` of an inode no name and no handle keeps (caller holds its lock).
  void log_drop_locked(Inode& inode);
  // tierfs check of the running mount: the log's image and the allocators.
  std::vector<std::string> check_problems();

  // The kernel data path (fs_kernel_path.cc). open_backing_store mounts or
  // adopts the kernel-path tiers' tmpfs (throws one line); give_data_path
  // gives a new regular file a backing file when its tier is on the kernel
  // path (0 or an errno value; caller holds the inode's lock or owns it
  // alone; `for_open`: an open of it follows in this request, which takes
  // the new file's descriptor, BackingFile::take_created);
  // adopt_backing_files, after the log's replay, gives each file the
  // backing file a previous server left and removes the ones nobody owns.
  void open_backing_store(int state_dir_fd, const std::string& state_dir);
  int give_data_path(Inode& inode, bool for_open = false);
  void adopt_backing_files();
  const BackingStore* backing_store() const { return backing_store_.get(); }
  // The path the file's bytes take; caller holds its lock.
  DataPath data_path_of(const Inode& inode) const;
  // Whether the kernel may keep a kernel-path file's attributes for long
  // (fs_kernel_path.cc says when: may ask the kernel for a lease); notes
  // that it was told so, for the next writable passthrough open to undo.
  // Caller holds the file's lock.
  bool kernel_attrs_settled(const Inode& inode, bool made_empty) const;
  // Moves a kernel-path file to kernel-path tier `to` in place
  // (fs_kernel_move.cc); the caller (the Mover) holds no lock of it and runs
  // no other migration of it. 0, -EXDEV when the tiers do not share a tmpfs
  // (one line logged), or -errno.
  int move_in_place(const InodePtr& inode, uint32_t to, MigrateResult& result);
  // Per tier, the bytes the backing files of its kernel-path files hold
  // (0 for server-path tiers): a kernel-path tier's use. Looks at every file.
  std::vector<uint64_t> kernel_tier_used() const;
  // Every kernel-path file with its tier and backing bytes, as they are now.
  std::vector<KernelFile> kernel_files() const;
  // The mount's space for statfs and stats: every tier's capacity; free is
  // the server-path tiers' free blocks and the kernel-path tiers' capacity
  // less what their tmpfs hold (past it, a kernel-path tier's overshoot
  // comes off the rest).
  struct Space {
    uint64_t capacity_bytes = 0;
    uint64_t free_bytes = 0;
  };
  Space space();

  // Shared for lookups and readdir, unique for every change of the tree.
  mutable std::shared_mutex namespace_lock;

 private:
  Config config_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<BackingStore> backing_store_;  // null: no tier on the kernel path
  Placement placement_;
  mutable std::mutex table_mutex_;
  std::unordered_map<uint64_t, InodePtr> inodes_;
  uint64_t next_ino_ = FUSE_ROOT_ID + 1;
  std::array<std::atomic<uint64_t>, static_cast<unsigned>(Op::count_)> op_counts_{};
  std::atomic<uint64_t> xattr_count_{0};
  std::atomic<uint64_t> xattr_bytes_{0};
  std::mutex handles_mutex_;
  std::unordered_map<FileHandle*, std::unique_ptr<FileHandle>> handles_;
  std::shared_ptr<BpfPath> bpf_;  // after storage_: destroyed first
  std::unique_ptr<Journal> journal_;
  fuse_session* session_ = nullptr;
  std::unique_ptr<Mover> mover_;  // last: stopped before anything it uses goes
};

}  // namespace tierfs
