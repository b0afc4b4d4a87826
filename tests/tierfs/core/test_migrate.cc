// migrate_file (tierfs/core/migrate.h) on a Storage of memfd regions:
// contents and holes survive a move between tiers of different granularity
// and weights, the old blocks go back, the maps hear of the switch, a full
// target leaves the file whole, and a model-based run where writers, punchers
// and readers work on files while they move back and forth.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "tests/tierfs/core/data_fixture.h"
#include "tierfs/core/file_data.h"
#include "tierfs/core/migrate.h"

namespace tierfs {
namespace {

using namespace data_testing;  // NOLINT(google-build-using-namespace)

const std::function<bool()> kAlive = [] { return true; };

std::vector<TierShape> three_layouts() {
  return {{.ways = 2, .granularity_bytes = 4096, .rows = 512},
          {.ways = 3, .granularity_bytes = 16384, .rows = 128, .weights = {1, 2, 1}},
          {.ways = 1, .granularity_bytes = 65536, .rows = 64, .garbage = true}};
}

bool all_on(const FileData& file, uint32_t tier) {
  for (const tierfs_extent& e : file.extents())
    if (e.tier != tier) return false;
  return true;
}

TEST(Migrate, MovesBytesAndHolesBetweenLayoutsAndGivesTheOldBlocksBack) {
  TestStorage storage(three_layouts());
  RecordingMaps maps;
  storage->set_maps(&maps);
  FileData file;
  file.set_ino(7);
  const std::string head = pattern(300000, 1), tail = pattern(70000, 2);
  ASSERT_EQ(write_at(file, *storage, 0, head), static_cast<int64_t>(head.size()));
  ASSERT_EQ(write_at(file, *storage, 1 << 20, tail), static_cast<int64_t>(tail.size()));
  const uint64_t size = (1 << 20) + tail.size();
  std::shared_mutex lock;
  for (uint32_t target : {1u, 2u, 0u, 2u}) {
    const uint64_t held = file.allocated_bytes();
    MigrateResult result;
    ASSERT_EQ(migrate_file(*storage, file, lock, target, kAlive, {}, &result), 0);
    EXPECT_TRUE(all_on(file, target)) << "to tier " << target;
    EXPECT_EQ(result.bytes_moved, file.allocated_bytes());
    EXPECT_EQ(file.allocated_bytes(), held) << "holes stay holes";
    for (uint32_t t = 0; t < 3; ++t)
      EXPECT_EQ(storage.used_bytes(t), t == target ? file.allocated_bytes() : 0u)
          << "tier " << t << " after the move to " << target;
    const std::string all = read_at(file, *storage, 0, size, size);
    EXPECT_TRUE(all.substr(0, head.size()) == head);
    EXPECT_TRUE(all_zero(all.substr(head.size(), (1 << 20) - head.size())));
    EXPECT_TRUE(all.substr(1 << 20) == tail);
    EXPECT_TRUE(same_extents(file.extents(), maps.seen[7])) << "the maps follow the switch";
    check_extents(*storage, {&file});
  }
}

TEST(Migrate, NothingToMoveForAnEmptyFileOrOneAlreadyThere) {
  TestStorage storage(three_layouts());
  FileData empty, there;
  std::shared_mutex lock;
  MigrateResult result;
  EXPECT_EQ(migrate_file(*storage, empty, lock, 1, kAlive, {}, &result), 0);
  EXPECT_EQ(result.bytes_moved, 0u);
  ASSERT_EQ(write_at(there, *storage, 0, pattern(8192, 3)), 8192);
  EXPECT_EQ(migrate_file(*storage, there, lock, 0, kAlive, {}, &result), 0);
  EXPECT_EQ(result.bytes_copied, 0u);
  EXPECT_EQ(migrate_file(*storage, there, lock, 9, kAlive, {}, &result), -EINVAL);
}

TEST(Migrate, FullTargetLeavesTheFileWholeWhereItWas) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 512},
                       {.ways = 1, .granularity_bytes = 4096, .rows = 64}});
  FileData big, small;
  const std::string data = pattern(1 << 20, 4);
  ASSERT_EQ(write_at(big, *storage, 0, data), static_cast<int64_t>(data.size()));
  ASSERT_EQ(write_at(small, *storage, 0, pattern(100000, 5)), 100000);
  const std::vector<tierfs_extent> before(big.extents().begin(), big.extents().end());
  std::shared_mutex lock;
  EXPECT_EQ(migrate_file(*storage, big, lock, 1, kAlive, {}, nullptr), -ENOSPC);
  EXPECT_TRUE(same_extents(big.extents(), before));
  EXPECT_EQ(storage.used_bytes(1), 0u) << "what the target gave is back";
  EXPECT_TRUE(read_at(big, *storage, 0, data.size(), data.size()) == data);
  EXPECT_EQ(migrate_file(*storage, small, lock, 1, kAlive, {}, nullptr), 0) << "one that fits";
  EXPECT_FALSE(big.watching_changes());
}

