// FileData (tierfs/storage.h) on a Storage of memfd regions, no privileges
// needed: round trips across interleave boundaries and tiers, holes, truncate,
// punch, zero range, fallocate, SEEK_DATA/SEEK_HOLE, release, ENOSPC and
// short writes, extent shape, and a randomized comparison with a byte vector.
#include <fcntl.h>
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
#include "tests/tierfs/core/data_fixture.h"
#include "tierfs/core/config.h"
#include "tierfs/core/file_data.h"

namespace tierfs {
namespace {

using namespace data_testing;  // NOLINT(google-build-using-namespace)

TEST(FileData, RoundTripAcrossInterleaveBoundaries) {
  TestStorage storage({{.ways = 3, .granularity_bytes = 4096, .rows = 64}});
  FileData file;
  const std::string data = pattern(300000, 1);
  ASSERT_EQ(write_at(file, *storage, 1234, data), static_cast<int64_t>(data.size()));
  const uint64_t size = 1234 + data.size();
  EXPECT_EQ(read_at(file, *storage, 1234, data.size(), size), data);
  // Reads that start and end inside granules.
  for (uint64_t off : {4095u, 4096u, 12287u, 12288u, 77777u})
    EXPECT_EQ(read_at(file, *storage, off, 10000, size), data.substr(off - 1234, 10000)) << off;
  // Every region holds some of it: the file is interleaved.
  for (uint32_t r = 0; r < 3; ++r) {
    const std::byte* p = storage->tier(0).region_data(r);
    EXPECT_TRUE(std::any_of(p, p + 4096 * 64, [](std::byte b) { return b != std::byte{0}; }))
        << "region " << r;
  }
  check_extents(*storage, {&file});
}

TEST(FileData, RoundTripOnAWeightedTier) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 8192, .rows = 32, .weights = {1, 3}}});
  FileData file;
  const std::string data = pattern(200000, 2);
  ASSERT_EQ(write_at(file, *storage, 5000, data), static_cast<int64_t>(data.size()));
  EXPECT_EQ(read_at(file, *storage, 5000, data.size(), 5000 + data.size()), data);
  // Overwrite across a weight boundary and read the whole file back.
  const std::string patch = pattern(20000, 3);
  ASSERT_EQ(write_at(file, *storage, 8000, patch), 20000);
  std::string expected = std::string(5000, '\0') + data;
  expected.replace(8000, patch.size(), patch);
  EXPECT_EQ(read_at(file, *storage, 0, expected.size(), expected.size()), expected);
}

TEST(FileData, SpillsToTheNextTierWhenTheFirstIsFull) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 8},
                       {.ways = 2, .granularity_bytes = 8192, .rows = 64, .garbage = true}});
  FileData file;
  const std::string data = pattern(100000, 4);
  ASSERT_EQ(write_at(file, *storage, 0, data), static_cast<int64_t>(data.size()));
  EXPECT_EQ(storage.used_bytes(0), storage.capacity_bytes(0)) << "the first tier is filled first";
  EXPECT_GT(storage.used_bytes(1), 0u);
  std::vector<uint32_t> tiers;
  for (const auto& e : file.extents()) tiers.push_back(e.tier);
  EXPECT_EQ(tiers.front(), 0u);
  EXPECT_EQ(tiers.back(), 1u);
  EXPECT_EQ(read_at(file, *storage, 0, data.size(), data.size()), data);
  check_extents(*storage, {&file});
}

TEST(FileData, FullSlowTierFallsBackToAFasterOne) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 16},
                       {.ways = 1, .granularity_bytes = 4096, .rows = 2}});
  FileData file;
  file.set_preferred_tier(1);
  const std::string data = pattern(20000, 5);
  ASSERT_EQ(write_at(file, *storage, 0, data), 20000);
  EXPECT_EQ(file.extents().front().tier, 1u);
  EXPECT_EQ(file.extents().back().tier, 0u);
  EXPECT_EQ(read_at(file, *storage, 0, data.size(), data.size()), data);
}

