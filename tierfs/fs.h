// The FUSE server's state: inodes (each with its own lock), the inode table,
// directories with stable readdir cookies, and the Fs object that owns the
// Storage. The fs_*.cc files hold one `fs_<op>` function per FUSE operation;
// each validates, acts and ends in exactly one fuse_reply_*. Errors travel as
// errno values; no exception crosses a libfuse callback.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tierfs/config.h"
#include "tierfs/placement.h"
#include "tierfs/storage.h"

namespace tierfs {

// Entries of one directory. Each entry gets a cookie that is never reused in
// this directory, so a readdir offset stays valid while entries come and go.
struct Directory {
  struct Entry {
    std::string name;
    uint64_t ino = 0;
  };
  static constexpr uint64_t first_cookie = 3;  // 1 and 2 are "." and ".."
  std::map<uint64_t, Entry> by_cookie;
  // name -> cookie; the keys view the names held in by_cookie (map nodes never move).
  std::unordered_map<std::string_view, uint64_t> cookie_of;
  uint64_t next_cookie = first_cookie;

  std::optional<uint64_t> find(const std::string& name) const;
  void add(const std::string& name, uint64_t ino);
  void remove(const std::string& name);
  void replace(const std::string& name, uint64_t ino);
  bool empty() const { return by_cookie.empty(); }
};

// One file, directory, symlink or special file. `lock` guards attributes,
// data and xattrs (shared for reads, unique otherwise). Directory contents
// and the parent/name links are guarded by Fs::namespace_lock instead.
// nlink, lookups and open handles are atomics so that the decision to drop
// an inode can be made without its lock (see Fs::maybe_drop).
struct Inode {
  explicit Inode(uint64_t number, mode_t file_mode) : ino(number), mode(file_mode) {}

  const uint64_t ino;
  mutable std::shared_mutex lock;
  mode_t mode;
  uid_t uid = 0;
  gid_t gid = 0;
  dev_t rdev = 0;
  uint64_t size = 0;
  std::atomic<int64_t> atime_ns{0};  // atomic: reads update it under the shared lock
  int64_t mtime_ns = 0, ctime_ns = 0, btime_ns = 0;
  std::atomic<uint32_t> nlink{0};
  std::atomic<uint32_t> open_handles{0};
  // The last writable handle to close trims the file's preallocation.
  std::atomic<uint32_t> writable_handles{0};
  uint64_t lookups = 0;        // guarded by Fs::table_mutex
  bool data_released = false;  // rows given back after the last link and close
  uint64_t parent = 0;         // directory that holds the last name given (for paths)
  std::string name;            // that name
  std::map<std::string, std::string> xattrs;
  std::unique_ptr<Directory> dir;  // directories only
  std::unique_ptr<FileData> data;  // regular files only
  std::string symlink_target;      // symlinks only

  bool is_dir() const { return S_ISDIR(mode); }
  bool is_regular() const { return S_ISREG(mode); }
};

using InodePtr = std::shared_ptr<Inode>;

// Per open file: what the server must remember between open and release.
struct FileHandle {
  InodePtr inode;
  bool append = false;
  bool writable = false;
};

// The FileHandle that open or create stored in fi->fh (libfuse hands back a u64).
inline FileHandle* handle_of(const fuse_file_info* fi) {
  return reinterpret_cast<FileHandle*>(fi->fh);  // NOLINT(performance-no-int-to-ptr)
}

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
  count_
};
const char* op_name(Op op);

// What the iomap BPF path of a mount is doing (user.tierfs.stats "bpf").
struct BpfStatus {
  BpfMode mode = BpfMode::automatic;
  bool maps_loaded = false;       // twin and maps loaded, maps follow every extent change
  bool program_attached = false;  // fuse_iomap_bpf_ops answers iomap_begin in the kernel
  std::string server_path_reason;  // why not attached (one line); empty when attached
  uint32_t tiers_map_id = 0;       // kernel ids for bpf_map_get_fd_by_id; 0 when not loaded
  uint32_t inodes_map_id = 0;
  uint64_t map_update_errors = 0;
  bool libfuse_iomap = false;  // built against a libfuse with the iomap low-level API
};
struct BpfPath;  // fs_bpf.cc

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
  // An entry reply for the inode; caller holds its lock.
  fuse_entry_param entry_of(const Inode& inode) const;
  double attr_timeout_s() const;

  // The iomap BPF path (fs_bpf.cc), once the session's /dev/fuse descriptor
  // exists: loads the maps and the twin, writes every tier's layout, keeps
  // the extents current as the Storage's ExtentListener, and attaches the
  // fuse_iomap_bpf_ops program where the kernel has it. Returns the one line
  // that must fail the mount (mount.bpf = "required"), else empty.
  std::string attach_iomap_program(int fuse_fd);
  BpfStatus bpf_status() const;

  // Open file handles live here, so that the ones the kernel never released
  // (the server stopped with files open) are freed with the mount.
  FileHandle* add_handle(std::unique_ptr<FileHandle> handle);
  std::unique_ptr<FileHandle> take_handle(FileHandle* handle);

  // Shared for lookups and readdir, unique for every change of the tree.
  mutable std::shared_mutex namespace_lock;

 private:
  Config config_;
  std::unique_ptr<Storage> storage_;
  Placement placement_;
  mutable std::mutex table_mutex_;
  std::unordered_map<uint64_t, InodePtr> inodes_;
  uint64_t next_ino_ = FUSE_ROOT_ID + 1;
  std::array<std::atomic<uint64_t>, static_cast<unsigned>(Op::count_)> op_counts_{};
  std::mutex handles_mutex_;
  std::unordered_map<FileHandle*, std::unique_ptr<FileHandle>> handles_;
  std::shared_ptr<BpfPath> bpf_;  // after storage_: destroyed first
};

int64_t now_ns();
inline timespec to_timespec(int64_t ns) {
  return timespec{ns / 1000000000, ns % 1000000000};
}
inline int64_t to_ns(const timespec& ts) {
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// The server's name for the low-level operations table (fs_session.cc).
fuse_lowlevel_ops make_operations();

// fs_*.cc: one function per FUSE operation.
void fs_init(void* userdata, fuse_conn_info* conn);
void fs_destroy(void* userdata);
void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets);
void fs_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
void fs_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
void fs_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
void fs_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned int flags);
void fs_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi);
void fs_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void fs_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in_buf, off_t off,
                  fuse_file_info* fi);
void fs_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void fs_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                  fuse_file_info* fi);
void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void fs_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_access(fuse_req_t req, fuse_ino_t ino, int mask);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags);
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name);

// The Fs behind a request.
inline Fs& fs_of(fuse_req_t req) {
  return *static_cast<Fs*>(fuse_req_userdata(req));
}

// Creates a node under `parent` (caller holds namespace_lock uniquely);
// returns 0 or an errno value (fs_namespace.cc, also used by create).
int make_node(Fs& fs, fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev,
              const char* symlink_target, InodePtr& out);

// JSON documents behind the virtual xattrs (fs_inspect.cc).
// A getxattr value may hold at most 64 KiB, so the map comes in pages:
// "user.tierfs.map" starts at extent 0, "user.tierfs.map@N" at extent N, and
// each page says where the next one starts ("next_extent", absent at the end).
inline constexpr size_t map_page_bytes = 60 * 1024;
std::string extent_map_json(Fs& fs, const Inode& inode, size_t first_extent);
std::string stats_json(Fs& fs);

}  // namespace tierfs