TEST(Migrate, TheCallerLogsTheSwitchBeforeTheOldBlocksGoBack) {
  TestStorage storage(three_layouts());
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 0, pattern(200000, 7)), 200000);
  const uint64_t held = file.allocated_bytes();
  std::shared_mutex lock;
  MigrateOptions options;
  uint64_t in_transit = 0;
  options.on_copy_blocks = [&](std::span<const tierfs_extent> copy) {
    in_transit = 0;
    for (const tierfs_extent& e : copy) in_transit += e.tier == 1 ? e.length : 0;
  };
  std::shared_mutex transit;
  options.transit_lock = &transit;
  int switches = 0;
  options.on_switch = [&] {
    ++switches;
    EXPECT_FALSE(transit.try_lock()) << "a check waits for the switch to end";
    // The file has its new extents, the old ones are still taken: a crash
    // here replays the new list and finds the old blocks nobody's (free).
    EXPECT_TRUE(all_on(file, 1));
    EXPECT_EQ(storage.used_bytes(0), held);
    EXPECT_EQ(in_transit, held) << "the whole copy was reported while it was in transit";
  };
  ASSERT_EQ(migrate_file(*storage, file, lock, 1, kAlive, options, nullptr), 0);
  EXPECT_EQ(switches, 1);
  EXPECT_EQ(storage.used_bytes(0), 0u);
  EXPECT_TRUE(read_at(file, *storage, 0, 200000, 200000) == pattern(200000, 7));
}

TEST(Migrate, StopsWhenAskedOrWhenTheFileLostItsData) {
  TestStorage storage(three_layouts());
  FileData file;
  ASSERT_EQ(write_at(file, *storage, 0, pattern(1 << 20, 6)), 1 << 20);
  std::shared_mutex lock;
  std::atomic<bool> stop{true};
  MigrateOptions options;
  options.stop = &stop;
  EXPECT_EQ(migrate_file(*storage, file, lock, 1, kAlive, options, nullptr), -ECANCELED);
  EXPECT_EQ(migrate_file(
                *storage, file, lock, 1, [] { return false; }, {}, nullptr),
            -ENOENT);
  EXPECT_TRUE(all_on(file, 0));
  EXPECT_EQ(storage.used_bytes(1), 0u);
}

// The model: every 4 KiB block of a file holds (file, block, version) in its
// first bytes and a fill derived from them; a reader that sees a block
// checks it is one some writer wrote there (or zeros, before any).
constexpr uint64_t kModelBlocks = 96;

std::string block_bytes(uint32_t file, uint64_t block, uint32_t version) {
  std::string out(kBlockBytes, static_cast<char>('a' + (file * 7 + block + version) % 26));
  std::memcpy(out.data(), &file, sizeof file);
  std::memcpy(out.data() + 4, &block, sizeof block);
  std::memcpy(out.data() + 12, &version, sizeof version);
  return out;
}