TEST(FileData, HolesReadAsZerosAndReadsStopAtTheFileSize) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 64}});
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 0, "head"), 4);
  ASSERT_EQ(write_at(file, *storage, 100000, "tail"), 4);
  const uint64_t size = 100004;
  const std::string all = read_at(file, *storage, 0, 1 << 20, size);
  ASSERT_EQ(all.size(), size);
  EXPECT_EQ(all.substr(0, 4), "head");
  EXPECT_TRUE(all_zero(all.substr(4, 100000 - 4)));
  EXPECT_EQ(all.substr(100000), "tail");
  EXPECT_EQ(read_at(file, *storage, size, 10, size), "");
  EXPECT_EQ(read_at(file, *storage, size + 5, 10, size), "");
  // A hole larger than the shared zero buffer comes back in several iovecs.
  FileData sparse;
  ASSERT_EQ(write_at(sparse, *storage, 3 << 20, "x"), 1);
  const std::string big = read_at(sparse, *storage, 0, (3 << 20) + 1, (3 << 20) + 1);
  EXPECT_TRUE(all_zero(big.substr(0, 3 << 20)));
  EXPECT_EQ(big.back(), 'x');
}

TEST(FileData, FreshRowsOfUsedMemoryReadAsZeros) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 16, .garbage = true}});
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 5000, "x"), 1);
  const std::string back = read_at(file, *storage, 0, 5001, 5001);
  EXPECT_TRUE(all_zero(back.substr(0, 5000))) << "old bytes of the region leaked into the file";
  // Appending into preallocated and extended rows reads zeros too.
  ASSERT_EQ(write_at(file, *storage, 40000, "y"), 1);
  const std::string more = read_at(file, *storage, 5001, 40000 - 5001, 40001);
  EXPECT_TRUE(all_zero(more));
}

TEST(FileData, TruncateDownFreesRowsAndZeroesTheTail) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 32}});
  FileData file;
  const std::string data = pattern(60000, 6);
  ASSERT_EQ(write_at(file, *storage, 0, data), 60000);
  file.truncate(*storage, 10000);
  EXPECT_EQ(storage.used_bytes(0), 12288u) << "blocks past the new size are freed";
  // Growing the size again (truncate up) shows zeros past the cut.
  const std::string back = read_at(file, *storage, 0, 60000, 60000);
  EXPECT_EQ(back.substr(0, 10000), data.substr(0, 10000));
  EXPECT_TRUE(all_zero(back.substr(10000)));
  file.truncate(*storage, 0);
  EXPECT_EQ(storage.used_bytes(0), 0u);
  EXPECT_TRUE(file.extents().empty());
  check_extents(*storage, {&file});
}

TEST(FileData, PunchHoleFreesWholeRowsAndZeroesTheEdges) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 32}});
  FileData file;
  const std::string data = pattern(16 * 4096, 7);
  ASSERT_EQ(write_at(file, *storage, 0, data), static_cast<int64_t>(data.size()));
  const uint64_t used = storage.used_bytes(0);
  // [5000, 30000): rows 2..6 are whole and freed; 5000..8191 and 28672..29999 are zeroed.
  ASSERT_EQ(file.punch_hole(*storage, 5000, 25000), 0);
  EXPECT_EQ(storage.used_bytes(0), used - 5 * 4096);
  std::string expected = data;
  std::fill(expected.begin() + 5000, expected.begin() + 30000, '\0');
  EXPECT_EQ(read_at(file, *storage, 0, data.size(), data.size()), expected);
  EXPECT_EQ(file.seek_hole(0, data.size()), 8192);
  EXPECT_EQ(file.seek_data(8192, data.size()), 28672);
  // A punch inside one row frees nothing.
  ASSERT_EQ(file.punch_hole(*storage, 100, 200), 0);
  EXPECT_EQ(storage.used_bytes(0), used - 5 * 4096);
  std::fill(expected.begin() + 100, expected.begin() + 300, '\0');
  EXPECT_EQ(read_at(file, *storage, 0, data.size(), data.size()), expected);
  check_extents(*storage, {&file});
}

