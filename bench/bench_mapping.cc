// Cost of one call of tierfs_map_extent (bpf/tierfs_map.h), the mapping every
// read and write of the server, the BPF program and the tools go through:
// per interleave granularity (4KiB .. 1GiB), way count (1 .. 32), equal or
// weighted rows, and sequential or random file offsets. Reported as maps/s
// (items_per_second); the server calls it once per contiguous run.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bpf/tierfs_map.h"

namespace {

constexpr uint64_t kExtentBytes = uint64_t{1} << 40;  // 1TiB: offsets span many rows
constexpr size_t kOffsetCount = 4096;                 // a power of two: the index wraps with a mask
constexpr uint64_t kSequentialStepBytes = 4096;       // one page per call, as small FUSE I/O does

enum Arg { kGranularityShift, kWays, kWeighted, kRandom };

tierfs_layout make_layout(uint32_t granularity_shift, uint32_t ways, bool weighted) {
  tierfs_layout layout{};
  layout.ways = ways;
  layout.granularity_shift = granularity_shift;
  for (uint32_t i = 0; i < ways; ++i) {
    // Weighted: 1, 2, 3, 4, 1, 2, ... units per row, as a mix of fast and slow regions would be.
    layout.weights[i] = weighted ? static_cast<uint8_t>(1 + i % 4) : 1;
    layout.base[i] = uint64_t{1} << 30;  // a nonzero base, as for a region at an offset
  }
  return layout;
}

std::vector<uint64_t> make_offsets(bool random) {
  std::vector<uint64_t> offsets(kOffsetCount);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> any(0, kExtentBytes - 1);
  for (size_t i = 0; i < kOffsetCount; ++i)
    offsets[i] = random ? any(rng) : (i * kSequentialStepBytes) % kExtentBytes;
  return offsets;
}

void BM_MapExtent(benchmark::State& state) {
  const auto shift = static_cast<uint32_t>(state.range(kGranularityShift));
  const auto ways = static_cast<uint32_t>(state.range(kWays));
  const bool weighted = state.range(kWeighted) != 0;
  const bool random = state.range(kRandom) != 0;
  const tierfs_layout layout = make_layout(shift, ways, weighted);
  const tierfs_extent extent{uint64_t{1} << 20, kExtentBytes, 7, 0, 0};
  std::vector<uint64_t> offsets = make_offsets(random);
  for (uint64_t& off : offsets) off += extent.file_offset;

  size_t i = 0;
  uint64_t failures = 0;
  for (auto _ : state) {
    tierfs_mapping m{};
    const int rc = tierfs_map_extent(&layout, &extent, offsets[i], &m);
    benchmark::DoNotOptimize(m);
    failures += rc != TIERFS_MAP_OK;
    i = (i + 1) & (kOffsetCount - 1);
  }
  if (failures != 0) state.SkipWithError("tierfs_map_extent failed on a valid offset");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(std::string(weighted ? "weighted" : "equal") +
                 (random ? " random" : " sequential"));
}

void mapping_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"granularity_shift", "ways", "weighted", "random"});
  for (int shift : {12, 16, 21, 26, 30})
    for (int ways : {1, 2, 4, 8, 16, 32})
      for (int weighted : {0, 1})
        for (int random : {0, 1})
          // One region has nothing to weigh (the config refuses weights there).
          if (!(weighted && ways == 1)) b->Args({shift, ways, weighted, random});
}

BENCHMARK(BM_MapExtent)->Apply(mapping_args);

// The walk the server does for one request: map, copy nothing, advance by the
// run, until the request is covered. Shows how the per-call cost adds up when
// a large I/O crosses many small units.
void BM_WalkRequest(benchmark::State& state) {
  const auto shift = static_cast<uint32_t>(state.range(0));
  const auto ways = static_cast<uint32_t>(state.range(1));
  const uint64_t request_bytes = uint64_t{1} << 20;  // the server's max_io default
  const tierfs_layout layout = make_layout(shift, ways, false);
  const tierfs_extent extent{0, kExtentBytes, 0, 0, 0};
  uint64_t start = 0, runs = 0;
  for (auto _ : state) {
    for (uint64_t at = start; at < start + request_bytes;) {
      tierfs_mapping m{};
      if (tierfs_map_extent(&layout, &extent, at, &m) != TIERFS_MAP_OK) {
        state.SkipWithError("tierfs_map_extent failed on a valid offset");
        return;
      }
      benchmark::DoNotOptimize(m);
      at += m.length < start + request_bytes - at ? m.length : start + request_bytes - at;
      ++runs;
    }
    start = (start + request_bytes) % (kExtentBytes - request_bytes);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));  // requests/s
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * request_bytes));
  state.counters["runs_per_request"] =
      benchmark::Counter(static_cast<double>(runs) / static_cast<double>(state.iterations()));
}

BENCHMARK(BM_WalkRequest)
    ->ArgNames({"granularity_shift", "ways"})
    ->ArgsProduct({{12, 16, 21, 30}, {1, 4, 32}});

}  // namespace

BENCHMARK_MAIN();