bool block_is_valid(const std::string& got, uint32_t file, uint64_t block) {
  if (all_zero(got)) return true;
  uint32_t version = 0;
  std::memcpy(&version, got.data() + 12, sizeof version);
  return got == block_bytes(file, block, version);
}

struct ModelFile {
  FileData data;
  std::shared_mutex lock;
  std::vector<uint32_t> version = std::vector<uint32_t>(kModelBlocks, 0);  // 0: hole
};

TEST(Migrate, WritersPunchersAndReadersKeepGoingWhileFilesMoveBackAndForth) {
  TestStorage storage({{.ways = 2, .granularity_bytes = 4096, .rows = 2048},
                       {.ways = 3, .granularity_bytes = 8192, .rows = 1024, .weights = {3, 1, 2}},
                       {.ways = 1, .granularity_bytes = 65536, .rows = 256, .garbage = true}});
  constexpr uint32_t kFiles = 3;
  std::vector<ModelFile> files(kFiles);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> bad_reads{0}, migrations{0};
  std::vector<std::thread> threads;
  for (uint32_t w = 0; w < 2; ++w)
    threads.emplace_back([&, w] {
      std::mt19937 rng(100 + w);
      while (!done.load()) {
        ModelFile& f = files[rng() % kFiles];
        const uint32_t index = static_cast<uint32_t>(&f - files.data());
        const uint64_t block = rng() % kModelBlocks;
        std::unique_lock guard(f.lock);
        if (rng() % 8 == 0) {
          ASSERT_EQ(f.data.punch_hole(*storage, block * kBlockBytes, kBlockBytes), 0);
          f.version[block] = 0;
        } else {
          const uint32_t version = f.version[block] + 1;
          ASSERT_EQ(
              write_at(f.data, *storage, block * kBlockBytes, block_bytes(index, block, version)),
              static_cast<int64_t>(kBlockBytes));
          f.version[block] = version;
        }
      }
    });
  threads.emplace_back([&] {
    std::mt19937 rng(7);
    while (!done.load()) {
      ModelFile& f = files[rng() % kFiles];
      const uint32_t index = static_cast<uint32_t>(&f - files.data());
      const uint64_t block = rng() % kModelBlocks;
      std::shared_lock guard(f.lock);
      const uint64_t size = kModelBlocks * kBlockBytes;
      if (!block_is_valid(read_at(f.data, *storage, block * kBlockBytes, kBlockBytes, size), index,
                          block))
        bad_reads.fetch_add(1);
    }
  });
  std::thread mover([&] {
    std::mt19937 rng(9);
    MigrateOptions options;
    options.chunk_bytes = 16384;  // many lock holds per move: writes land between them
    options.final_pass_bytes = 8192;
    for (int round = 0; round < 80; ++round) {
      ModelFile& f = files[rng() % kFiles];
      const int err = migrate_file(*storage, f.data, f.lock, rng() % 3, kAlive, options, nullptr);
      ASSERT_EQ(err, 0) << "round " << round;
      migrations.fetch_add(1);
    }
  });
  mover.join();
  done.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad_reads.load(), 0u) << "a reader saw bytes never written at that offset";
  EXPECT_EQ(migrations.load(), 80u);
  std::vector<const FileData*> all;
  for (uint32_t i = 0; i < kFiles; ++i) {
    ModelFile& f = files[i];
    all.push_back(&f.data);
    for (uint64_t b = 0; b < kModelBlocks; ++b) {
      const std::string got =
          read_at(f.data, *storage, b * kBlockBytes, kBlockBytes, kModelBlocks * kBlockBytes);
      const std::string want =
          f.version[b] == 0 ? std::string(kBlockBytes, '\0') : block_bytes(i, b, f.version[b]);
      ASSERT_TRUE(got == want) << "file " << i << " block " << b << " version " << f.version[b];
    }
  }
  check_extents(*storage, all);
}

}  // namespace
}  // namespace tierfs