TEST(FileData, ZeroRangeReadsZerosAndStaysAllocated) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 32}});
  FileData file;
  const std::string data = pattern(64 * 1024, 8);
  ASSERT_EQ(write_at(file, *storage, 0, data), static_cast<int64_t>(data.size()));
  const uint64_t used = storage.used_bytes(0);
  ASSERT_EQ(file.zero_range(*storage, 1000, 40000), 0);
  EXPECT_EQ(storage.used_bytes(0), used);
  EXPECT_EQ(file.seek_hole(0, data.size()), static_cast<int64_t>(data.size()));
  std::string expected = data;
  std::fill(expected.begin() + 1000, expected.begin() + 41000, '\0');
  EXPECT_EQ(read_at(file, *storage, 0, data.size(), data.size()), expected);
  // Over a hole it allocates.
  FileData empty;
  ASSERT_EQ(empty.zero_range(*storage, 0, 8192), 0);
  EXPECT_GE(empty.allocated_bytes(), 8192u);
}

TEST(FileData, AllocateReservesRowsThatReadAsZerosAndWritesUseThem) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 64, .garbage = true}});
  FileData file;
  ASSERT_EQ(file.allocate(*storage, 0, 100000), 0);
  const uint64_t used = storage.used_bytes(0);
  EXPECT_GE(used, 100000u);
  EXPECT_GE(file.allocated_bytes(), 100000u);
  EXPECT_TRUE(all_zero(read_at(file, *storage, 0, 100000, 100000)));
  // Writes inside the reservation take no more rows.
  ASSERT_EQ(write_at(file, *storage, 0, pattern(50000, 9)), 50000);
  ASSERT_EQ(write_at(file, *storage, 70000, pattern(30000, 10)), 30000);
  EXPECT_EQ(storage.used_bytes(0), used);
  EXPECT_TRUE(all_zero(read_at(file, *storage, 50000, 20000, 100000)));
  // More than the tier holds fails with ENOSPC.
  FileData huge;
  EXPECT_EQ(huge.allocate(*storage, 0, storage.capacity_bytes(0)), -ENOSPC);
  check_extents(*storage, {&file, &huge});
}

TEST(FileData, SeekDataAndSeekHoleFollowTheExtents) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 64}});
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 16384, std::string(4096, 'd')), 4096);
  ASSERT_EQ(write_at(file, *storage, 65536, std::string(4096, 'e')), 4096);
  const uint64_t size = 65536 + 4096;
  EXPECT_EQ(file.seek_data(0, size), 16384);
  EXPECT_EQ(file.seek_data(17000, size), 17000);
  EXPECT_EQ(file.seek_hole(0, size), 0);
  EXPECT_EQ(file.seek_hole(16384, size), 20480);
  EXPECT_EQ(file.seek_data(20480, size), 65536);
  EXPECT_EQ(file.seek_hole(65536, size), static_cast<int64_t>(size)) << "the end is a hole";
  EXPECT_EQ(file.seek_data(size, size), -ENXIO);
  EXPECT_EQ(file.seek_hole(size, size), -ENXIO);
  FileData empty;
  EXPECT_EQ(empty.seek_data(0, 100), -ENXIO);
  EXPECT_EQ(empty.seek_hole(10, 100), 10);
}

