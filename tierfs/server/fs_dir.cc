// Directory listing: readdir and readdirplus over cookies that stay valid
// while the directory changes ("." is offset 1, ".." 2, entries from 3 on).
#include <cerrno>
#include <vector>

#include "tierfs/server/operations.h"

namespace tierfs {

void fs_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  fs.count(Op::opendir);
  InodePtr inode = fs.find(ino);
  if (!inode || !inode->is_dir()) {
    fuse_reply_err(req, inode ? ENOTDIR : ENOENT);
    return;
  }
  fi->fh = 0;
  fuse_reply_open(req, fi);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) {
  fs_of(req).count(Op::releasedir);
  fuse_reply_err(req, 0);
}

// Every change of the directory is in the log already: the log goes to its storage.
void fs_fsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) {
  Fs& fs = fs_of(req);
  fs.count(Op::fsyncdir);
  Journal* journal = fs.journal();
  fuse_reply_err(req, journal ? -journal->sync() : 0);
}

// Fills `buf` with entries from `off` on; with `plus`, each entry but "." and
// ".." carries attributes and counts as a lookup.
static void list_directory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Fs& fs = fs_of(req);
  std::shared_lock ns(fs.namespace_lock);
  InodePtr dir = fs.find(ino);
  if (!dir || !dir->is_dir()) {
    fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
    return;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  // Adds one entry; false when the buffer is full (the entry is then not sent).
  auto add = [&](const char* name, const InodePtr& inode, uint64_t next_offset,
                 bool counts_as_lookup) {
    fuse_entry_param entry{};
    {
      std::shared_lock guard(inode->lock);
      entry = fs.entry_of(*inode);
    }
    if (!counts_as_lookup) entry.ino = 0;  // the kernel does not look up "." and ".."
    size_t need;
    if (plus)
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &entry,
                                    static_cast<off_t>(next_offset));
    else
      need = fuse_add_direntry(req, buf.data() + used, size - used, name, &entry.attr,
                               static_cast<off_t>(next_offset));
    if (need > size - used) return false;
    used += need;
    if (plus && counts_as_lookup) fs.remember(*inode);
    return true;
  };
  auto position = static_cast<uint64_t>(off);
  bool room = true;
  if (position < 1) room = add(".", dir, 1, false);
  if (room && position < 2) {
    InodePtr parent = fs.find(dir->parent);
    room = add("..", parent ? parent : dir, 2, false);
  }
  auto& entries = dir->dir->by_cookie;
  for (auto it = entries.lower_bound(std::max<uint64_t>(position, Directory::first_cookie));
       room && it != entries.end(); ++it) {
    InodePtr child = fs.find(it->second.ino);
    if (!child) continue;
    room = add(it->second.name.c_str(), child, it->first + 1, true);
  }
  fuse_reply_buf(req, buf.data(), used);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* /*fi*/) {
  fs_of(req).count(Op::readdir);
  list_directory(req, ino, size, off, false);
}

void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    fuse_file_info* /*fi*/) {
  fs_of(req).count(Op::readdirplus);
  list_directory(req, ino, size, off, true);
}

}  // namespace tierfs
