// Zeroing and copies of region memory that take a SIGBUS (tierfs/core/copy_guard.h):
// the backing of a memfd region is cut short under the data layer, as a
// region file truncated under the server or a memory error on a device
// would. Each operation that zeroes (fresh rows, a truncated block's tail,
// a punched hole's edges, zero range, freeing on a device tier) or copies
// between regions (a migration) fails with EIO or retires the blocks, marks
// them bad, and the process lives.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "numa/region.h"
#include "tests/tierfs/core/data_fixture.h"
#include "tierfs/core/config.h"
#include "tierfs/core/copy_guard.h"
#include "tierfs/core/file_data.h"

namespace tierfs {
namespace {

using namespace data_testing;  // NOLINT(google-build-using-namespace)

// Cuts the backing of every region of `tier` (every page of them faults),
// or gives it back (the pages read as zeros again).
void cut_backing(Storage& storage, size_t tier, bool cut) {
  Tier& t = storage.tier(tier);
  for (uint32_t i = 0; i < t.ways(); ++i)
    ASSERT_EQ(ftruncate(t.region(i).fd(), cut ? 0 : static_cast<off_t>(t.region(i).size_bytes())),
              0);
}

class ZeroGuard : public ::testing::Test {
 protected:
  void SetUp() override { install_copy_fault_handler(); }
};

TEST_F(ZeroGuard, FreshRowsThatFaultFailTheWriteWithEio) {
  // Garbage regions: rows are zeroed when first handed out.
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 64, .garbage = true}});
  FileData kept, fresh;
  const std::string data = pattern(20000, 1);
  ASSERT_EQ(write_at(kept, *storage, 0, data), 20000);
  cut_backing(*storage, 0, true);
  EXPECT_EQ(write_at(fresh, *storage, 0, pattern(8192, 2)), -EIO);
  EXPECT_EQ(fresh.allocated_bytes(), 0u) << "a failed write keeps no blocks";
  const uint64_t bad = storage->tier(0).bad_blocks();
  EXPECT_GT(bad, 0u);
  EXPECT_EQ(storage->tier(0).stats().bad_bytes, bad * kBlockBytes);
  // Bad blocks are never handed out again: with the backing back, a write
  // succeeds on other blocks and reads back.
  cut_backing(*storage, 0, false);
  const std::string later = pattern(30000, 3);
  ASSERT_EQ(write_at(fresh, *storage, 0, later), 30000);
  EXPECT_EQ(read_at(fresh, *storage, 0, 30000, 30000), later);
  EXPECT_EQ(storage->tier(0).bad_blocks(), bad);
  EXPECT_EQ(read_at(kept, *storage, 0, 20000, 20000).size(), 20000u);
  // Held: the files' blocks and the bad ones, which nobody owns.
  EXPECT_EQ(storage.used_bytes(0),
            kept.allocated_bytes() + fresh.allocated_bytes() + bad * kBlockBytes);
}

TEST_F(ZeroGuard, TruncatePunchAndZeroRangeThatFaultChangeNothing) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 64}});
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 0, pattern(65536, 4)), 65536);
  const std::vector<tierfs_extent> before(file.extents().begin(), file.extents().end());
  const uint64_t used = storage.used_bytes(0);
  cut_backing(*storage, 0, true);
  EXPECT_EQ(file.truncate(*storage, 5000), -EIO);
  EXPECT_EQ(file.punch_hole(*storage, 100, 20000), -EIO);
  EXPECT_EQ(file.zero_range(*storage, 8192, 4096), -EIO);
  const std::vector<tierfs_extent> after(file.extents().begin(), file.extents().end());
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].file_offset, before[i].file_offset);
    EXPECT_EQ(after[i].length, before[i].length);
    EXPECT_EQ(after[i].tier_address, before[i].tier_address);
  }
  EXPECT_EQ(storage.used_bytes(0), used);
  EXPECT_GE(storage->tier(0).bad_blocks(), 3u) << "the blocks at 5000, 100 and 8192";
  // Block-aligned, nothing to zero: the truncate goes through.
  EXPECT_EQ(file.truncate(*storage, 16384), 0);
  EXPECT_EQ(file.allocated_bytes(), 16384u);
}