TEST(FileData, ReleaseFreesEveryRowOfEveryTier) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 4},
                       {.ways = 3, .granularity_bytes = 4096, .rows = 64, .garbage = true}});
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 0, pattern(200000, 11)), 200000);
  ASSERT_EQ(file.punch_hole(*storage, 50000, 30000), 0);
  ASSERT_EQ(write_at(file, *storage, 400000, "z"), 1);
  ASSERT_GT(storage.used_bytes(0), 0u);
  ASSERT_GT(storage.used_bytes(1), 0u);
  file.release(*storage);
  EXPECT_EQ(storage.used_bytes(0), 0u);
  EXPECT_EQ(storage.used_bytes(1), 0u);
  EXPECT_TRUE(file.extents().empty());
  EXPECT_EQ(storage->tier(1).blocks().free_runs().size(), 1u);
  // Freed rows come back zeroed for the next file.
  FileData next;
  next.set_preferred_tier(1);
  ASSERT_EQ(next.allocate(*storage, 0, storage.capacity_bytes(1)), 0);
  EXPECT_TRUE(
      all_zero(read_at(next, *storage, 0, storage.capacity_bytes(1), storage.capacity_bytes(1))));
}

TEST(FileData, EnospcOnlyWhenEveryTierIsFullAndAPartialWriteIsShort) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 8},
                       {.ways = 2, .granularity_bytes = 4096, .rows = 4}});
  const uint64_t total = storage.capacity_bytes(0) + storage.capacity_bytes(1);
  FileData keep;
  const std::string kept = pattern(10000, 12);
  ASSERT_EQ(write_at(keep, *storage, 0, kept), 10000);
  const uint64_t kept_rows_bytes = storage.used_bytes(0) + storage.used_bytes(1);
  FileData hog;
  const std::string big = pattern(total, 13);
  const int64_t n = write_at(hog, *storage, 0, big);
  EXPECT_EQ(n, static_cast<int64_t>(total - kept_rows_bytes)) << "the short count is what fit";
  EXPECT_EQ(storage.used_bytes(0), storage.capacity_bytes(0));
  EXPECT_EQ(storage.used_bytes(1), storage.capacity_bytes(1));
  EXPECT_EQ(write_at(hog, *storage, static_cast<uint64_t>(n), "more"), -ENOSPC);
  FileData late;
  EXPECT_EQ(write_at(late, *storage, 0, "x"), -ENOSPC);
  EXPECT_EQ(read_at(keep, *storage, 0, kept.size(), kept.size()), kept)
      << "a full mount must not corrupt other files";
  EXPECT_EQ(read_at(hog, *storage, 0, static_cast<uint64_t>(n), static_cast<uint64_t>(n)),
            big.substr(0, static_cast<size_t>(n)));
  // Space freed anywhere is usable again.
  ASSERT_EQ(hog.punch_hole(*storage, 0, 8192), 0);
  EXPECT_EQ(write_at(late, *storage, 0, "x"), 1);
  check_extents(*storage, {&keep, &hog, &late});
}

// The point of the block allocator: a small file costs its size rounded up
// to 4 KiB, on any tier layout, and every block of the tier can be used.
TEST(FileData, SmallFilesCostTheirSizeRoundedUpToABlock) {
  TestStorage storage(
      {{.ways = 4, .granularity_bytes = 65536, .rows = 4, .weights = {1, 2, 1, 3}}});
  const uint64_t blocks = storage.capacity_bytes(0) / kBlockBytes;
  std::vector<FileData> files(blocks);
  for (uint64_t i = 0; i < blocks; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(write_at(files[i], *storage, 0, line), static_cast<int64_t>(line.size())) << i;
    files[i].trim_preallocation(*storage, line.size());
    ASSERT_EQ(files[i].allocated_bytes(), kBlockBytes) << i;
  }
  EXPECT_EQ(storage.used_bytes(0), storage.capacity_bytes(0)) << "one file per block";
  FileData one_more;
  EXPECT_EQ(write_at(one_more, *storage, 0, "x"), -ENOSPC);
  for (uint64_t i = 0; i < blocks; i += 97) {
    const std::string line = "line " + std::to_string(i) + "\n";
    EXPECT_EQ(read_at(files[i], *storage, 0, line.size(), line.size()), line) << i;
  }
  std::vector<const FileData*> all;
  all.reserve(files.size());
  for (const FileData& f : files) all.push_back(&f);
  check_extents(*storage, all);
}

