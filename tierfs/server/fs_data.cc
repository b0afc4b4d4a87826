// File data: create, open, read, write, release, fallocate, lseek, statfs.
// Reads reply with pointers into region memory (the server copies nothing);
// writes are copied once, from the request buffer into region memory.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "tierfs/core/copy_guard.h"
#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"
#include "tierfs/server/request_gate.h"
#include "tierfs/server/setid_rules.h"

namespace tierfs {

// The kernel keeps a file's mode for the attribute timeout, and a WRITE,
// OPEN or FALLOCATE reply carries none: when such a request dropped set-ID
// bits, the kernel forgets the cached attributes before the caller's call
// returns (an exec right after would honour a cached set-user-ID bit).
static void forget_cached_attrs(Fs& fs, uint64_t ino) {
  if (fuse_session* session = fs.session()) fuse_lowlevel_notify_inval_inode(session, ino, -1, 0);
}

// O_TRUNC arrives here because init asks for FUSE_CAP_ATOMIC_O_TRUNC.
static void truncate_for_open(Fs& fs, fuse_req_t req, Inode& inode) {
  std::unique_lock guard(inode.lock);
  refresh_size(inode);
  if (inode.size > 0) inode.data->truncate(fs.storage(), 0);
  inode.size = 0;
  stamp_change(inode, true);
  const bool dropped = drop_setid_bits(req, inode, SetidChange::modify);
  fs.log_inode_locked(inode);
  guard.unlock();
  if (dropped) forget_cached_attrs(fs, inode.ino);
}

// Registers the open handle; undoes it when the kernel is no longer waiting for the reply.
static FileHandle* open_handle(Fs& fs, const InodePtr& inode, fuse_file_info* fi) {
  const bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
  // A FLUSH is a round trip on every close(). Readers never need it; with
  // cache = "none" writers do not either (no page cache to write back: the
  // last writer's release trims preallocation). With cache = "kernel" the
  // kernel writes a shared mmap's dirty pages back before it sends FLUSH,
  // and fs_flush trims, so close() returns with both done.
  fi->noflush = !writable || fs.config().mount.cache == CacheMode::none;
  inode->open_handles.fetch_add(1);
  if (writable) inode->writable_handles.fetch_add(1);
  return fs.add_handle(
      std::make_unique<FileHandle>(FileHandle{inode, (fi->flags & O_APPEND) != 0, writable}));
}

// Nobody writes any more: the rows that preallocation took past the end go
// back, and the kernel forgets the st_blocks it cached (it keeps attributes
// for long, Fs::attr_timeout_s); the times of overwrites in place go to the log.
static void trim_preallocation(Fs& fs, Inode& inode) {
  std::unique_lock guard(inode.lock);
  if (inode.data_released) return;
  const uint64_t version = inode.data->extents_version();
  inode.data->trim_preallocation(fs.storage(), inode.size);
  const bool trimmed = inode.data->extents_version() != version;
  if (!trimmed && !inode.times_unlogged) return;
  fs.log_inode_locked(inode);
  guard.unlock();
  if (trimmed) forget_cached_attrs(fs, inode.ino);
}

// `req` is null when the open's reply failed (the request is gone).
static void close_handle(Fs& fs, fuse_req_t req, FileHandle* released) {
  std::unique_ptr<FileHandle> handle = fs.take_handle(released);
  InodePtr inode = std::move(handle->inode);
  if (const std::optional<uint32_t> held = close_data_path(req, *inode, *handle))
    fs.mover().enqueue(inode, *held);
  const bool last_writer = handle->writable && inode->writable_handles.fetch_sub(1) == 1;
  handle.reset();
  // Before the handle count drops: a concurrent last unlink may then release the data.
  if (last_writer) trim_preallocation(fs, *inode);
  inode->open_handles.fetch_sub(1);
  if (inode->nlink.load() == 0) fs.maybe_drop(inode);
}

void fs_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::create);
  InodePtr inode;
  bool existed = false;
  {
    std::unique_lock ns(fs.namespace_lock);
    InodePtr dir = fs.find(parent);
    auto existing = dir && dir->is_dir() ? dir->dir->find(name) : std::nullopt;
    if (existing) {
      // Lost a race with another creator: O_EXCL fails, a plain O_CREAT opens the file.
      inode = fs.find(*existing);
      int err = (fi->flags & O_EXCL) ? EEXIST : !inode ? ENOENT : inode->is_dir() ? EISDIR : 0;
      if (!err && !inode->is_regular()) err = EACCES;
      if (err) {
        fuse_reply_err(req, err);
        return;
      }
      existed = true;
    } else if (int err = make_node(fs, req, parent, name, S_IFREG | (mode & 07777), 0, nullptr,
                                   inode, true)) {
      fuse_reply_err(req, err);
      return;
    }
  }
  if (existed && (fi->flags & O_TRUNC)) truncate_for_open(fs, req, *inode);
  FileHandle* handle = open_handle(fs, inode, fi);
  fi->fh = reinterpret_cast<uint64_t>(handle);
  fs.remember(*inode);
  if (int err = open_data_path(fs, req, *inode, fi)) {
    close_handle(fs, nullptr, handle);
    fs.forget(inode->ino, 1);
    fuse_reply_err(req, err);
    return;
  }
  // After the open: how long the kernel may keep the attributes depends on it.
  fuse_entry_param entry;
  {
    std::shared_lock guard(inode->lock);
    entry = fs.entry_of(*inode, !existed);
  }
  if (fuse_reply_create(req, &entry, fi) != 0) {
    close_handle(fs, nullptr, handle);
    fs.forget(inode->ino, 1);
  }
}

