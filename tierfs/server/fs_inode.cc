// Inodes and the inode table: numbers, lookup counts, attributes, and the
// FUSE operations that work on one inode's attributes (lookup, forget,
// getattr, setattr, access).
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

#include "tierfs/server/backing_store.h"
#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"
#include "tierfs/server/setid_rules.h"

namespace tierfs {

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return to_ns(ts);
}

int64_t stamp_change(Inode& inode, bool data_changed) {
  if (inode.is_regular() && !inode.data_released &&
      inode.data->stamp_now(data_changed, inode.mtime_ns, inode.ctime_ns))
    return inode.ctime_ns;
  const int64_t now = now_ns();
  if (data_changed) inode.mtime_ns = now;
  inode.ctime_ns = now;
  return now;
}

const char* op_name(Op op) {
  static constexpr const char* names[] = {
      "lookup",   "forget",    "getattr",  "setattr",     "readlink",  "mknod",       "mkdir",
      "unlink",   "rmdir",     "symlink",  "rename",      "link",      "open",        "read",
      "write",    "flush",     "release",  "fsync",       "opendir",   "readdir",     "releasedir",
      "fsyncdir", "statfs",    "setxattr", "getxattr",    "listxattr", "removexattr", "access",
      "create",   "fallocate", "lseek",    "readdirplus", "ioctl"};
  static_assert(std::size(names) == static_cast<size_t>(Op::count_));
  return names[static_cast<unsigned>(op)];
}

std::optional<uint64_t> Directory::find(const std::string& name) const {
  auto it = cookie_of.find(name);
  if (it == cookie_of.end()) return std::nullopt;
  return by_cookie.at(it->second).ino;
}

void Directory::add(const std::string& name, uint64_t ino) {
  uint64_t cookie = next_cookie++;
  auto it = by_cookie.emplace(cookie, Entry{name, ino}).first;
  cookie_of.emplace(it->second.name, cookie);
}

void Directory::remove(const std::string& name) {
  auto it = cookie_of.find(name);
  if (it == cookie_of.end()) return;
  uint64_t cookie = it->second;
  cookie_of.erase(it);  // before the name it views goes away
  by_cookie.erase(cookie);
}

// Keeps the entry's cookie: a readdir in progress sees the name once.
void Directory::replace(const std::string& name, uint64_t ino) {
  by_cookie.at(cookie_of.at(name)).ino = ino;
}

Fs::Fs(Config config, std::unique_ptr<Storage> storage)
    : config_(std::move(config)), storage_(std::move(storage)), placement_(config_) {
  auto root = std::make_shared<Inode>(FUSE_ROOT_ID, S_IFDIR | 0755);
  root->uid = getuid();
  root->gid = getgid();
  root->nlink = 2;
  root->dir = std::make_unique<Directory>();
  root->parent = FUSE_ROOT_ID;
  int64_t now = now_ns();
  root->atime_ns = now;
  root->mtime_ns = root->ctime_ns = root->btime_ns = now;
  root->lookups = 1;  // the kernel holds the root without looking it up
  inodes_.emplace(FUSE_ROOT_ID, std::move(root));
  mover_ = std::make_unique<Mover>(*this);
}

Fs::~Fs() {
  mover_->stop();  // no migration may run while the rows go back below
  // The BPF maps go away with the mount: no point in emptying them file by file.
  storage_->set_maps(nullptr);
  // What happens to the log was decided by close_journal; releasing is not a change to log.
  storage_->set_journal(nullptr);
  // Unmount: give every file's rows back before the regions go away.
  for (auto& [ino, inode] : inodes_)
    if (inode->data && !inode->data_released) inode->data->release(*storage_);
}

FileHandle* Fs::add_handle(std::unique_ptr<FileHandle> handle) {
  FileHandle* key = handle.get();
  std::lock_guard guard(handles_mutex_);
  handles_.emplace(key, std::move(handle));
  return key;
}

std::unique_ptr<FileHandle> Fs::take_handle(FileHandle* handle) {
  std::lock_guard guard(handles_mutex_);
  auto node = handles_.extract(handle);
  return std::move(node.mapped());
}

InodePtr Fs::find(fuse_ino_t ino) const {
  std::lock_guard guard(table_mutex_);
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second;
}

