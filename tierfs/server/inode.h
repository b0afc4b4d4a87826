// The server's in-memory namespace: inodes (each with its own lock),
// directories with stable readdir cookies, open file handles, and the time
// helpers their attributes use.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tierfs/core/file_data.h"

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
  // The mover's view (mover.h), kept apart from atime, which relatime and
  // utimensat move: when the data was last read or written, and reads since
  // the mover last looked (it folds them into read_score, halving it each look).
  std::atomic<int64_t> access_ns{0};
  std::atomic<uint32_t> recent_reads{0};
  uint32_t read_score = 0;  // the mover thread's own
  int64_t mtime_ns = 0, ctime_ns = 0, btime_ns = 0;
  // An overwrite in place moved mtime/ctime and nothing else the log keeps:
  // the last writer's close logs them (under `lock`).
  bool times_unlogged = false;
  std::atomic<uint32_t> nlink{0};
  std::atomic<uint32_t> open_handles{0};
  // The last writable handle to close trims the file's preallocation.
  std::atomic<uint32_t> writable_handles{0};
  uint64_t lookups = 0;        // guarded by Fs::table_mutex
  bool data_released = false;  // rows given back after the last link and close
  // Handles answered without passthrough in the kernel's cached mode
  // (fs_kernel_path.cc); under `lock`. The kernel refuses a passthrough open
  // beside a cached one, and any open without passthrough beside a
  // passthrough one (fs/fuse/iomode.c), so each kind waits for the other.
  uint32_t server_opens = 0;
  // A move off the kernel path held by open passthrough handles (mover.h):
  // the tier it goes to when the last of them is released; -1: none.
  int32_t held_move_tier = -1;
  // A kernel-path file's attribute timeout (fs_kernel_path.cc). `unwritten`:
  // a read lease showed no writer of the backing file but the server since
  // the last writable passthrough open (no mapping outlived its close).
  // `attrs_kept`: the kernel was given attributes to keep for long since
  // then. The next writable passthrough open clears both and, for the
  // second, makes the kernel forget them. Atomic: set under the shared lock
  // (GETATTR, LOOKUP).
  mutable std::atomic<bool> kernel_unwritten{false};
  mutable std::atomic<bool> kernel_attrs_kept{false};
  uint64_t parent = 0;  // directory that holds the last name given (for paths)
  std::string name;     // that name
  std::map<std::string, std::string> xattrs;
  std::unique_ptr<Directory> dir;  // directories only
  std::unique_ptr<FileData> data;  // regular files only
  std::string symlink_target;      // symlinks only

  bool is_dir() const { return S_ISDIR(mode); }
  bool is_regular() const { return S_ISREG(mode); }
};

using InodePtr = std::shared_ptr<Inode>;

// A kernel-path file with its tier (its backing file's name) and the bytes
// its backing file holds (Fs::kernel_files; the mover's look at full tiers).
struct KernelFile {
  InodePtr inode;
  uint32_t tier = 0;
  uint64_t allocated_bytes = 0;
};

// A kernel-path file's size is its backing file's (the kernel writes it
// without the server): brought into inode.size before the server changes
// the file. Caller holds the inode's lock uniquely.
inline void refresh_size(Inode& inode) {
  if (inode.data && !inode.data_released) inode.size = inode.data->size(inode.size);
}

// Per open file: what the server must remember between open and release.
struct FileHandle {
  InodePtr inode;
  bool append = false;
  bool writable = false;
  int passthrough_id = 0;  // the backing id the open answered with; 0: served by the server
  // Served by the server with direct I/O and not counted in server_opens:
  // such a handle takes no io mode in the kernel, so passthrough opens may
  // follow it (`tierfs migrate`'s own handle, fs_kernel_path.cc).
  bool uncounted = false;
  // Such a handle before the server knows that the kernel finished its open
  // (opened_data_path): counted in server_opens until then.
  bool uncounted_once_open = false;
};

// The FileHandle that open or create stored in fi->fh (libfuse hands back a u64).
inline FileHandle* handle_of(const fuse_file_info* fi) {
  return reinterpret_cast<FileHandle*>(fi->fh);  // NOLINT(performance-no-int-to-ptr)
}

int64_t now_ns();
// Stamps a change the server makes: ctime moves, and mtime too when the
// file's data changed; a kernel-path file takes the kernel's clock
// (FileData::stamp_now). Returns the new ctime; the caller holds the lock.
int64_t stamp_change(Inode& inode, bool data_changed);
inline timespec to_timespec(int64_t ns) {
  return timespec{ns / 1000000000, ns % 1000000000};
}
inline int64_t to_ns(const timespec& ts) {
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

}  // namespace tierfs