void fs_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::open);
  InodePtr inode = fs.find(ino);
  if (!inode || !inode->is_regular()) {
    fuse_reply_err(req, !inode ? ENOENT : inode->is_dir() ? EISDIR : EACCES);
    return;
  }
  // Linux truncates on O_RDONLY|O_TRUNC too (the kernel has checked write
  // permission for it, as for any O_TRUNC).
  if (fi->flags & O_TRUNC) truncate_for_open(fs, req, *inode);
  FileHandle* handle = open_handle(fs, inode, fi);
  fi->fh = reinterpret_cast<uint64_t>(handle);
  if (int err = open_data_path(fs, req, *inode, fi)) {
    close_handle(fs, nullptr, handle);
    fuse_reply_err(req, err);
    return;
  }
  if (fuse_reply_open(req, fi) != 0) close_handle(fs, nullptr, handle);
}

// relatime: a read moves atime only when it is older than the last change or a day old.
static void note_read(Inode& inode, int64_t now) {
  int64_t atime = inode.atime_ns.load(std::memory_order_relaxed);
  constexpr int64_t day_ns = 24LL * 3600 * 1000000000;
  if (atime <= inode.mtime_ns || atime <= inode.ctime_ns || now - atime > day_ns)
    inode.atime_ns.store(now, std::memory_order_relaxed);
}

#ifdef FUSE_CAP_OVER_IO_URING
// FUSE over io_uring: a reply goes into the request's ring buffer, which
// libfuse fills with a plain memcpy from the iovecs, so a SIGBUS in region
// memory (a memory error, a region file cut short) would end the server
// there. Copied into that buffer here under the guard instead, a fault fails
// only this read with EIO and retires the pages. Same one copy as libfuse's.
static bool reply_into_ring(Fs& fs, fuse_req_t req, const std::vector<iovec>& pieces) {
  char* payload = nullptr;
  size_t room = 0;
  if (!fuse_req_is_uring(req) || fuse_req_get_payload(req, &payload, &room, nullptr) != 0)
    return false;
  size_t total = 0;
  for (const iovec& piece : pieces) total += piece.iov_len;
  if (total > room) return false;  // libfuse's own path reports it
  size_t at = 0;
  for (const iovec& piece : pieces) {
    if (guarded_copy(payload + at, piece.iov_base, piece.iov_len) != nullptr) {
      fs.storage().retire_faulting(pieces);
      fuse_reply_err(req, EIO);
      return true;
    }
    at += piece.iov_len;
  }
  fuse_reply_buf(req, payload, at);  // libfuse sees its own buffer and copies nothing
  return true;
}
#endif

