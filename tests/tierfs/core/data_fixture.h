// The data layer's test fixture: a Storage over memfd regions (no
// privileges needed), patterns, read/write helpers, a recording stand-in for
// the BPF maps and the extent invariants, shared by the FileData and
// migration tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "numa/region.h"
#include "tierfs/core/config.h"
#include "tierfs/core/file_data.h"

namespace tierfs::data_testing {

// A region over a memfd. "numa:N" specs start out zeroed and are reservable
// like /dev/shm objects (fallocate, new blocks written with pwritev);
// "file:" specs are filled with garbage first, like a device or file a
// previous user wrote.
class MemfdRegion final : public numa::Region {
 public:
  MemfdRegion(const std::string& spec_text, uint64_t size) {
    spec_ = numa::parse_region_spec(spec_text);
    fd_ = memfd_create("tierfs-test-region", MFD_CLOEXEC);
    if (fd_ < 0 || ftruncate(fd_, static_cast<off_t>(size)) != 0) throw std::runtime_error("memfd");
    void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (base == MAP_FAILED) throw std::runtime_error("mmap");
    data_ = static_cast<std::byte*>(base);
    size_bytes_ = size;
    if (spec_.kind == numa::RegionKind::file) std::memset(data_, 0xa5, size);
    reservable_ = spec_.kind == numa::RegionKind::numa;
  }
  ~MemfdRegion() override {
    munmap(data_, size_bytes_);
    close(fd_);
  }
  int fd() const override { return fd_; }

 private:
  int fd_ = -1;
};

struct TierShape {
  uint32_t ways = 1;
  uint64_t granularity_bytes = 4096;
  uint64_t rows = 64;
  std::vector<uint32_t> weights;  // empty: plain interleave
  bool garbage = false;           // regions start with old bytes (file kind)
};

class TestStorage {
 public:
  explicit TestStorage(const std::vector<TierShape>& shapes) {
    std::vector<std::vector<std::unique_ptr<numa::Region>>> regions;
    for (size_t t = 0; t < shapes.size(); ++t) {
      const TierShape& s = shapes[t];
      TierConfig tier;
      tier.name = "t" + std::to_string(t);
      tier.granularity_bytes = s.granularity_bytes;
      tier.weights = s.weights;
      for (uint32_t i = 0; i < s.ways; ++i) {
        const std::string text = s.garbage ? "file:/memfd/" + tier.name + "." + std::to_string(i)
                                           : "numa:" + std::to_string(i);
        tier.regions.push_back({numa::parse_region_spec(text), 0, {}});
      }
      tier.geometry = tier_geometry(tier, s.rows);
      tier.size_bytes = tier.geometry.capacity_bytes;
      regions.emplace_back();
      for (uint32_t i = 0; i < s.ways; ++i)
        regions.back().push_back(std::make_unique<MemfdRegion>(tier.regions[i].spec.text,
                                                               tier.geometry.regions[i].bytes));
      config_.tiers.push_back(tier);
    }
    storage_ = Storage::create(config_, std::move(regions));
  }
  Storage& operator*() { return *storage_; }
  Storage* operator->() { return storage_.get(); }
  uint64_t used_bytes(size_t tier) {
    Tier& t = storage_->tier(tier);
    return (t.blocks().total_blocks() - t.blocks().free_blocks()) * kBlockBytes;
  }
  uint64_t capacity_bytes(size_t tier) {
    Tier& t = storage_->tier(tier);
    return t.blocks().total_blocks() * kBlockBytes;
  }

 private:
  Config config_;
  std::unique_ptr<Storage> storage_;
};

inline std::string pattern(size_t bytes, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(bytes, '\0');
  for (char& c : out) c = static_cast<char>('a' + rng() % 26);
  return out;
}

inline int64_t write_at(FileData& file, Storage& storage, uint64_t off, const std::string& data) {
  iovec v{const_cast<char*>(data.data()), data.size()};
  return file.write(storage, off, std::span<const iovec>(&v, 1));
}

inline std::string read_at(FileData& file, Storage& storage, uint64_t off, uint64_t size,
                           uint64_t file_size) {
  std::vector<iovec> iov;
  const int64_t n = file.read(storage, off, size, file_size, iov);
  EXPECT_GE(n, 0);
  std::string out;
  for (const iovec& v : iov) out.append(static_cast<const char*>(v.iov_base), v.iov_len);
  EXPECT_EQ(static_cast<int64_t>(out.size()), n) << "iovecs add up to the count";
  return out;
}

inline bool all_zero(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

// Remembers what the BPF maps (the loader in the server) were last told per inode.
class RecordingMaps final : public bpf::IomapMaps {
 public:
  int set_tier(uint32_t, const tierfs_layout&, std::span<const uint32_t>) override { return 0; }
  int set_extents(uint64_t ino, std::span<const tierfs_extent> extents) override {
    seen[ino].assign(extents.begin(), extents.end());
    return 0;
  }
  int remove_inode(uint64_t ino) override {
    seen.erase(ino);
    return 0;
  }
  std::map<uint64_t, std::vector<tierfs_extent>> seen;
};

inline bool same_extents(std::span<const tierfs_extent> a, const std::vector<tierfs_extent>& b) {
  return a.size() == b.size() &&
         std::equal(
             a.begin(), a.end(), b.begin(), [](const tierfs_extent& x, const tierfs_extent& y) {
               return x.file_offset == y.file_offset && x.length == y.length &&
                      x.tier_address == y.tier_address && x.tier == y.tier && x.flags == y.flags;
             });
}

// Sorted, non-overlapping, 4 KiB-granular, inside their tiers, and no block
// shared with another file; the blocks the files hold are the blocks the
// allocator handed out.
inline void check_extents(Storage& storage, const std::vector<const FileData*>& files) {
  std::map<uint32_t, std::vector<BlockRange>> rows_of_tier;
  for (const FileData* file : files) {
    const auto extents = file->extents();
    for (size_t i = 0; i < extents.size(); ++i) {
      const tierfs_extent& e = extents[i];
      ASSERT_GT(e.length, 0u) << "extent " << i;
      ASSERT_LT(e.tier, storage.tier_count());
      if (i > 0) {
        ASSERT_LE(extents[i - 1].file_offset + extents[i - 1].length, e.file_offset);
      }
      Tier& tier = storage.tier(e.tier);
      ASSERT_EQ(e.file_offset % kBlockBytes, 0u) << "extent " << i;
      ASSERT_EQ(e.length % kBlockBytes, 0u) << "extent " << i;
      ASSERT_EQ(e.tier_address % kBlockBytes, 0u) << "extent " << i;
      const BlockRange blocks{e.tier_address / kBlockBytes, e.length / kBlockBytes};
      ASSERT_LE(blocks.end(), tier.blocks().total_blocks());
      rows_of_tier[e.tier].push_back(blocks);
    }
  }
  for (size_t t = 0; t < storage.tier_count(); ++t) {
    auto& ranges = rows_of_tier[static_cast<uint32_t>(t)];
    std::sort(ranges.begin(), ranges.end(),
              [](const BlockRange& a, const BlockRange& b) { return a.first < b.first; });
    uint64_t held = 0;
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (i > 0) {
        ASSERT_LE(ranges[i - 1].first + ranges[i - 1].count, ranges[i].first) << "tier " << t;
      }
      held += ranges[i].count;
    }
    Tier& tier = storage.tier(t);
    ASSERT_EQ(held, tier.blocks().total_blocks() - tier.blocks().free_blocks())
        << "tier " << t << ": blocks used by the files == blocks the allocator handed out";
  }
}

}  // namespace tierfs::data_testing