// A file larger than a row starts its runs on a row, at its offset's phase:
// every row of it interleaves over all regions, as row allocation did.
TEST(FileData, LargeFilesGetRowAlignedRunsAmongSmallOnes) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 8192, .rows = 64}});
  const uint64_t row = storage->tier(0).row_bytes();
  std::vector<FileData> small(7);
  for (auto& f : small) ASSERT_EQ(write_at(f, *storage, 0, "abc"), 3);
  FileData large;
  const std::string data = pattern(5 * row + 100, 21);
  ASSERT_EQ(write_at(large, *storage, 0, data), static_cast<int64_t>(data.size()));
  for (const tierfs_extent& e : large.extents())
    EXPECT_EQ(e.tier_address % row, e.file_offset % row) << "extent at " << e.file_offset;
  EXPECT_EQ(read_at(large, *storage, 0, data.size(), data.size()), data);
  std::vector<const FileData*> all{&large};
  for (const FileData& f : small) all.push_back(&f);
  check_extents(*storage, all);
}

// A fallocate that fails with ENOSPC gives back every block it took, on the
// tier it spilled to as well; the file's own blocks stay.
TEST(FileData, FailedAllocateKeepsNothingOnAnyTier) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 8},
                       {.ways = 2, .granularity_bytes = 4096, .rows = 4}});
  FileData file;
  const std::string data = pattern(5000, 22);
  ASSERT_EQ(write_at(file, *storage, 0, data), 5000);
  file.trim_preallocation(*storage, data.size());
  const uint64_t before0 = storage.used_bytes(0), before1 = storage.used_bytes(1);
  const auto extents_before =
      std::vector<tierfs_extent>(file.extents().begin(), file.extents().end());
  EXPECT_EQ(file.allocate(*storage, 0, 1 << 20), -ENOSPC);
  EXPECT_EQ(storage.used_bytes(0), before0);
  EXPECT_EQ(storage.used_bytes(1), before1);
  EXPECT_TRUE(same_extents(file.extents(), extents_before));
  EXPECT_EQ(read_at(file, *storage, 0, data.size(), data.size()), data);
  EXPECT_EQ(file.zero_range(*storage, 8192, 1 << 20), -ENOSPC);
  EXPECT_EQ(storage.used_bytes(0) + storage.used_bytes(1), before0 + before1);
  check_extents(*storage, {&file});
}

// A write that runs out of space part-way reports what it wrote and keeps
// only the blocks that hold those bytes.
TEST(FileData, ShortWriteKeepsOnlyTheBlocksItWrote) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 8},
                       {.ways = 2, .granularity_bytes = 4096, .rows = 4}});
  const uint64_t total = storage.capacity_bytes(0) + storage.capacity_bytes(1);
  FileData hog;
  // Leaves 3 blocks free.
  ASSERT_EQ(write_at(hog, *storage, 0, pattern(total - 3 * kBlockBytes, 23)),
            static_cast<int64_t>(total - 3 * kBlockBytes));
  hog.trim_preallocation(*storage, total - 3 * kBlockBytes);
  FileData file;
  const int64_t n = write_at(file, *storage, 0, pattern(10 * kBlockBytes, 24));
  EXPECT_EQ(n, static_cast<int64_t>(3 * kBlockBytes));
  EXPECT_EQ(file.allocated_bytes(), 3 * kBlockBytes);
  FileData late;
  EXPECT_EQ(write_at(late, *storage, 0, "x"), -ENOSPC);
  EXPECT_EQ(storage.used_bytes(0) + storage.used_bytes(1), total);
  // An unaligned short write keeps the block holding its last byte and no more.
  file.truncate(*storage, 0);
  const int64_t m = write_at(file, *storage, 100, pattern(10 * kBlockBytes, 25));
  EXPECT_EQ(m, static_cast<int64_t>(3 * kBlockBytes - 100));
  EXPECT_EQ(file.allocated_bytes(), 3 * kBlockBytes);
  check_extents(*storage, {&hog, &file, &late});
}

