// The FUSE operations of the server: one `fs_<op>` function per low-level
// operation (fs_*.cc), each validating, acting and ending in exactly one
// fuse_reply_*. Errors travel as errno values; no exception crosses a
// libfuse callback.
#pragma once

#include <fuse_lowlevel.h>

#include <optional>
#include <string>

#include "tierfs/server/fs.h"

namespace tierfs {

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
void fs_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void* arg, fuse_file_info* fi,
              unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz);

// The Fs behind a request.
inline Fs& fs_of(fuse_req_t req) {
  return *static_cast<Fs*>(fuse_req_userdata(req));
}

// Creates a node under `parent` (caller holds namespace_lock uniquely);
// returns 0 or an errno value (fs_namespace.cc, also used by create, which
// opens the new file next: `for_open`, Fs::give_data_path).
int make_node(Fs& fs, fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev,
              const char* symlink_target, InodePtr& out, bool for_open = false);

// Answers an open of a regular file by its data path (fs_kernel_path.cc):
// the cache mode on the server path, passthrough onto the backing file on
// the kernel path. 0 or an errno value. close_data_path undoes it at
// release (`req` null when the open's reply failed); at the release of the
// last passthrough handle of a file with a held move it returns the move's
// tier, for the mover to do now.
int open_data_path(Fs& fs, fuse_req_t req, Inode& inode, fuse_file_info* fi);
std::optional<uint32_t> close_data_path(fuse_req_t req, Inode& inode, const FileHandle& handle);
// A request on the handle (`tierfs migrate`'s ioctl) shows that the kernel
// finished its open: a read-only O_NONBLOCK direct-I/O handle stops holding
// back passthrough opens from here on (fs_kernel_path.cc).
void opened_data_path(Inode& inode, FileHandle& handle);

// JSON documents behind the virtual xattrs (fs_inspect.cc).
// A getxattr value may hold at most 64 KiB, so the map comes in pages:
// "user.tierfs.map" starts at extent 0, "user.tierfs.map@N" at extent N, and
// each page says where the next one starts ("next_extent", absent at the end).
inline constexpr size_t map_page_bytes = 60 * 1024;
std::string extent_map_json(Fs& fs, const Inode& inode, size_t first_extent);
// `full` for root and the mounter; other users get only what statfs shows
// (capacity, free bytes, inodes), not tier usage, operation counts or BPF ids.
std::string stats_json(Fs& fs, bool full);

}  // namespace tierfs
