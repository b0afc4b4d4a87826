// The tree: creating nodes (files, directories, symlinks, FIFOs, sockets),
// hard links, unlink, rmdir, rename (with RENAME_WHITEOUT), readlink. Every change of the tree
// holds Fs::namespace_lock uniquely, then the locks of the inodes whose attributes change (lock
// order: namespace, then inodes, then the inode table).
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "tierfs/server/operations.h"

namespace tierfs {

// Parent directory that may receive a new name: exists, is a directory, is not deleted.
static int writable_dir(Fs& fs, fuse_ino_t parent, InodePtr& out) {
  out = fs.find(parent);
  if (!out) return ENOENT;
  if (!out->is_dir()) return ENOTDIR;
  if (out->nlink.load() == 0) return ENOENT;
  return 0;
}

static void touch_dir(Inode& dir, int64_t now) {
  std::unique_lock guard(dir.lock);
  dir.mtime_ns = dir.ctime_ns = now;
}

int make_node(Fs& fs, fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev,
              const char* symlink_target, InodePtr& out, bool for_open) {
  if (strlen(name) > NAME_MAX) return ENAMETOOLONG;
  if (symlink_target && strlen(symlink_target) >= PATH_MAX) return ENAMETOOLONG;
  InodePtr dir;
  if (int err = writable_dir(fs, parent, dir)) return err;
  if (dir->dir->find(name)) return EEXIST;

  const fuse_ctx* ctx = fuse_req_ctx(req);
  gid_t gid = ctx->gid;
  {
    std::shared_lock guard(dir->lock);
    // BSD group semantics in a setgid directory; subdirectories keep the bit.
    if (dir->mode & S_ISGID) {
      gid = dir->gid;
      if (S_ISDIR(mode)) mode |= S_ISGID;
    }
  }
  InodePtr node = fs.make_inode(mode, ctx->uid, gid);
  node->rdev = rdev;
  node->parent = parent;
  node->name = name;
  node->nlink = S_ISDIR(mode) ? 2 : 1;
  if (symlink_target) node->symlink_target = symlink_target;
  if (node->is_regular()) {
    std::string path = fs.path_of(parent, name);
    node->data->set_preferred_tier(fs.placement().for_new_file(path, fs.inherited_tier(parent)));
    if (int err = fs.give_data_path(*node, for_open)) {
      node->nlink = 0;
      fs.maybe_drop(node);
      return err;
    }
  }
  const int64_t now = node->ctime_ns;
  // A kernel-path file's times are its backing file's clock's from the
  // start (stamp_change): a finer one of the server's would hide the first
  // write's stamp behind it.
  if (node->is_regular() && node->data->backing()) {
    const FileData::Attrs born = node->data->attrs({});
    node->atime_ns = born.atime_ns;
    node->mtime_ns = born.mtime_ns;
    node->ctime_ns = born.ctime_ns;
  }
  dir->dir->add(name, node->ino);
  if (node->is_dir()) dir->nlink.fetch_add(1);
  touch_dir(*dir, now);
  RecordBuilder& records = Fs::change_records();
  records.entry_add(parent, name, node->ino);
  fs.log_change(records, {dir.get(), node.get()});
  out = std::move(node);
  return 0;
}

static void reply_new_node(fuse_req_t req, Fs& fs, fuse_ino_t parent, const char* name, mode_t mode,
                           dev_t rdev, const char* target) {
  InodePtr node;
  std::unique_lock ns(fs.namespace_lock);
  if (int err = make_node(fs, req, parent, name, mode, rdev, target, node)) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_entry_param entry;
  {
    std::shared_lock guard(node->lock);
    entry = fs.entry_of(*node);
  }
  fs.remember(*node);
  fuse_reply_entry(req, &entry);
}

void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Fs& fs = fs_of(req);
  fs.count(Op::mknod);
  mode_t type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  reply_new_node(req, fs, parent, name, mode, rdev, nullptr);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Fs& fs = fs_of(req);
  fs.count(Op::mkdir);
  reply_new_node(req, fs, parent, name, S_IFDIR | (mode & 07777), 0, nullptr);
}

void fs_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Fs& fs = fs_of(req);
  fs.count(Op::symlink);
  reply_new_node(req, fs, parent, name, S_IFLNK | 0777, 0, link);
}

void fs_readlink(fuse_req_t req, fuse_ino_t ino) {
  Fs& fs = fs_of(req);
  fs.count(Op::readlink);
  InodePtr inode = fs.find(ino);
  if (!inode || !S_ISLNK(inode->mode)) {
    fuse_reply_err(req, inode ? EINVAL : ENOENT);
    return;
  }
  std::shared_lock guard(inode->lock);
  fuse_reply_readlink(req, inode->symlink_target.c_str());
}