// With cache = "none" a read(2) comes as a READ from the reader itself
// (direct I/O, with its lock owner); a READ without one fills the page cache
// for a mapping (a fault, or readahead around one). Through a writable
// handle that may be a shared writable map, whose stores reach the server
// only at writeback: the kernel makes the page writable with no upcall
// (fuse_page_mkwrite). So the holes of such a fill get blocks now, while the
// faulting process can still be told: ENOSPC here is SIGBUS at its fault, as
// on tmpfs. Unbacked, the store was taken and then lost at writeback, and
// the next reader of the file got that writeback's ENOSPC (fuse_direct_io
// writes a mapping's dirty pages back before it reads).
static int back_page_cache_fill(Fs& fs, const FileHandle& handle, const fuse_file_info& fi,
                                uint64_t off, uint64_t size) {
  if (fs.config().mount.cache != CacheMode::none || fi.lock_owner != 0 || !handle.writable)
    return 0;
  Inode& inode = *handle.inode;
  std::unique_lock guard(inode.lock);
  const uint64_t end = std::min(off + size, (inode.size + 4095) / 4096 * 4096);
  if (inode.data_released || off >= end) return 0;
  const int64_t hole = inode.data->seek_hole(off, end);
  if (hole < 0 || static_cast<uint64_t>(hole) >= end) return 0;  // all backed already
  const uint64_t version = inode.data->extents_version();
  const int err = inode.data->allocate(fs.storage(), static_cast<uint64_t>(hole),
                                       end - static_cast<uint64_t>(hole));
  if (inode.data->extents_version() != version || inode.data->has_deferred_frees())
    fs.log_inode_locked(inode);
  return err;
}

void fs_read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::read);
  Inode& inode = *handle_of(fi)->inode;
  if (int err = back_page_cache_fill(fs, *handle_of(fi), *fi, static_cast<uint64_t>(off), size)) {
    fuse_reply_err(req, -err);
    return;
  }
  thread_local std::vector<iovec> pieces;
  pieces.clear();
  // The lock stays held until the reply is sent: the kernel copies from region memory.
  std::shared_lock guard(inode.lock, std::try_to_lock);
  if (!guard.owns_lock()) {
    gate_hand_over();  // a writer, truncate or migration has it: others go on meanwhile
    guard.lock();
  }
  int64_t bytes = inode.data_released ? 0
                                      : inode.data->read(fs.storage(), static_cast<uint64_t>(off),
                                                         size, inode.size, pieces);
  if (bytes < 0) {
    fuse_reply_err(req, static_cast<int>(-bytes));
    return;
  }
  const int64_t now = now_ns();
  note_read(inode, now);
  inode.access_ns.store(now, std::memory_order_relaxed);
  inode.recent_reads.fetch_add(1, std::memory_order_relaxed);
#ifdef FUSE_CAP_OVER_IO_URING
  if (reply_into_ring(fs, req, pieces)) return;
#endif
  int sent = 0;
  if (pieces.size() <= 1) {
    fuse_bufvec buf = FUSE_BUFVEC_INIT(pieces.empty() ? 0 : pieces[0].iov_len);
    buf.buf[0].mem = pieces.empty() ? nullptr : pieces[0].iov_base;
    sent = fuse_reply_data(req, &buf, FUSE_BUF_NO_SPLICE);
  } else if (pieces.size() < IOV_MAX) {
    // libfuse 3.14 copies a bufvec of several memory buffers into one before sending
    // (fuse_send_data_iov_fallback); a writev of the pieces copies nothing.
    sent = fuse_reply_iov(req, pieces.data(), static_cast<int>(pieces.size()));
  } else {
    fuse_reply_err(req, EIO);  // unreachable with max_read 1 MiB over 4 KiB units
  }
  // The kernel copies the reply out of region memory: a memory error there
  // is EFAULT for the writev (the reader gets EIO from the kernel, no SIGBUS
  // reaches the server). Find the bad pages, as a faulting write copy would.
  if (sent == -EFAULT) fs.storage().retire_faulting(pieces);
}