TEST(FileData, SequentialAppendsKeepOneExtent) {
  TestStorage storage({{.ways = 4, .granularity_bytes = 4096, .rows = 256}});
  FileData file;
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    const std::string chunk = pattern(3000, 100 + i);  // not row aligned on purpose
    ASSERT_EQ(write_at(file, *storage, expected.size(), chunk), 3000);
    expected += chunk;
    ASSERT_EQ(file.extents().size(), 1u) << "after append " << i;
  }
  EXPECT_EQ(read_at(file, *storage, 0, expected.size(), expected.size()), expected);
  file.truncate(*storage, expected.size());
  EXPECT_LT(storage.used_bytes(0) - expected.size(), 4096u * 4) << "preallocation is given back";
}

// Whether the page holding `address` is mapped into this process (the
// present bit of /proc/self/pagemap): pwritev on the region's object fills
// page-cache pages without mapping them, a copy through the mapping maps them.
bool page_mapped(const void* address) {
  const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  uint64_t entry = 0;
  const auto page = reinterpret_cast<uintptr_t>(address) / 4096;
  const bool ok = pread(fd, &entry, sizeof entry, static_cast<off_t>(page * sizeof entry)) ==
                  static_cast<ssize_t>(sizeof entry);
  close(fd);
  return !ok || (entry >> 63) != 0;
}

// The region memory behind [off, off + size) of `file`, without touching it.
std::vector<iovec> memory_of(FileData& file, Storage& storage, uint64_t off, uint64_t size) {
  std::vector<iovec> iov;
  EXPECT_EQ(file.read(storage, off, size, off + size, iov), static_cast<int64_t>(size));
  return iov;
}

TEST(FileData, NewBlocksAreWrittenThroughTheRegionObjectAndOldOnesCopied) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 8192, .rows = 1024}});
  FileData file;
  // A new file, written in pieces (one empty) that straddle interleave units.
  const std::string a = pattern(10000, 41), b = pattern(30001, 42);
  iovec parts[] = {{const_cast<char*>(a.data()), a.size()},
                   {nullptr, 0},
                   {const_cast<char*>(b.data()), b.size()}};
  ASSERT_EQ(file.write(*storage, 4096, std::span<const iovec>(parts)), 40001);
  for (const iovec& v : memory_of(file, *storage, 4096, 40001))
    for (uint64_t at = 0; at < v.iov_len; at += 4096)
      EXPECT_FALSE(page_mapped(static_cast<std::byte*>(v.iov_base) + at))
          << "a new block was copied through the mapping";
  // The bytes around it in its first and last blocks read as zeros.
  const std::string expected = std::string(4096, '\0') + a + b;
  EXPECT_EQ(read_at(file, *storage, 0, expected.size(), expected.size()), expected);
  const uint64_t tail_end = (4096 + 40001 + 4095) / 4096 * 4096;
  EXPECT_TRUE(
      all_zero(read_at(file, *storage, expected.size(), tail_end - expected.size(), tail_end)));

  // An overwrite of written blocks is a copy through the mapping.
  const std::string patch = pattern(8192, 43);
  ASSERT_EQ(write_at(file, *storage, 16384, patch), 8192);
  for (const iovec& v : memory_of(file, *storage, 16384, 8192))
    EXPECT_TRUE(page_mapped(v.iov_base));
  std::string now = expected;
  now.replace(16384, patch.size(), patch);
  EXPECT_EQ(read_at(file, *storage, 0, now.size(), now.size()), now);

  // Appends land in blocks preallocation took: never written, so written
  // through the object; a 1 MiB append at a time as a sequential writer does.
  FileData log;
  std::string appended;
  for (int i = 0; i < 6; ++i) {
    const std::string chunk = pattern(1 << 20, 50 + i);
    ASSERT_EQ(write_at(log, *storage, appended.size(), chunk), 1 << 20);
    for (const iovec& v : memory_of(log, *storage, appended.size(), chunk.size()))
      EXPECT_FALSE(page_mapped(v.iov_base)) << "append " << i;
    appended += chunk;
  }
  EXPECT_EQ(read_at(log, *storage, 0, appended.size(), appended.size()), appended);
  check_extents(*storage, {&file, &log});
}