TEST_F(ZeroGuard, AMigrationCopyThatFaultsFailsWithEio) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 64},
                       {.ways = 1, .granularity_bytes = 4096, .rows = 64}});
  FileData file, copy;
  ASSERT_EQ(write_at(file, *storage, 0, pattern(16384, 5)), 16384);
  copy.set_preferred_tier(1);
  copy.set_spill(false);
  cut_backing(*storage, 0, true);
  EXPECT_EQ(file.copy_to(*storage, copy, 0, 16384, true), -EIO);
  EXPECT_GT(storage->tier(0).bad_blocks(), 0u) << "the source block that faulted";
  EXPECT_EQ(storage->tier(1).bad_blocks(), 0u);
  copy.release(*storage);
}

// A one-way tier over a memfd region of kind `spec` (dax: zeroed with
// memset, never punched), `rows` blocks.
std::unique_ptr<Storage> device_storage(const std::string& spec, uint64_t rows) {
  Config config;
  TierConfig tier;
  tier.name = "dev";
  tier.granularity_bytes = 4096;
  tier.regions.push_back({numa::parse_region_spec(spec), 0, {}});
  tier.geometry = tier_geometry(tier, rows);
  tier.size_bytes = tier.geometry.capacity_bytes;
  config.tiers.push_back(tier);
  std::vector<std::vector<std::unique_ptr<numa::Region>>> regions(1);
  regions[0].push_back(std::make_unique<MemfdRegion>(spec, tier.geometry.regions[0].bytes));
  return Storage::create(config, std::move(regions));
}

// Freeing blocks whose backing is gone retires them instead of ending the process.
TEST_F(ZeroGuard, FreeingOnADeviceTierRetiresBlocksThatFault) {
  auto storage = device_storage("dax:/dev/dax0.0", 64);
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 0, pattern(12288, 6)), 12288);
  const uint64_t free_before = storage->tier(0).blocks().free_blocks();
  cut_backing(*storage, 0, true);
  file.release(*storage);
  EXPECT_EQ(storage->tier(0).bad_blocks(), 3u);
  EXPECT_EQ(storage->tier(0).blocks().free_blocks(), free_before) << "bad blocks stay out";
}

// Only the last block's backing is gone: the blocks before it are zeroed
// even when memset stores the tail first and faults there before them.
TEST_F(ZeroGuard, ManyBadBlocksAreLoggedOneByOneOnlyAtFirst) {
  TestStorage storage({{.ways = 1, .granularity_bytes = 4096, .rows = 256, .garbage = true}});
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  cut_backing(*storage, 0, true);
  Tier& tier = storage->tier(0);
  // 100 pages that all fault: 100 bad blocks.
  EXPECT_FALSE(tier.zero_memory(0, tier.region_data(0), 100 * kBlockBytes));
  spdlog::set_default_logger(previous);
  EXPECT_EQ(tier.bad_blocks(), 100u);
  const std::vector<std::string> lines = sink->last_formatted();
  // 16 one by one, the 16th saying what comes next; then at 32 and 64.
  ASSERT_EQ(lines.size(), 18u);
  EXPECT_NE(lines[15].find("further bad blocks are counted"), std::string::npos) << lines[15];
  EXPECT_NE(lines[16].find("32 bad blocks"), std::string::npos) << lines[16];
  EXPECT_NE(lines[17].find("64 bad blocks"), std::string::npos) << lines[17];
}

TEST_F(ZeroGuard, FreeingZeroesEveryBlockThatDoesNotFault) {
  auto storage = device_storage("dax:/dev/dax0.0", 4);
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 0, pattern(4 * kBlockBytes, 7)), 4 * 4096);
  const numa::Region& region = storage->tier(0).region(0);
  ASSERT_EQ(ftruncate(region.fd(), 3 * kBlockBytes), 0);
  file.release(*storage);
  EXPECT_EQ(storage->tier(0).bad_blocks(), 1u);
  EXPECT_EQ(storage->tier(0).blocks().free_blocks(), 3u);
  const std::byte* data = storage->tier(0).region_data(0);
  for (uint64_t i = 0; i < 3 * kBlockBytes; ++i)
    ASSERT_EQ(data[i], std::byte{0}) << "byte " << i << " of a freed block";
}

}  // namespace
}  // namespace tierfs