void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  Fs& fs = fs_of(req);
  fs.count(Op::link);
  if (strlen(new_name) > NAME_MAX) {
    fuse_reply_err(req, ENAMETOOLONG);
    return;
  }
  std::unique_lock ns(fs.namespace_lock);
  InodePtr inode = fs.find(ino);
  InodePtr dir;
  int err = writable_dir(fs, new_parent, dir);
  if (!err && !inode) err = ENOENT;
  if (!err && inode->is_dir()) err = EPERM;
  if (!err && inode->nlink.load() == 0) err = ENOENT;  // no linkat of an unlinked open file
  if (!err && dir->dir->find(new_name)) err = EEXIST;
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  int64_t now = now_ns();
  dir->dir->add(new_name, inode->ino);
  touch_dir(*dir, now);
  fuse_entry_param entry;
  {
    std::unique_lock guard(inode->lock);
    inode->nlink.fetch_add(1);
    stamp_change(*inode, false);
    entry = fs.entry_of(*inode);
  }
  RecordBuilder& records = Fs::change_records();
  records.entry_add(new_parent, new_name, inode->ino);
  fs.log_change(records, {dir.get(), inode.get()});
  fs.remember(*inode);
  fuse_reply_entry(req, &entry);
}

// Drops one name of `child` (already removed from its directory).
static void drop_link(const InodePtr& child) {
  std::unique_lock guard(child->lock);
  if (child->is_dir())
    child->nlink = 0;
  else
    child->nlink.fetch_sub(1);
  stamp_change(*child, false);
}

// The writable directory `parent` and its entry `name` (unlink, rmdir);
// caller holds namespace_lock uniquely. Returns 0 or an errno value.
static int existing_child(Fs& fs, fuse_ino_t parent, const char* name, InodePtr& dir,
                          InodePtr& child) {
  if (int err = writable_dir(fs, parent, dir)) return err;
  auto child_ino = dir->dir->find(name);
  if (!child_ino) return ENOENT;
  child = fs.find(*child_ino);
  return child ? 0 : ENOENT;
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs& fs = fs_of(req);
  fs.count(Op::unlink);
  InodePtr child;
  {
    std::unique_lock ns(fs.namespace_lock);
    InodePtr dir;
    int err = existing_child(fs, parent, name, dir, child);
    if (!err && child->is_dir()) err = EISDIR;
    if (err) {
      fuse_reply_err(req, err);
      return;
    }
    int64_t now = now_ns();
    dir->dir->remove(name);
    touch_dir(*dir, now);
    drop_link(child);
    RecordBuilder& records = Fs::change_records();
    records.entry_del(parent, name);
    fs.log_change(records, {dir.get(), child.get()});
  }
  fs.maybe_drop(child);
  fuse_reply_err(req, 0);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs& fs = fs_of(req);
  fs.count(Op::rmdir);
  InodePtr child;
  {
    std::unique_lock ns(fs.namespace_lock);
    InodePtr dir;
    int err = existing_child(fs, parent, name, dir, child);
    if (!err && !child->is_dir()) err = ENOTDIR;
    if (!err && !child->dir->empty()) err = ENOTEMPTY;
    if (err) {
      fuse_reply_err(req, err);
      return;
    }
    int64_t now = now_ns();
    dir->dir->remove(name);
    dir->nlink.fetch_sub(1);
    touch_dir(*dir, now);
    drop_link(child);
    RecordBuilder& records = Fs::change_records();
    records.entry_del(parent, name);
    fs.log_change(records, {dir.get(), child.get()});
  }
  fs.maybe_drop(child);
  fuse_reply_err(req, 0);
}

// True when `ancestor` is `dir_ino` or one of its parents (a move there would cut a loop).
static bool is_ancestor(Fs& fs, uint64_t ancestor, uint64_t dir_ino) {
  for (int depth = 0; depth < 4096; ++depth) {
    if (dir_ino == ancestor) return true;
    if (dir_ino == FUSE_ROOT_ID) return false;
    InodePtr dir = fs.find(dir_ino);
    if (!dir) return false;
    dir_ino = dir->parent;
  }
  return true;
}

// Moves directory `moved` from one parent to another: parents' link counts and its "..".
static void reparent(Inode& moved, Inode& from, Inode& to, const std::string& new_name) {
  moved.name = new_name;
  if (!moved.is_dir() || from.ino == to.ino) {
    moved.parent = to.ino;
    return;
  }
  moved.parent = to.ino;
  from.nlink.fetch_sub(1);
  to.nlink.fetch_add(1);
}