TEST(FileData, TrimPreallocationGivesBackOnlyWhatPreallocationTook) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 256}});
  FileData file;
  uint64_t size = 0;
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(write_at(file, *storage, size, pattern(5000, 300 + i)), 5000);
    size += 5000;
  }
  const uint64_t row = kBlockBytes;  // what a file keeps: its size rounded up to a block
  ASSERT_GT(storage.used_bytes(0), (size + row - 1) / row * row) << "appends preallocated";
  file.trim_preallocation(*storage, size);
  EXPECT_EQ(storage.used_bytes(0), (size + row - 1) / row * row);
  // A KEEP_SIZE reservation past the end is asked for: trimming keeps it.
  ASSERT_EQ(file.allocate(*storage, size, 100000), 0);
  file.trim_preallocation(*storage, size);
  EXPECT_EQ(storage.used_bytes(0), (size + 100000 + row - 1) / row * row);
  std::string expected;
  for (int i = 0; i < 40; ++i) expected += pattern(5000, 300 + i);
  EXPECT_EQ(read_at(file, *storage, 0, size, size), expected);
  EXPECT_TRUE(all_zero(read_at(file, *storage, size, 100000, size + 100000)));
  check_extents(*storage, {&file});
}

TEST(FileData, InterleavedAppendersStayFewExtents) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 2048}});
  FileData a, b;
  for (uint64_t i = 0; i < 256; ++i) {
    ASSERT_EQ(write_at(a, *storage, i * 4096, std::string(4096, 'a')), 4096);
    ASSERT_EQ(write_at(b, *storage, i * 4096, std::string(4096, 'b')), 4096);
  }
  // Preallocation doubles: two files of 256 rows each need about log2(256) extents, not 256.
  EXPECT_LE(a.extents().size(), 12u);
  EXPECT_LE(b.extents().size(), 12u);
  EXPECT_EQ(read_at(a, *storage, 0, 1 << 20, 1 << 20), std::string(1 << 20, 'a'));
  EXPECT_EQ(read_at(b, *storage, 0, 1 << 20, 1 << 20), std::string(1 << 20, 'b'));
  check_extents(*storage, {&a, &b});
}