InodePtr Fs::make_inode(mode_t mode, uid_t uid, gid_t gid) {
  std::lock_guard guard(table_mutex_);
  auto inode = std::make_shared<Inode>(next_ino_++, mode);
  inode->uid = uid;
  inode->gid = gid;
  int64_t now = now_ns();
  inode->atime_ns = now;
  inode->mtime_ns = inode->ctime_ns = inode->btime_ns = now;
  if (S_ISDIR(mode)) inode->dir = std::make_unique<Directory>();
  if (S_ISREG(mode)) {
    inode->data = std::make_unique<FileData>();
    inode->data->set_ino(inode->ino);
    inode->access_ns = now;
  }
  inodes_.emplace(inode->ino, inode);
  return inode;
}

void Fs::remember(Inode& inode) {
  std::lock_guard guard(table_mutex_);
  ++inode.lookups;
}

void Fs::forget(fuse_ino_t ino, uint64_t count) {
  InodePtr inode;
  {
    std::lock_guard guard(table_mutex_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;
    inode = it->second;
    inode->lookups -= std::min(inode->lookups, count);
    if (inode->lookups > 0 || inode->nlink.load() > 0) return;
  }
  maybe_drop(inode);
}

void Fs::maybe_drop(const InodePtr& inode) {
  if (inode->nlink.load() > 0) return;
  if (inode->open_handles.load() == 0) {
    std::unique_lock guard(inode->lock);
    if (inode->data && !inode->data_released) {
      inode->data->release(*storage_);
      inode->data_released = true;
      inode->size = 0;
      log_drop_locked(*inode);  // then the blocks go back
    }
  }
  bool dropped = false;
  {
    std::lock_guard guard(table_mutex_);
    if (inode->lookups == 0 && inode->nlink.load() == 0 && inode->open_handles.load() == 0)
      dropped = inodes_.erase(inode->ino) != 0;
  }
  if (dropped) {
    std::shared_lock guard(inode->lock);
    int64_t bytes = 0;
    for (const auto& [key, value] : inode->xattrs)
      bytes += static_cast<int64_t>(key.size() + value.size());
    count_xattrs(-static_cast<int64_t>(inode->xattrs.size()), -bytes);
  }
}

std::vector<InodePtr> Fs::regular_files() const {
  std::vector<InodePtr> files;
  std::lock_guard guard(table_mutex_);
  for (const auto& [ino, inode] : inodes_)
    if (inode->is_regular()) files.push_back(inode);
  return files;
}

size_t Fs::inode_count() const {
  std::lock_guard guard(table_mutex_);
  return inodes_.size();
}

std::string Fs::path_of(uint64_t parent, const std::string& name) const {
  std::string path = name;
  // Directories have one parent each; the depth bound guards against a corrupt chain.
  for (int depth = 0; parent != FUSE_ROOT_ID && depth < 4096; ++depth) {
    InodePtr dir = find(parent);
    if (!dir) break;
    path.insert(0, "/").insert(0, dir->name);
    parent = dir->parent;
  }
  return path;
}

std::optional<uint32_t> Fs::inherited_tier(uint64_t dir_ino) const {
  for (int depth = 0; depth < 4096; ++depth) {
    InodePtr dir = find(dir_ino);
    if (!dir) return std::nullopt;
    {
      std::shared_lock guard(dir->lock);
      auto it = dir->xattrs.find(std::string(tier_xattr_name));
      if (it != dir->xattrs.end()) return placement_.tier_named(it->second);
    }
    if (dir_ino == FUSE_ROOT_ID) return std::nullopt;
    dir_ino = dir->parent;
  }
  return std::nullopt;
}

void Fs::fill_attr(const Inode& inode, struct stat& attr) const {
  attr = {};
  attr.st_ino = inode.ino;
  attr.st_mode = inode.mode;
  attr.st_nlink = inode.nlink.load();
  attr.st_uid = inode.uid;
  attr.st_gid = inode.gid;
  attr.st_rdev = inode.rdev;
  attr.st_blksize = 4096;
  int64_t atime_ns = inode.atime_ns.load();
  int64_t mtime_ns = inode.mtime_ns;
  int64_t ctime_ns = inode.ctime_ns;
  if (inode.is_regular()) {
    attr.st_size = static_cast<off_t>(inode.size);
    if (!inode.data_released) {
      const FileData::Attrs now = inode.data->attrs({inode.size, 0, atime_ns, mtime_ns, ctime_ns});
      attr.st_size = static_cast<off_t>(now.size);
      attr.st_blocks = static_cast<blkcnt_t>(now.allocated_bytes / 512);
      atime_ns = now.atime_ns;
      mtime_ns = now.mtime_ns;
      ctime_ns = now.ctime_ns;
    }
  } else if (S_ISLNK(inode.mode)) {
    attr.st_size = static_cast<off_t>(inode.symlink_target.size());
  } else if (inode.is_dir()) {
    attr.st_size = 4096;
  }
  attr.st_atim = to_timespec(atime_ns);
  attr.st_mtim = to_timespec(mtime_ns);
  attr.st_ctim = to_timespec(ctime_ns);
}

// Every change of the namespace and of attributes reaches the kernel through
// this mount, which updates or drops what it cached; the changes the server
// makes on its own tell it (forget_cached_attrs in fs_data.cc: set-ID bits
// dropped by a write, blocks given back when the last writer closes). So
// the kernel may keep names and attributes for long: a stat is then
// answered without an upcall, as on tmpfs. A kernel-path file's too, but
// only while nothing can change them unseen (Fs::kernel_attrs_settled): a
// store through a shared mapping of its backing file moves its mtime and
// blocks, and neither the server nor the kernel's FUSE inode hears of it.
// Otherwise they are asked for at every stat.
double Fs::attr_timeout_s(const Inode& inode, bool made_empty) const {
  if (data_path_of(inode) != DataPath::kernel) return entry_timeout_s();
  return kernel_attrs_settled(inode, made_empty) ? entry_timeout_s() : 0;
}

double Fs::entry_timeout_s() {
  return 3600.0;
}

fuse_entry_param Fs::entry_of(const Inode& inode, bool made_empty) const {
  fuse_entry_param entry{};
  entry.ino = inode.ino;
  entry.generation = 1;
  fill_attr(inode, entry.attr);
  entry.attr_timeout = attr_timeout_s(inode, made_empty);
  entry.entry_timeout = entry_timeout_s();
  return entry;
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs& fs = fs_of(req);
  fs.count(Op::lookup);
  if (strlen(name) > NAME_MAX) {
    fuse_reply_err(req, ENAMETOOLONG);
    return;
  }
  std::shared_lock ns(fs.namespace_lock);
  InodePtr dir = fs.find(parent);
  // "." of any inode and ".." of a directory come only from the kernel's
  // file-handle code (open_by_handle_at, NFS re-export) when the inode has
  // left its cache: the answer is the inode itself, or the directory's parent.
  const bool self = std::strcmp(name, ".") == 0;
  if (!dir || (!self && !dir->is_dir())) {
    fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
    return;
  }
  std::optional<uint64_t> child_ino;
  if (self)
    child_ino = dir->ino;
  else if (std::strcmp(name, "..") == 0)
    child_ino = dir->ino == FUSE_ROOT_ID ? dir->ino : dir->parent;
  else
    child_ino = dir->dir->find(name);
  InodePtr child = child_ino ? fs.find(*child_ino) : nullptr;
  if (!child) {
    // A negative entry the kernel may cache: later creates go through the server anyway.
    fuse_entry_param negative{};
    negative.entry_timeout = Fs::entry_timeout_s();
    fuse_reply_entry(req, &negative);
    return;
  }
  fuse_entry_param entry;
  {
    std::shared_lock guard(child->lock);
    entry = fs.entry_of(*child);
  }
  fs.remember(*child);
  fuse_reply_entry(req, &entry);
}

void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs& fs = fs_of(req);
  fs.count(Op::forget);
  fs.forget(ino, nlookup);
  fuse_reply_none(req);
}

