// Records of the metadata log: a compact little-endian binary encoding (one
// kind byte, then fixed-width integers and length-prefixed strings), and
// applying them to a MetadataImage. Replay, checkpoints and tierfs check all
// go through the same apply_records, so what a restart rebuilds is what the
// server logged.
#include "tierfs/core/metadata.h"

#include <sys/stat.h>

#include "tierfs/core/journal_format.h"

namespace tierfs {

void RecordBuilder::u8(uint8_t v) {
  bytes_.push_back(static_cast<char>(v));
}
void RecordBuilder::u32(uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<char>(v >> (8 * i)));
}
void RecordBuilder::u64(uint64_t v) {
  for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<char>(v >> (8 * i)));
}
void RecordBuilder::str(std::string_view s) {
  u32(static_cast<uint32_t>(s.size()));
  bytes_.append(s);
}
void RecordBuilder::kind(RecordKind k) {
  u8(static_cast<uint8_t>(k));
}

void RecordBuilder::header(char file_kind, uint64_t generation) {
  kind(RecordKind::header);
  u8(static_cast<uint8_t>(file_kind));
  u64(generation);
}

void RecordBuilder::inode(const InodeMeta& m) {
  kind(RecordKind::inode);
  u64(m.ino);
  u32(m.mode);
  u32(m.uid);
  u32(m.gid);
  u64(m.rdev);
  u64(m.size);
  u64(static_cast<uint64_t>(m.atime_ns));
  u64(static_cast<uint64_t>(m.mtime_ns));
  u64(static_cast<uint64_t>(m.ctime_ns));
  u64(static_cast<uint64_t>(m.btime_ns));
  u32(m.nlink);
  u32(m.preferred_tier);
  str(m.symlink_target);
  u32(static_cast<uint32_t>(m.extents.size()));
  for (const tierfs_extent& e : m.extents) {
    u64(e.file_offset);
    u64(e.length);
    u64(e.tier_address);
    u32(e.tier);
    u32(e.flags);
  }
}

void RecordBuilder::extents(uint64_t ino, const tierfs_extent* list, size_t count) {
  kind(RecordKind::extents);
  u64(ino);
  u32(static_cast<uint32_t>(count));
  for (size_t i = 0; i < count; ++i) {
    u64(list[i].file_offset);
    u64(list[i].length);
    u64(list[i].tier_address);
    u32(list[i].tier);
    u32(list[i].flags);
  }
}

void RecordBuilder::entry_add(uint64_t parent, std::string_view name, uint64_t ino) {
  kind(RecordKind::entry_add);
  u64(parent);
  str(name);
  u64(ino);
}

void RecordBuilder::entry_del(uint64_t parent, std::string_view name) {
  kind(RecordKind::entry_del);
  u64(parent);
  str(name);
}

void RecordBuilder::xattr_set(uint64_t ino, std::string_view key, std::string_view value) {
  kind(RecordKind::xattr_set);
  u64(ino);
  str(key);
  str(value);
}

void RecordBuilder::xattr_del(uint64_t ino, std::string_view key) {
  kind(RecordKind::xattr_del);
  u64(ino);
  str(key);
}

void RecordBuilder::drop(uint64_t ino) {
  kind(RecordKind::drop);
  u64(ino);
}

void RecordBuilder::end() {
  kind(RecordKind::end);
}