// Random writes, truncates, punches, zero ranges and fallocates on two files,
// mirrored on byte vectors; the whole contents must match after every step.
void random_against_model(unsigned seed, int steps) {
  TestStorage storage(
      {{.ways = 1, .granularity_bytes = 4096, .rows = 16},
       {.ways = 3, .granularity_bytes = 4096, .rows = 64, .weights = {1, 2, 1}, .garbage = true}});
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t bound) {
    return std::uniform_int_distribution<uint64_t>(0, bound)(rng);
  };
  constexpr uint64_t kMaxFile = 300 * 1024;
  RecordingMaps listener;
  storage->set_maps(&listener);
  FileData files[2];
  std::string models[2];
  files[0].set_ino(2);
  files[1].set_ino(3);
  for (int step = 0; step < steps; ++step) {
    const int f = static_cast<int>(pick(1));
    FileData& file = files[f];
    std::string& model = models[f];
    const uint64_t op = pick(10);
    const uint64_t off = pick(1) ? pick(kMaxFile) : pick(model.size());
    const uint64_t len = 1 + (pick(3) == 0 ? pick(64 * 1024) : pick(9000));
    std::string what;
    if (op < 5) {
      const std::string data = pattern(len, static_cast<unsigned>(rng()));
      const int64_t n = write_at(file, *storage, off, data);
      what =
          "write " + std::to_string(off) + "+" + std::to_string(len) + " -> " + std::to_string(n);
      ASSERT_TRUE(n == static_cast<int64_t>(len) || n == -ENOSPC ||
                  (n > 0 && n < static_cast<int64_t>(len)))
          << what;
      if (n > 0) {
        if (model.size() < off + n) model.resize(off + n, '\0');
        model.replace(off, n, data, 0, n);
      }
    } else if (op < 7) {
      const uint64_t size = pick(model.size() + 20000);
      what = "truncate " + std::to_string(size);
      if (size < model.size()) file.truncate(*storage, size);  // as setattr does
      model.resize(size, '\0');
    } else if (op < 8) {
      what = "punch " + std::to_string(off) + "+" + std::to_string(len);
      if (off < model.size()) {  // as fallocate does: clipped to the size
        const uint64_t n = std::min<uint64_t>(len, model.size() - off);
        ASSERT_EQ(file.punch_hole(*storage, off, n), 0) << what;
        std::fill(model.begin() + off, model.begin() + off + n, '\0');
      }
    } else if (op < 9) {
      what = "zero " + std::to_string(off) + "+" + std::to_string(len);
      const int err = file.zero_range(*storage, off, len);
      ASSERT_TRUE(err == 0 || err == -ENOSPC) << what;
      if (err == 0) {
        const uint64_t end = std::min<uint64_t>(off + len, model.size());
        if (off < end) std::fill(model.begin() + off, model.begin() + end, '\0');
      } else {
        // Allocation may have run out part way: what was zeroed before reads as zeros, the
        // rest is unchanged. Recompute from the file and check only allocation left it sane.
        const std::string now = read_at(file, *storage, 0, model.size(), model.size());
        for (uint64_t i = 0; i < model.size(); ++i)
          if (now[i] != model[i]) {
            ASSERT_TRUE(i >= off && i < off + len && now[i] == 0) << what << " byte " << i;
            model[i] = 0;
          }
      }
    } else if (op < 10) {
      what = "allocate keep-size " + std::to_string(off) + "+" + std::to_string(len);
      const uint64_t used = storage.used_bytes(0) + storage.used_bytes(1);
      const int err = file.allocate(*storage, off, len);
      ASSERT_TRUE(err == 0 || err == -ENOSPC) << what;
      if (err != 0) {
        ASSERT_EQ(storage.used_bytes(0) + storage.used_bytes(1), used)
            << what << ": a failed fallocate keeps no block";
      }
    } else {
      what = "trim preallocation at " + std::to_string(model.size());
      file.trim_preallocation(*storage, model.size());
    }
    if (!file.extents().empty() || listener.seen.count(f == 0 ? 2 : 3)) {
      ASSERT_TRUE(same_extents(file.extents(), listener.seen[f == 0 ? 2 : 3]))
          << "step " << step << " (" << what << "): the listener missed a change of the extents";
    }
    const std::string now = read_at(file, *storage, 0, model.size() + 4096, model.size());
    ASSERT_EQ(now.size(), model.size()) << "step " << step << ": " << what;
    if (now != model) {
      size_t first = 0;
      while (now[first] == model[first]) ++first;
      FAIL() << "seed " << seed << " step " << step << " (" << what << "): file " << f
             << " differs first at byte " << first;
    }
    check_extents(*storage, {&files[0], &files[1]});
    if (::testing::Test::HasFatalFailure()) {
      ADD_FAILURE() << "seed " << seed << " step " << step << ": " << what;
      return;
    }
  }
  files[0].release(*storage);
  files[1].release(*storage);
  EXPECT_TRUE(listener.seen.empty()) << "release tells the listener the inode is gone";
  storage->set_maps(nullptr);
  EXPECT_EQ(storage.used_bytes(0), 0u);
  EXPECT_EQ(storage.used_bytes(1), 0u);
}

TEST(FileDataRandom, ContentsMatchAByteVectorAfterEveryStep) {
  for (unsigned seed = 1; seed <= 8; ++seed) {
    random_against_model(seed, 400);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace tierfs