static int check_rename(Fs& fs, const InodePtr& src, const InodePtr& dst, const InodePtr& to_dir,
                        unsigned flags) {
  if (src->is_dir() && is_ancestor(fs, src->ino, to_dir->ino)) return EINVAL;
  if (flags & RENAME_EXCHANGE) {
    if (!dst) return ENOENT;
    if (dst->is_dir() && is_ancestor(fs, dst->ino, src->parent)) return EINVAL;
    return 0;
  }
  if (!dst) return 0;
  if (flags & RENAME_NOREPLACE) return EEXIST;
  if (src->is_dir() && !dst->is_dir()) return ENOTDIR;
  if (!src->is_dir() && dst->is_dir()) return EISDIR;
  if (dst->is_dir() && !dst->dir->empty()) return ENOTEMPTY;
  return 0;
}

void fs_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned int flags) {
  Fs& fs = fs_of(req);
  fs.count(Op::rename);
  // The kernel checks CAP_MKNOD for RENAME_WHITEOUT before it asks.
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) ||
      (flags & RENAME_EXCHANGE && flags & (RENAME_NOREPLACE | RENAME_WHITEOUT))) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (strlen(new_name) > NAME_MAX) {
    fuse_reply_err(req, ENAMETOOLONG);
    return;
  }
  InodePtr replaced;
  {
    std::unique_lock ns(fs.namespace_lock);
    InodePtr from_dir, to_dir, src, dst;
    int err = writable_dir(fs, parent, from_dir);
    if (!err) err = writable_dir(fs, new_parent, to_dir);
    auto src_ino = err ? std::nullopt : from_dir->dir->find(name);
    if (!err && !src_ino) err = ENOENT;
    if (!err) src = fs.find(*src_ino);
    if (!err && !src) err = ENOENT;
    if (!err) {
      auto dst_ino = to_dir->dir->find(new_name);
      if (dst_ino) dst = fs.find(*dst_ino);
      err = check_rename(fs, src, dst, to_dir, flags);
    }
    if (err) {
      fuse_reply_err(req, err);
      return;
    }
    if (dst && dst->ino == src->ino) {  // two names of one file: POSIX says do nothing
      fuse_reply_err(req, 0);
      return;
    }
    int64_t now = now_ns();
    if (flags & RENAME_EXCHANGE) {
      from_dir->dir->replace(name, dst->ino);
      to_dir->dir->replace(new_name, src->ino);
      reparent(*dst, *to_dir, *from_dir, name);
      reparent(*src, *from_dir, *to_dir, new_name);
      std::unique_lock dst_guard(dst->lock);
      stamp_change(*dst, false);
    } else {
      from_dir->dir->remove(name);
      if (dst) {
        to_dir->dir->replace(new_name, src->ino);
        if (dst->is_dir()) to_dir->nlink.fetch_sub(1);
        drop_link(dst);
        replaced = dst;
      } else {
        to_dir->dir->add(new_name, src->ino);
      }
      reparent(*src, *from_dir, *to_dir, new_name);
    }
    {
      std::unique_lock src_guard(src->lock);
      stamp_change(*src, false);
    }
    touch_dir(*from_dir, now);
    if (to_dir != from_dir) touch_dir(*to_dir, now);
    // One frame: replay sees the rename whole or not at all.
    RecordBuilder& records = Fs::change_records();
    if (flags & RENAME_EXCHANGE) {
      records.entry_add(parent, name, dst->ino);
      records.entry_add(new_parent, new_name, src->ino);
    } else {
      records.entry_del(parent, name);
      records.entry_add(new_parent, new_name, src->ino);
    }
    fs.log_change(records, {from_dir.get(), to_dir.get(), src.get(), dst.get()});
    // Overlay file systems and container runtimes mark a name an upper
    // directory hides with a whiteout: a character device 0/0, as tmpfs
    // makes. After the rename's frame, which frees the name in the log.
    if (flags & RENAME_WHITEOUT) {
      InodePtr whiteout;
      if (int werr = make_node(fs, req, parent, name, S_IFCHR, makedev(0, 0), nullptr, whiteout))
        spdlog::error("rename: whiteout for \"{}\" not made: {}", name, strerror(werr));
    }
  }
  if (replaced) fs.maybe_drop(replaced);
  fuse_reply_err(req, 0);
}

}  // namespace tierfs