// The request's bytes as iovecs. fs_init turns splice off, so libfuse hands
// every write over in memory; an fd buffer would mean that changed.
static int request_iovecs(const fuse_bufvec* in_buf, std::vector<iovec>& out) {
  size_t skip = in_buf->off;
  for (size_t i = in_buf->idx; i < in_buf->count; ++i) {
    const fuse_buf& b = in_buf->buf[i];
    if (b.flags & FUSE_BUF_IS_FD) return EIO;
    if (b.size > skip) out.push_back({static_cast<char*>(b.mem) + skip, b.size - skip});
    skip = 0;
  }
  return 0;
}

void fs_write_buf(fuse_req_t req, fuse_ino_t /*ino*/, fuse_bufvec* in_buf, off_t off,
                  fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::write);
  FileHandle* handle = handle_of(fi);
  Inode& inode = *handle->inode;
  thread_local std::vector<iovec> pieces;
  pieces.clear();
  if (int err = request_iovecs(in_buf, pieces)) {
    fuse_reply_err(req, err);
    return;
  }
  std::unique_lock guard(inode.lock, std::try_to_lock);
  if (!guard.owns_lock()) {
    gate_hand_over();  // another request has the file: others go on meanwhile
    guard.lock();
  }
  // Page-cache writebacks (mmap) carry their own offsets even on an O_APPEND handle.
  uint64_t at = handle->append && !fi->writepage ? inode.size : static_cast<uint64_t>(off);
  const uint64_t old_size = inode.size;
  const uint64_t version = inode.data->extents_version();
  const mode_t old_mode = inode.mode;
  int64_t written = inode.data->write(fs.storage(), at, pieces);
  if (written < 0) {
    if (inode.data->has_deferred_frees()) fs.log_inode_locked(inode);
    guard.unlock();
    fuse_reply_err(req, static_cast<int>(-written));
    return;
  }
  inode.size = std::max(inode.size, at + static_cast<uint64_t>(written));
  stamp_change(inode, true);
  inode.access_ns.store(inode.mtime_ns, std::memory_order_relaxed);
  // Page-cache writebacks carry no caller: the kernel asked for the bits to go
  // (an empty SETATTR, fs_setattr) when the page was dirtied.
  const bool dropped = !fi->writepage && drop_setid_bits(req, inode, SetidChange::modify);
  // An overwrite in place changes no metadata the log keeps but the times:
  // it costs no log write; fsync or the last writer's close logs them.
  if (inode.size != old_size || inode.data->extents_version() != version ||
      inode.mode != old_mode || inode.data->has_deferred_frees())
    fs.log_inode_locked(inode);
  else
    inode.times_unlogged = true;
  guard.unlock();
  if (dropped) forget_cached_attrs(fs, inode.ino);
  fuse_reply_write(req, static_cast<size_t>(written));
}

// Only writers with cache = "kernel" send FLUSH (open_handle). Data is in
// region memory already. close() waits for flush but not for release, so the
// last writer's close gives preallocated rows back here and stat right after
// close sees it; release trims again after writes that came later (a shared
// mmap's writeback).
void fs_flush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::flush);
  FileHandle* handle = handle_of(fi);
  if (handle->writable && handle->inode->writable_handles.load() == 1)
    trim_preallocation(fs, *handle->inode);
  fuse_reply_err(req, 0);
}

// The file's metadata (times included) goes to the log, the log to its
// storage, and the file's bytes to theirs where the region kind has any
// (FileData::persist). numa: memory is all there is, done once logged.
void fs_fsync(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::fsync);
  Inode& inode = *handle_of(fi)->inode;
  int err = 0;
  {
    std::unique_lock guard(inode.lock);
    if (inode.data_released) {
      fuse_reply_err(req, 0);
      return;
    }
    fs.log_inode_locked(inode);
    err = inode.data->persist(fs.storage());
  }
  if (Journal* journal = fs.journal(); journal && !err) err = journal->sync();
  fuse_reply_err(req, -err);
}

void fs_release(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::release);
  close_handle(fs, req, handle_of(fi));
  fuse_reply_err(req, 0);
}

// A first fallocate on an empty file is a size hint: a min_size rule may move the file.
static void apply_size_hint(Fs& fs, Inode& inode, const std::string& path, uint64_t hint) {
  if (inode.size != 0 || !inode.data->extents().empty()) return;
  if (auto tier = fs.placement().for_size_hint(path, hint)) inode.data->set_preferred_tier(*tier);
}

