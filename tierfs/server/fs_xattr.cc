// Extended attributes: user.* and trusted.* stored per inode, user.tierfs.tier
// (which steers placement and, set on a file with data, moves the data), and the read-only virtual
// attributes user.tierfs.map (a file's extents) and user.tierfs.stats (on the mount root) that
// `tierfs map` and `tierfs stats` read instead of ioctls.
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"

namespace tierfs {

namespace {

constexpr std::string_view map_xattr = "user.tierfs.map";
constexpr std::string_view stats_xattr = "user.tierfs.stats";
// tierfs check of the running mount: a JSON array of problem lines (root and the mounter only).
constexpr std::string_view check_xattr = "user.tierfs.check";
constexpr size_t max_value_bytes = size_t{64} * 1024;  // XATTR_SIZE_MAX
// Per inode, so that no user can grow the server's memory without bound
// through attributes (documented in docs/operations.md); ENOSPC past them, as
// ext4 answers when an inode's attribute space is full.
// Bytes, not entries: about a thousand small attributes fit, as on tmpfs and
// ext4. Each entry is charged its map node too, so a flood of empty ones is
// bounded by the memory it really takes.
constexpr size_t max_xattr_bytes_per_inode = size_t{256} * 1024;
constexpr size_t xattr_entry_overhead_bytes = 64;

bool is_virtual(std::string_view name) {
  return name.starts_with(map_xattr) || name == stats_xattr || name == check_xattr;
}

// "user.tierfs.map" is page 0; "user.tierfs.map@N" starts at extent N.
std::optional<size_t> map_page_start(std::string_view name) {
  if (name == map_xattr) return 0;
  if (name.size() <= map_xattr.size() + 1 || name[map_xattr.size()] != '@') return std::nullopt;
  size_t first = 0;
  for (char c : name.substr(map_xattr.size() + 1)) {
    if (c < '0' || c > '9' || first > (SIZE_MAX - 9) / 10) return std::nullopt;
    first = first * 10 + static_cast<size_t>(c - '0');
  }
  return first;
}

// Root and the user who mounted see everything the virtual attributes tell.
bool sees_internals(fuse_req_t req) {
  const uid_t uid = fuse_req_ctx(req)->uid;
  return uid == 0 || uid == geteuid();
}

bool supported_namespace(std::string_view name) {
  return name.starts_with("user.") || name.starts_with("trusted.");
}

// Replies with `value` (size 0 asks for its length).
void reply_value(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0)
    fuse_reply_xattr(req, value.size());
  else if (size < value.size())
    fuse_reply_err(req, ERANGE);
  else
    fuse_reply_buf(req, value.data(), value.size());
}

}  // namespace

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
  Fs& fs = fs_of(req);
  fs.count(Op::setxattr);
  std::string_view key = name;
  InodePtr inode = fs.find(ino);
  int err = !inode                        ? ENOENT
            : is_virtual(key)             ? EPERM
            : !supported_namespace(key)   ? EOPNOTSUPP
            : key.size() > XATTR_NAME_MAX ? ERANGE
            : size > max_value_bytes      ? E2BIG
                                          : 0;
  std::optional<uint32_t> tier;
  if (!err && key == tier_xattr_name) {
    // Accept the value with or without a trailing NUL, as setfattr and C callers send it.
    std::string_view tier_name(value, size);
    if (!tier_name.empty() && tier_name.back() == '\0') tier_name.remove_suffix(1);
    tier = fs.placement().tier_named(tier_name);
    if (!tier) err = EINVAL;
  }
  if (!err && tier && inode->is_regular()) {
    // The data moves first, so a move that fails (ENOSPC) changes nothing.
    // Writers of the file wait meanwhile: the kernel holds its inode lock
    // across setxattr (`tierfs migrate` uses an ioctl, which does not).
    {
      std::shared_lock guard(inode->lock);
      const bool exists = inode->xattrs.contains(name);
      err = (flags & XATTR_CREATE) && exists     ? EEXIST
            : (flags & XATTR_REPLACE) && !exists ? ENODATA
                                                 : 0;
    }
    // A move off the kernel path held by open passthrough handles is
    // accepted: it happens when the last of them closes (`tierfs map`).
    if (!err) {
      const int moved = fs.mover().migrate(inode, *tier);
      err = moved == -EINPROGRESS ? 0 : -moved;
    }
  }
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  std::unique_lock guard(inode->lock);
  auto it = inode->xattrs.find(name);
  if ((flags & XATTR_CREATE) && it != inode->xattrs.end()) {
    err = EEXIST;
  } else if ((flags & XATTR_REPLACE) && it == inode->xattrs.end()) {
    err = ENODATA;
  } else {
    std::string stored(value, size);
    if (tier && !stored.empty() && stored.back() == '\0') stored.pop_back();
    size_t bytes = 0;
    for (const auto& [k, v] : inode->xattrs) bytes += k.size() + v.size();
    const size_t old_bytes = it == inode->xattrs.end() ? 0 : it->first.size() + it->second.size();
    const size_t new_bytes = key.size() + stored.size();
    const size_t count = inode->xattrs.size() + (it == inode->xattrs.end() ? 1 : 0);
    const size_t charged = bytes - old_bytes + new_bytes + count * xattr_entry_overhead_bytes;
    if (charged > max_xattr_bytes_per_inode) {
      guard.unlock();
      fuse_reply_err(req, ENOSPC);
      return;
    }
    fs.count_xattrs(it == inode->xattrs.end() ? 1 : 0,
                    static_cast<int64_t>(new_bytes) - static_cast<int64_t>(old_bytes));
    inode->xattrs[name] = std::move(stored);
    // New extents of a regular file go to the named tier; a directory passes it to new children.
    if (tier && inode->is_regular() && !inode->data_released)
      inode->data->set_preferred_tier(*tier);
    stamp_change(*inode, false);
    RecordBuilder& records = Fs::change_records();
    records.xattr_set(inode->ino, name, inode->xattrs[name]);
    fs.log_inode_locked(*inode, &records);
  }
  guard.unlock();
  fuse_reply_err(req, err);
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Fs& fs = fs_of(req);
  fs.count(Op::getxattr);
  std::string_view key = name;
  InodePtr inode = fs.find(ino);
  if (!inode) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (key.starts_with(map_xattr) && inode->is_regular()) {
    std::optional<size_t> first = map_page_start(key);
    if (!first) {
      fuse_reply_err(req, ENODATA);
      return;
    }
    std::string json;
    {
      std::shared_lock guard(inode->lock);
      // A file's layout (device offsets) is for its owner, as its contents are.
      if (!sees_internals(req) && fuse_req_ctx(req)->uid != inode->uid) {
        guard.unlock();
        fuse_reply_err(req, EACCES);
        return;
      }
      json = extent_map_json(fs, *inode, *first);
    }
    reply_value(req, json, size);
    return;
  }
  if (key == stats_xattr && ino == FUSE_ROOT_ID) {
    reply_value(req, stats_json(fs, sees_internals(req)), size);
    return;
  }
  if (key == check_xattr && ino == FUSE_ROOT_ID) {
    if (!sees_internals(req)) {
      fuse_reply_err(req, EACCES);
      return;
    }
    reply_value(req, nlohmann::json(fs.check_problems()).dump(), size);
    return;
  }
  if (!supported_namespace(key)) {
    // security.* and system.* are not stored: "no such attribute" keeps the kernel's probes cheap.
    fuse_reply_err(req, ENODATA);
    return;
  }
  std::shared_lock guard(inode->lock);
  auto it = inode->xattrs.find(name);
  if (it == inode->xattrs.end()) {
    guard.unlock();
    fuse_reply_err(req, ENODATA);
    return;
  }
  std::string value = it->second;
  guard.unlock();
  reply_value(req, value, size);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Fs& fs = fs_of(req);
  fs.count(Op::listxattr);
  InodePtr inode = fs.find(ino);
  if (!inode) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  std::string names;
  {
    std::shared_lock guard(inode->lock);
    for (const auto& [key, value] : inode->xattrs) {
      names += key;
      names.push_back('\0');
    }
  }
  reply_value(req, names, size);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Fs& fs = fs_of(req);
  fs.count(Op::removexattr);
  InodePtr inode = fs.find(ino);
  if (!inode || is_virtual(name)) {
    fuse_reply_err(req, inode ? EPERM : ENOENT);
    return;
  }
  std::unique_lock guard(inode->lock);
  auto it = inode->xattrs.find(name);
  int err = it == inode->xattrs.end() ? ENODATA : 0;
  if (!err) {
    fs.count_xattrs(-1, -static_cast<int64_t>(it->first.size() + it->second.size()));
    inode->xattrs.erase(it);
    stamp_change(*inode, false);
    RecordBuilder& records = Fs::change_records();
    records.xattr_del(inode->ino, name);
    fs.log_inode_locked(*inode, &records);
  }
  guard.unlock();
  fuse_reply_err(req, err);
}

}  // namespace tierfs