void fs_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Fs& fs = fs_of(req);
  for (size_t i = 0; i < count; ++i) {
    fs.count(Op::forget);
    fs.forget(forgets[i].ino, forgets[i].nlookup);
  }
  fuse_reply_none(req);
}

void fs_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Fs& fs = fs_of(req);
  fs.count(Op::getattr);
  InodePtr inode = fs.find(ino);
  if (!inode) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat attr;
  double timeout_s = 0;
  {
    std::shared_lock guard(inode->lock);
    fs.fill_attr(*inode, attr);
    timeout_s = fs.attr_timeout_s(*inode);
  }
  fuse_reply_attr(req, &attr, timeout_s);
}

// The attributes a SETATTR can ask to change. One that asks for none of them
// is the kernel's remove-privileges request (file_remove_privs, after
// fuse_setattr took out ATTR_KILL_SUID/SGID under FUSE_HANDLE_KILLPRIV): a
// cached write, fallocate or chown(-1, -1) of a set-ID file.
constexpr int kAttributeBits = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
                               FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                               FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW;

void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::setattr);
  InodePtr inode = fi && fi->fh ? handle_of(fi)->inode : fs.find(ino);
  if (!inode) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  std::unique_lock guard(inode->lock);
  if ((to_set & FUSE_SET_ATTR_SIZE) && !inode->is_regular()) {
    fuse_reply_err(req, inode->is_dir() ? EISDIR : EINVAL);
    return;
  }
  if (inode->is_regular()) refresh_size(*inode);
  // Shrinking first: zeroing the new last block's tail can fail (EIO, a
  // SIGBUS there, copy_guard.h), and then nothing of the request is applied.
  if ((to_set & FUSE_SET_ATTR_SIZE) && static_cast<uint64_t>(attr->st_size) < inode->size)
    if (int err = inode->data->truncate(fs.storage(), static_cast<uint64_t>(attr->st_size))) {
      guard.unlock();
      fuse_reply_err(req, -err);
      return;
    }
  // A mode in the request is a chmod's (under FUSE_HANDLE_KILLPRIV the kernel
  // never sends one to clear set-ID bits): it is taken as it is.
  if (to_set & FUSE_SET_ATTR_MODE) inode->mode = (inode->mode & S_IFMT) | (attr->st_mode & 07777);
  // chown and chgrp (by the old group, before it changes); and a SETATTR
  // with nothing to set: chown(-1, -1), or the privileges a write by a
  // caller without CAP_FSETID removes (the kernel asks for nothing when the
  // caller has it). chown's rule covers both: it differs only for a caller
  // with CAP_FSETID, who drops setuid on chown(-1, -1) as on tmpfs.
  else if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) || (to_set & kAttributeBits) == 0)
    drop_setid_bits(req, *inode, SetidChange::owner);
  else if (to_set & FUSE_SET_ATTR_SIZE)
    drop_setid_bits(req, *inode, SetidChange::modify);
  if (to_set & FUSE_SET_ATTR_UID) inode->uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) inode->gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) {
    auto new_size = static_cast<uint64_t>(attr->st_size);
    if (int err = new_size > inode->size ? inode->data->extend(new_size) : 0) {
      guard.unlock();
      fuse_reply_err(req, -err);
      return;
    }
    inode->size = new_size;
  }
  // Every successful change of metadata moves ctime. Every truncate moves
  // mtime, also one to the size the file had, as on tmpfs (measured:
  // ftruncate and truncate); FUSE sends no MTIME with an ftruncate's SIZE.
  const bool data_changed = (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME_NOW)) != 0;
  const int64_t now = stamp_change(*inode, data_changed);
  if (to_set & FUSE_SET_ATTR_ATIME_NOW)
    inode->atime_ns = now;
  else if (to_set & FUSE_SET_ATTR_ATIME)
    inode->atime_ns = to_ns(attr->st_atim);
  if ((to_set & FUSE_SET_ATTR_MTIME) && !(to_set & FUSE_SET_ATTR_MTIME_NOW))
    inode->mtime_ns = to_ns(attr->st_mtim);
  // The kernel path reports the later of the two times: the backing file's
  // follow an explicit time (a time now is the backing file's already).
  if (inode->is_regular() && (to_set & FUSE_SET_ATTR_MTIME) && !(to_set & FUSE_SET_ATTR_MTIME_NOW))
    inode->data->set_mtime(inode->mtime_ns);
  if (inode->is_regular() && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)))
    inode->data->set_atime(inode->atime_ns);
  if (to_set & FUSE_SET_ATTR_CTIME) inode->ctime_ns = to_ns(attr->st_ctim);
  struct stat out;
  fs.fill_attr(*inode, out);
  const double timeout_s = fs.attr_timeout_s(*inode);
  fs.log_inode_locked(*inode);
  guard.unlock();
  fuse_reply_attr(req, &out, timeout_s);
}

void fs_access(fuse_req_t req, fuse_ino_t ino, int /*mask*/) {
  Fs& fs = fs_of(req);
  fs.count(Op::access);
  // default_permissions: the kernel checks modes itself; existence is ours to answer.
  fuse_reply_err(req, fs.find(ino) ? 0 : ENOENT);
}

}  // namespace tierfs