static int fallocate_locked(Fs& fs, Inode& inode, int mode, uint64_t off, uint64_t len,
                            const std::string& path) {
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  const int action = mode & ~FALLOC_FL_KEEP_SIZE;
  refresh_size(inode);
  int err = 0;
  if (action == 0) {
    apply_size_hint(fs, inode, path, off + len);
    err = inode.data->allocate(fs.storage(), off, len);
  } else if (action == FALLOC_FL_PUNCH_HOLE) {
    if (!keep_size) return -EOPNOTSUPP;  // Linux requires KEEP_SIZE with PUNCH_HOLE
    if (off < inode.size)
      err = inode.data->punch_hole(fs.storage(), off, std::min(len, inode.size - off));
  } else if (action == FALLOC_FL_ZERO_RANGE) {
    err = inode.data->zero_range(fs.storage(), off, len);
  } else {
    return -EOPNOTSUPP;
  }
  if (err < 0) return err;
  if (!keep_size && off + len > inode.size) {
    if (int grown = inode.data->extend(off + len)) return grown;
    inode.size = off + len;
  }
  // Every mode moves mtime and ctime, as tmpfs, ext4 and xfs do
  // (file_modified), also a mode 0 or KEEP_SIZE within the file.
  stamp_change(inode, true);
  return 0;
}

void fs_fallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t offset, off_t length,
                  fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::fallocate);
  InodePtr inode = handle_of(fi)->inode;
  if (offset < 0 || length <= 0 || offset > LLONG_MAX - length) {
    fuse_reply_err(req, offset > LLONG_MAX - length ? EFBIG : EINVAL);
    return;
  }
  std::string path;
  {
    std::shared_lock ns(fs.namespace_lock);
    path = fs.path_of(inode->parent, inode->name);
  }
  std::unique_lock guard(inode->lock);
  int err = fallocate_locked(fs, *inode, mode, static_cast<uint64_t>(offset),
                             static_cast<uint64_t>(length), path);
  const bool dropped = err == 0 && drop_setid_bits(req, *inode, SetidChange::modify);
  fs.log_inode_locked(*inode);
  guard.unlock();
  if (dropped) forget_cached_attrs(fs, inode->ino);
  fuse_reply_err(req, -err);
}

void fs_lseek(fuse_req_t req, fuse_ino_t /*ino*/, off_t off, int whence, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::lseek);
  Inode& inode = *handle_of(fi)->inode;
  if (whence != SEEK_DATA && whence != SEEK_HOLE) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  // With cache = "kernel" the newest bytes and size may be dirty pages the
  // server has not seen, and the kernel sends FUSE_LSEEK without writing them
  // back: an answer from here would say ENXIO inside the file. ENOSYS makes
  // the kernel answer itself from its own size, the whole file as data
  // (lseek(2) allows that), for the rest of this connection.
  if (fs.config().mount.cache == CacheMode::kernel) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  // lseek(2) and tmpfs: ENXIO for any offset outside [0, size).
  if (off < 0) {
    fuse_reply_err(req, ENXIO);
    return;
  }
  std::shared_lock guard(inode.lock);
  auto at = static_cast<uint64_t>(off);
  int64_t result = whence == SEEK_DATA ? inode.data->seek_data(at, inode.size)
                                       : inode.data->seek_hole(at, inode.size);
  guard.unlock();
  if (result < 0)
    fuse_reply_err(req, static_cast<int>(-result));
  else
    fuse_reply_lseek(req, result);
}

void fs_statfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  Fs& fs = fs_of(req);
  fs.count(Op::statfs);
  constexpr uint64_t block = 4096;
  struct statvfs st {};
  st.f_bsize = block;
  st.f_frsize = block;
  const Fs::Space space = fs.space();
  st.f_blocks = space.capacity_bytes / block;
  st.f_bfree = space.free_bytes / block;
  st.f_bavail = st.f_bfree;
  // Inodes live in server memory: report a large pool so tools do not stop early.
  st.f_files = 1ULL << 32;
  st.f_ffree = st.f_files - fs.inode_count();
  st.f_favail = st.f_ffree;
  st.f_namemax = NAME_MAX;
  fuse_reply_statfs(req, &st);
}

}  // namespace tierfs