namespace {

// Reads what RecordBuilder wrote; any read past the end marks the payload bad.
class Decoder {
 public:
  explicit Decoder(std::string_view bytes) : bytes_(bytes) {}
  bool at_end() const { return offset_ >= bytes_.size(); }
  bool ok() const { return ok_; }
  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  std::string str() {
    const uint32_t n = u32();
    if (!ok_ || bytes_.size() - offset_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(bytes_.substr(offset_, n));
    offset_ += n;
    return s;
  }
  void extents(std::vector<tierfs_extent>& out) {
    const uint32_t n = u32();
    // Each extent takes 32 bytes: a count the payload cannot hold is damage.
    if (!ok_ || n > (bytes_.size() - offset_) / 32) {
      ok_ = false;
      return;
    }
    out.resize(n);
    for (tierfs_extent& e : out) {
      e.file_offset = u64();
      e.length = u64();
      e.tier_address = u64();
      e.tier = u32();
      e.flags = u32();
    }
  }

 private:
  uint64_t take(size_t n) {
    if (!ok_ || bytes_.size() - offset_ < n) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v |= uint64_t{static_cast<unsigned char>(bytes_[offset_ + i])} << (8 * i);
    offset_ += n;
    return v;
  }
  std::string_view bytes_;
  size_t offset_ = 0;
  bool ok_ = true;
};

void read_inode(Decoder& d, MetadataImage& image) {
  const uint64_t ino = d.u64();
  InodeMeta m;
  m.ino = ino;
  m.mode = d.u32();
  m.uid = d.u32();
  m.gid = d.u32();
  m.rdev = d.u64();
  m.size = d.u64();
  m.atime_ns = static_cast<int64_t>(d.u64());
  m.mtime_ns = static_cast<int64_t>(d.u64());
  m.ctime_ns = static_cast<int64_t>(d.u64());
  m.btime_ns = static_cast<int64_t>(d.u64());
  m.nlink = d.u32();
  m.preferred_tier = d.u32();
  m.symlink_target = d.str();
  d.extents(m.extents);
  if (!d.ok()) return;
  InodeMeta& slot = image.inodes[ino];
  m.xattrs = std::move(slot.xattrs);  // an inode record leaves the xattrs as they are
  slot = std::move(m);
  if (S_ISDIR(slot.mode)) image.entries[ino];  // an empty directory has an (empty) entry map
  image.max_ino = std::max(image.max_ino, ino);
}

}  // namespace

ApplyResult apply_records(MetadataImage& image, std::string_view payload) {
  ApplyResult result;
  Decoder d(payload);
  while (!d.at_end() && d.ok()) {
    switch (static_cast<RecordKind>(d.u8())) {
      case RecordKind::header:
        result.header_kind = static_cast<char>(d.u8());
        result.generation = d.u64();
        break;
      case RecordKind::inode:
        read_inode(d, image);
        break;
      case RecordKind::extents: {
        const uint64_t ino = d.u64();
        std::vector<tierfs_extent> list;
        d.extents(list);
        if (d.ok()) image.inodes[ino].extents = std::move(list);
        break;
      }
      case RecordKind::entry_add: {
        const uint64_t parent = d.u64();
        std::string name = d.str();
        const uint64_t ino = d.u64();
        if (d.ok()) image.entries[parent][std::move(name)] = ino;
        break;
      }
      case RecordKind::entry_del: {
        const uint64_t parent = d.u64();
        std::string name = d.str();
        if (d.ok())
          if (auto it = image.entries.find(parent); it != image.entries.end())
            it->second.erase(name);
        break;
      }
      case RecordKind::xattr_set: {
        const uint64_t ino = d.u64();
        std::string key = d.str();
        std::string value = d.str();
        if (d.ok()) image.inodes[ino].xattrs[std::move(key)] = std::move(value);
        break;
      }
      case RecordKind::xattr_del: {
        const uint64_t ino = d.u64();
        std::string key = d.str();
        if (d.ok())
          if (auto it = image.inodes.find(ino); it != image.inodes.end())
            it->second.xattrs.erase(key);
        break;
      }
      case RecordKind::drop: {
        const uint64_t ino = d.u64();
        if (d.ok()) {
          image.inodes.erase(ino);
          image.entries.erase(ino);
        }
        break;
      }
      case RecordKind::end:
        result.saw_end = true;
        break;
      default:
        result.ok = false;
        return result;
    }
  }
  result.ok = d.ok();
  return result;
}

void encode_image(const MetadataImage& image, std::string& out, size_t frame_bytes) {
  RecordBuilder records;
  auto flush = [&](bool force) {
    if (records.empty() || (!force && records.bytes().size() < frame_bytes)) return;
    append_frame(out, records.bytes());
    records.clear();
  };
  for (const auto& [ino, meta] : image.inodes) {
    records.inode(meta);
    for (const auto& [key, value] : meta.xattrs) records.xattr_set(ino, key, value);
    flush(false);
  }
  for (const auto& [dir, names] : image.entries) {
    for (const auto& [name, ino] : names) {
      records.entry_add(dir, name, ino);
      flush(false);
    }
  }
  records.end();
  flush(true);
}

size_t drop_unlinked(MetadataImage& image) {
  size_t dropped = 0;
  for (auto it = image.inodes.begin(); it != image.inodes.end();) {
    if (it->second.nlink == 0 && it->first != 1) {
      image.entries.erase(it->first);
      it = image.inodes.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

}  // namespace tierfs
