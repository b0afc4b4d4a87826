// tierfs check: the namespace and the extents of a MetadataImage, and a
// running mount's block allocator against them.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <unordered_set>

#include "tierfs/core/metadata.h"

namespace tierfs {

namespace {

constexpr uint64_t kRoot = 1;

struct Owned {
  uint64_t first, end, ino;
};

// Every block run that an extent owns, per tier, sorted by address.
std::vector<std::vector<Owned>> owned_blocks(const MetadataImage& image, size_t tiers) {
  std::vector<std::vector<Owned>> owned(tiers);
  for (const auto& [ino, meta] : image.inodes)
    for (const tierfs_extent& e : meta.extents)
      if (e.tier < tiers)
        owned[e.tier].push_back(
            {e.tier_address / kBlockBytes, (e.tier_address + e.length) / kBlockBytes, ino});
  for (auto& list : owned)
    std::sort(list.begin(), list.end(), [](const Owned& a, const Owned& b) {
      return a.first < b.first || (a.first == b.first && a.ino < b.ino);
    });
  return owned;
}

void check_extents(const InodeMeta& m, const std::vector<uint64_t>& tier_blocks,
                   std::vector<std::string>& out) {
  if (!S_ISREG(m.mode) && !m.extents.empty())
    out.push_back(
        fmt::format("inode {}: not a regular file but owns {} extents", m.ino, m.extents.size()));
  for (size_t i = 0; i < m.extents.size(); ++i) {
    const tierfs_extent& e = m.extents[i];
    const std::string where = fmt::format(
        "inode {} extent {} (file offset {}, tier {}, address {}, "
        "{} bytes)",
        m.ino, i, e.file_offset, e.tier, e.tier_address, e.length);
    if (e.tier >= tier_blocks.size()) {
      out.push_back(where + ": no such tier");
      continue;
    }
    if (e.length == 0 || e.length % kBlockBytes || e.file_offset % kBlockBytes ||
        e.tier_address % kBlockBytes)
      out.push_back(where + ": not 4KiB-aligned");
    if (e.tier_address / kBlockBytes + e.length / kBlockBytes > tier_blocks[e.tier] ||
        e.tier_address + e.length < e.tier_address)
      out.push_back(
          fmt::format("{}: past the end of the tier ({} blocks)", where, tier_blocks[e.tier]));
    if (i > 0 && m.extents[i - 1].file_offset + m.extents[i - 1].length > e.file_offset)
      out.push_back(where + ": overlaps the extent before it in the file");
  }
}

void check_namespace(const MetadataImage& image, std::vector<std::string>& out) {
  auto root = image.inodes.find(kRoot);
  if (root == image.inodes.end() || !S_ISDIR(root->second.mode)) {
    out.emplace_back("no root directory (inode 1)");
    return;
  }
  // Names per inode, and subdirectories per directory.
  std::unordered_map<uint64_t, uint32_t> names, subdirs;
  for (const auto& [dir, entries] : image.entries) {
    auto d = image.inodes.find(dir);
    if (d == image.inodes.end() || !S_ISDIR(d->second.mode)) {
      if (!entries.empty())
        out.push_back(fmt::format("directory {}: holds {} entries but is not a directory", dir,
                                  entries.size()));
      continue;
    }
    for (const auto& [name, ino] : entries) {
      auto child = image.inodes.find(ino);
      if (child == image.inodes.end()) {
        out.push_back(fmt::format("directory {}: entry \"{}\" names inode {}, which does not exist",
                                  dir, name, ino));
        continue;
      }
      if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
        out.push_back(fmt::format("directory {}: bad entry name \"{}\"", dir, name));
      ++names[ino];
      if (S_ISDIR(child->second.mode)) ++subdirs[dir];
    }
  }
  for (const auto& [ino, meta] : image.inodes) {
    const uint32_t n = names.count(ino) ? names[ino] : 0;
    if (S_ISDIR(meta.mode)) {
      const uint32_t expected = 2 + (subdirs.count(ino) ? subdirs[ino] : 0);
      if (ino != kRoot && n != 1)
        out.push_back(fmt::format("directory {}: {} names (a directory has one)", ino, n));
      if (meta.nlink != expected)
        out.push_back(
            fmt::format("directory {}: link count {}, expected {}", ino, meta.nlink, expected));
    } else if (meta.nlink != n) {
      out.push_back(
          fmt::format("inode {}: link count {}, but {} names point to it", ino, meta.nlink, n));
    }
  }
  // Reachability from the root; a directory loop leaves its members unreached.
  std::unordered_set<uint64_t> reached{kRoot};
  std::vector<uint64_t> todo{kRoot};
  while (!todo.empty()) {
    const uint64_t dir = todo.back();
    todo.pop_back();
    auto entries = image.entries.find(dir);
    if (entries == image.entries.end()) continue;
    for (const auto& [name, ino] : entries->second) {
      auto child = image.inodes.find(ino);
      if (child == image.inodes.end() || !reached.insert(ino).second) continue;
      if (S_ISDIR(child->second.mode)) todo.push_back(ino);
    }
  }
  for (const auto& [ino, meta] : image.inodes)
    if (!reached.count(ino) && meta.nlink > 0)
      out.push_back(fmt::format("inode {}: not reachable from the root", ino));
}

}  // namespace

std::vector<std::string> check_image(const MetadataImage& image,
                                     const std::vector<uint64_t>& tier_blocks) {
  std::vector<std::string> out;
  check_namespace(image, out);
  for (const auto& [ino, meta] : image.inodes) check_extents(meta, tier_blocks, out);
  const auto owned = owned_blocks(image, tier_blocks.size());
  for (size_t t = 0; t < owned.size(); ++t) {
    uint64_t reach = 0, reach_ino = 0;
    for (const Owned& o : owned[t]) {
      if (o.first < reach)
        out.push_back(fmt::format("tier {}: blocks {}-{} owned by inode {} and inode {}", t,
                                  o.first, std::min(reach, o.end) - 1, reach_ino, o.ino));
      if (o.end > reach) {
        reach = o.end;
        reach_ino = o.ino;
      }
    }
  }
  return out;
}

std::vector<std::string> check_allocation(const MetadataImage& image, uint32_t tier,
                                          uint64_t total_blocks,
                                          const std::vector<BlockRange>& free_runs,
                                          const std::vector<BlockRange>& in_transit) {
  std::vector<std::string> out;
  const auto owned = owned_blocks(image, tier + 1);
  std::vector<BlockRange> transit = in_transit;
  std::sort(transit.begin(), transit.end(),
            [](const BlockRange& a, const BlockRange& b) { return a.first < b.first; });
  // [first, end) is used by no file: leaked, except the parts a migration holds.
  // The excuse is only that: a migration's list is a snapshot taken after its
  // steps, so it never turns a block into an owned one.
  const auto leaked = [&](uint64_t first, uint64_t end) {
    const auto report = [&](uint64_t from, uint64_t to) {
      out.push_back(fmt::format("tier {}: blocks {}-{} are in use but no file owns them (leaked)",
                                tier, from, to - 1));
    };
    uint64_t at = first;
    for (const BlockRange& t : transit) {
      if (t.end() <= at || t.first >= end) continue;
      if (t.first > at) report(at, t.first);
      at = std::max(at, t.end());
    }
    if (at < end) report(at, end);
  };
  // Every run in address order, free ones tagged with inode 0: a block is in
  // exactly one of them, or used by nobody (leaked).
  std::vector<Owned> runs = owned[tier];
  for (const BlockRange& r : free_runs) runs.push_back({r.first, r.end(), 0});
  std::sort(runs.begin(), runs.end(),
            [](const Owned& a, const Owned& b) { return a.first < b.first; });
  uint64_t at = 0, reach_ino = 0;
  for (const Owned& r : runs) {
    if (r.first > at) leaked(at, r.first);
    // Two owners of one block are check_image's to report; a free owned block is ours.
    if (r.first < at && (r.ino == 0) != (reach_ino == 0))
      out.push_back(fmt::format("tier {}: blocks {}-{} of inode {} are free in the allocator", tier,
                                r.first, std::min(at, r.end) - 1, r.ino ? r.ino : reach_ino));
    if (r.end > at) {
      at = r.end;
      reach_ino = r.ino;
    }
  }
  if (at < total_blocks) leaked(at, total_blocks);
  return out;
}

}  // namespace tierfs
