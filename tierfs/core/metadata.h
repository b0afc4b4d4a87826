// The metadata that survives the server: a MetadataImage (namespace, inodes,
// xattrs, extents) and the binary records that change it. The journal
// (journal.h) appends records and replays them into an image; the server
// builds its inodes from the image at mount; `tierfs check` verifies one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bpf/tierfs_map.h"
#include "tierfs/core/block_allocator.h"

namespace tierfs {

// One inode as the log knows it. Directory entries live in MetadataImage::entries.
struct InodeMeta {
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0, btime_ns = 0;
  uint32_t nlink = 0;
  uint32_t preferred_tier = 0;
  std::string symlink_target;
  std::vector<tierfs_extent> extents;  // regular files: sorted, non-overlapping
  std::map<std::string, std::string> xattrs;
};

struct MetadataImage {
  std::unordered_map<uint64_t, InodeMeta> inodes;
  // directory inode -> name -> inode
  std::unordered_map<uint64_t, std::map<std::string, uint64_t>> entries;
  uint64_t max_ino = 0;  // the highest inode number ever logged: numbers are not reused
};

// Record kinds; the numbers are on disk.
enum class RecordKind : uint8_t {
  header = 1,     // file kind ('J'ournal or 'C'heckpoint) and generation
  inode = 2,      // every field of InodeMeta but xattrs (replaces them)
  extents = 3,    // a file's extent list alone (blocks allocated before data is copied)
  entry_add = 4,  // parent, name, inode (replaces an existing name)
  entry_del = 5,  // parent, name
  xattr_set = 6,  // inode, key, value
  xattr_del = 7,  // inode, key
  drop = 8,       // inode gone: no names, no handles, blocks released
  end = 9,        // last record of a checkpoint
};

// Builds the records of one metadata change; the journal writes them as one
// frame, so a change is replayed whole or not at all.
class RecordBuilder {
 public:
  void header(char file_kind, uint64_t generation);
  void inode(const InodeMeta& meta);
  void extents(uint64_t ino, const tierfs_extent* list, size_t count);
  void entry_add(uint64_t parent, std::string_view name, uint64_t ino);
  void entry_del(uint64_t parent, std::string_view name);
  void xattr_set(uint64_t ino, std::string_view key, std::string_view value);
  void xattr_del(uint64_t ino, std::string_view key);
  void drop(uint64_t ino);
  void end();
  const std::string& bytes() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }
  void clear() { bytes_.clear(); }

 private:
  void kind(RecordKind k);
  void u8(uint8_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void str(std::string_view s);
  std::string bytes_;
};

// What a frame's records said beyond changes to the image.
struct ApplyResult {
  bool ok = true;           // false: a record did not decode (the frame is damaged)
  bool saw_end = false;     // an `end` record (checkpoint complete)
  char header_kind = 0;     // from a `header` record, 0 when none
  uint64_t generation = 0;  // from a `header` record
};

// Applies the records in `payload` to `image` in order.
ApplyResult apply_records(MetadataImage& image, std::string_view payload);

// Every record that rebuilds `image` (a checkpoint's body), appended to `out`
// in frames of at most about `frame_bytes` each (see journal_format.h).
void encode_image(const MetadataImage& image, std::string& out, size_t frame_bytes);

// Drops the inodes that no name and no open handle keeps (nlink 0 at replay:
// unlinked while open before the crash). Returns how many were dropped.
size_t drop_unlinked(MetadataImage& image);

// tierfs check (metadata_check.cc): one line per problem, none when sane.
// The namespace: a root directory, entries that name existing inodes in
// existing directories, link counts that match the entries, every inode
// reachable from the root, no directory with two names. The extents: inside
// their tier (`tier_blocks[t]` blocks), 4 KiB-aligned, not overlapping in the
// file, and no block owned by two extents.
std::vector<std::string> check_image(const MetadataImage& image,
                                     const std::vector<uint64_t>& tier_blocks);
// A running mount's allocator against the image: every block is either free
// or owned by exactly one extent (a used block nobody owns is leaked).
// `in_transit`: blocks that migrations in flight hold for their copies (no
// record names them until the switch), and blocks retired as bad after a
// SIGBUS (Tier::bad_runs): in use and owned by nobody, yet not leaked.
std::vector<std::string> check_allocation(const MetadataImage& image, uint32_t tier,
                                          uint64_t total_blocks,
                                          const std::vector<BlockRange>& free_runs,
                                          const std::vector<BlockRange>& in_transit = {});

}  // namespace tierfs
