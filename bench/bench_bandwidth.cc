// Memory bandwidth through an interleave set against one region and plain
// memcpy: reading (region memory -> a request buffer, as the kernel copies a
// FUSE reply), writing (request buffer -> region memory, as the server's
// write_buf does) and copying (one file's iovecs written into another file).
// The interleaved variants go through the server's own data layer: a
// tierfs::Storage opened from a tier configuration and tierfs::FileData,
// which walks tierfs_map_extent run by run. Reported as bytes_per_second.
//
// Regions come from a configuration (`--config FILE` or TIERFS_BENCH_CONFIG:
// every region of every tier, in order) or from the machine: every NUMA node
// and devdax device, and on a machine with fewer than two of those,
// TIERFS_BENCH_REGIONS (default 4) anonymous shared-memory regions on the
// first node. Ways go 1, 2, 4, ... up to the region count.
//
// TIERFS_BENCH_BYTES (default 256MiB) is the data one pass moves, split over
// the threads; TIERFS_BENCH_MAX_TOUCH_BYTES (default 2GiB) skips layouts
// whose whole-row zeroing of file or dax regions would touch more memory.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "numa/topology.h"
#include "tierfs/core/config.h"
#include "tierfs/core/file_data.h"
#include "tierfs/core/units.h"

namespace {

using tierfs::FileData;
using tierfs::Storage;

constexpr uint64_t kRequestBytes = uint64_t{1} << 20;  // the server's default max_read/max_write

enum class Op { read, write, copy };
constexpr Op kOps[] = {Op::read, Op::write, Op::copy};
const char* op_name(Op op) {
  return op == Op::read ? "read" : op == Op::write ? "write" : "copy";
}

struct Settings {
  std::vector<tierfs::TierRegion> regions;  // with the configuration's offsets
  bool create_files = false;                // file: regions of the configuration may be created
  std::string source;                       // where the regions came from, for the report
  uint64_t pass_bytes = uint64_t{256} << 20;
  uint64_t max_touch_bytes = uint64_t{2} << 30;
};
Settings g_settings;

// One mapped interleave set: the Storage of a one-tier configuration and, per
// thread, a source and a target file already written (so the timed loop only
// overwrites: allocation and first-touch page faults stay out of it).
struct InterleaveSet {
  std::unique_ptr<Storage> storage;
  std::vector<FileData> sources, targets;
  uint64_t slice_bytes = 0;  // bytes of each file
};

std::mutex g_set_lock;
std::string g_set_key;
std::unique_ptr<InterleaveSet> g_set;
std::string g_set_error;

uint64_t div_up(uint64_t value, uint64_t unit) {
  return value / unit + (value % unit != 0);
}

std::unique_ptr<InterleaveSet> build_set(uint32_t ways, uint64_t granularity_bytes,
                                         unsigned threads) {
  tierfs::Config config;
  config.source = "<bench_bandwidth>";
  tierfs::TierConfig tier;
  tier.name = "bench";
  for (uint32_t i = 0; i < ways; ++i) tier.regions.push_back(g_settings.regions[i]);
  tier.granularity_bytes = granularity_bytes;
  tier.weights.assign(ways, 1);
  tier.create_files = g_settings.create_files;
  auto set = std::make_unique<InterleaveSet>();
  set->slice_bytes = g_settings.pass_bytes / threads / kRequestBytes * kRequestBytes;
  if (set->slice_bytes == 0) set->slice_bytes = kRequestBytes;
  const tierfs_layout layout = tierfs::tier_layout(tier);
  const uint64_t row_bytes = tierfs_row_bytes(&layout);
  const uint64_t file_rows = div_up(set->slice_bytes, row_bytes);
  const uint64_t files = uint64_t{2} * threads;  // a source and a target per thread
  tier.geometry = tierfs::tier_geometry(tier, files * file_rows + 1);
  tier.size_bytes = tier.geometry.capacity_bytes;
  bool all_numa = true;
  for (const auto& region : tier.regions)
    all_numa = all_numa && region.spec.kind == tierfs::numa::RegionKind::numa;
  // Rows of dax and file regions are zeroed whole when handed out; shared memory is not.
  const uint64_t touched = all_numa ? files * set->slice_bytes : files * file_rows * row_bytes;
  if (touched > g_settings.max_touch_bytes)
    throw std::runtime_error(fmt::format(
        "skipped: the files' rows would touch {} of region memory "
        "(TIERFS_BENCH_MAX_TOUCH_BYTES={})",
        tierfs::format_size_approx(touched), tierfs::format_size(g_settings.max_touch_bytes)));
  config.tiers.push_back(tier);
  config.default_tier = tier.name;
  std::vector<bool> file_existed(ways);
  for (uint32_t i = 0; i < ways; ++i) {
    struct stat st {};
    const auto& spec = tier.regions[i].spec;
    file_existed[i] =
        spec.kind != tierfs::numa::RegionKind::file || stat(spec.path.c_str(), &st) == 0;
  }
  set->storage = Storage::open(config);
  // A benchmark is often stopped with Ctrl-C, which runs no destructor: files
  // the configuration let us create are unlinked now (the mappings stay
  // valid). Shared memory needs nothing: without a MountState it is unnamed.
  for (uint32_t i = 0; i < ways; ++i)
    if (tier.regions[i].spec.kind == tierfs::numa::RegionKind::file && !file_existed[i])
      unlink(tier.regions[i].spec.path.c_str());

  std::vector<std::byte> pattern(set->slice_bytes);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<std::byte>(i * 131 + 7);
  const iovec whole{pattern.data(), pattern.size()};
  set->sources.resize(threads);
  set->targets.resize(threads);
  for (unsigned t = 0; t < threads; ++t)
    for (FileData* file : {&set->sources[t], &set->targets[t]})
      if (file->write(*set->storage, 0, {&whole, 1}) != static_cast<int64_t>(whole.iov_len))
        throw std::runtime_error("writing the benchmark files ran out of rows");
  return set;
}

// The set for this benchmark, built by the first thread that asks; the
// previous benchmark's set is released first (its threads have all finished).
InterleaveSet* shared_set(uint32_t ways, uint64_t granularity_bytes, unsigned threads,
                          std::string& error) {
  const std::string key = fmt::format("{}/{}/{}", ways, granularity_bytes, threads);
  std::lock_guard guard(g_set_lock);
  if (g_set_key != key) {
    g_set.reset();
    g_set_error.clear();
    g_set_key = key;
    try {
      g_set = build_set(ways, granularity_bytes, threads);
    } catch (const std::exception& e) {
      g_set_error = e.what();
    }
  }
  error = g_set_error;
  return g_set.get();
}

// Moves `bytes` between flat memory and a request buffer, one request at a
// time: the baselines without any mapping.
void flat_pass(Op op, std::byte* source, std::byte* target, std::byte* request, uint64_t bytes) {
  for (uint64_t off = 0; off < bytes; off += kRequestBytes) {
    if (op == Op::read)
      std::memcpy(request, source + off, kRequestBytes);
    else if (op == Op::write)
      std::memcpy(target + off, request, kRequestBytes);
    else
      std::memcpy(target + off, source + off, kRequestBytes);
  }
}

void BM_Memcpy(benchmark::State& state, Op op) {
  const unsigned threads = static_cast<unsigned>(state.threads());
  const uint64_t bytes =
      std::max(g_settings.pass_bytes / threads / kRequestBytes, uint64_t{1}) * kRequestBytes;
  std::vector<std::byte> source(bytes, std::byte{1}), target(bytes, std::byte{2}),
      request(kRequestBytes, std::byte{3});
  for (auto _ : state) flat_pass(op, source.data(), target.data(), request.data(), bytes);
  benchmark::DoNotOptimize(request.data());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

// Raw memory of the first region (a one-way set), no mapping: what one
// memory controller gives without interleaving.
void BM_OneRegion(benchmark::State& state, Op op) {
  const unsigned threads = static_cast<unsigned>(state.threads());
  std::string error;
  InterleaveSet* set = shared_set(1, uint64_t{2} << 20, threads, error);
  if (set == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  // The region holds 2 * threads slices and one row more: thread t uses slices 2t and 2t+1.
  const uint64_t slice = set->slice_bytes;
  std::byte* base = set->storage->tier(0).region_data(0);
  std::byte* source = base + 2 * slice * static_cast<uint64_t>(state.thread_index());
  std::byte* target = source + slice;
  std::vector<std::byte> request(kRequestBytes, std::byte{3});
  for (auto _ : state) flat_pass(op, source, target, request.data(), slice);
  benchmark::DoNotOptimize(request.data());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * slice));
}

// Through the data layer, one FUSE-sized request at a time, as the server serves them.
void BM_Interleave(benchmark::State& state, Op op, uint32_t ways, uint64_t granularity_bytes) {
  const unsigned threads = static_cast<unsigned>(state.threads());
  std::string error;
  InterleaveSet* set = shared_set(ways, granularity_bytes, threads, error);
  if (set == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  Storage& storage = *set->storage;
  FileData& source = set->sources[static_cast<size_t>(state.thread_index())];
  FileData& target = set->targets[static_cast<size_t>(state.thread_index())];
  const uint64_t slice = set->slice_bytes;
  std::vector<std::byte> request(kRequestBytes, std::byte{3});
  const iovec request_iov{request.data(), request.size()};
  std::vector<iovec> iovs;
  iovs.reserve(kRequestBytes / 4096 + 2);
  int64_t failed = 0;
  for (auto _ : state) {
    for (uint64_t off = 0; off < slice; off += kRequestBytes) {
      if (op == Op::write) {
        failed |= target.write(storage, off, {&request_iov, 1}) < 0;
        continue;
      }
      iovs.clear();
      failed |= source.read(storage, off, kRequestBytes, slice, iovs) < 0;
      if (op == Op::copy) {
        failed |= target.write(storage, off, iovs) < 0;
        continue;
      }
      std::byte* out = request.data();
      for (const iovec& v : iovs) {
        std::memcpy(out, v.iov_base, v.iov_len);
        out += v.iov_len;
      }
    }
  }
  benchmark::DoNotOptimize(request.data());
  if (failed != 0) state.SkipWithError("the data layer returned an error");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * slice));
}

std::vector<uint32_t> way_counts(size_t regions) {
  std::vector<uint32_t> ways;
  for (uint32_t w = 1; w <= regions && w <= TIERFS_MAX_WAYS; w *= 2) ways.push_back(w);
  if (ways.back() != regions && regions <= TIERFS_MAX_WAYS)
    ways.push_back(static_cast<uint32_t>(regions));
  return ways;
}

void register_benchmarks() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto threads = [cores](benchmark::internal::Benchmark* b) {
    b->Threads(1);
    if (cores > 1) b->Threads(cores);
    b->UseRealTime();
  };
  for (Op op : kOps) {
    threads(
        benchmark::RegisterBenchmark(fmt::format("memcpy/{}", op_name(op)).c_str(), BM_Memcpy, op));
    threads(benchmark::RegisterBenchmark(fmt::format("one_region/{}", op_name(op)).c_str(),
                                         BM_OneRegion, op));
    for (int shift : {12, 16, 21, 26, 30})
      for (uint32_t ways : way_counts(g_settings.regions.size())) {
        const uint64_t granularity = uint64_t{1} << shift;
        const std::string name = fmt::format("interleave/{}/granularity:{}/ways:{}", op_name(op),
                                             tierfs::format_size(granularity), ways);
        threads(benchmark::RegisterBenchmark(name.c_str(), BM_Interleave, op, ways, granularity));
      }
  }
}

uint64_t size_from_env(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  const auto bytes = tierfs::parse_size(text);
  if (!bytes || *bytes == 0)
    throw std::invalid_argument(fmt::format("{}=\"{}\" is not a size (e.g. 64MiB)", name, text));
  return *bytes;
}

void choose_regions(const std::string& config_path) {
  const tierfs::numa::Topology topology = tierfs::numa::discover_topology();
  if (!config_path.empty()) {
    const tierfs::Config config = tierfs::load_config(config_path, topology);
    for (const auto& tier : config.tiers) {
      for (const auto& region : tier.regions) g_settings.regions.push_back(region);
      g_settings.create_files = g_settings.create_files || tier.create_files;
    }
    g_settings.source = config_path;
    return;
  }
  for (const auto& node : topology.nodes)
    g_settings.regions.push_back(
        {tierfs::numa::parse_region_spec(fmt::format("numa:{}", node.id)), 0, {}});
  for (const auto& dax : topology.dax_devices)
    if (dax.mode == "devdax")
      g_settings.regions.push_back({tierfs::numa::parse_region_spec("dax:" + dax.path), 0, {}});
  g_settings.source = "the machine's NUMA nodes and DAX devices";
  if (g_settings.regions.size() >= 2) return;
  // One memory controller: several shared-memory objects on it still exercise the mapping.
  const uint64_t count = size_from_env("TIERFS_BENCH_REGIONS", 4);
  if (count > TIERFS_MAX_WAYS)
    throw std::invalid_argument(
        fmt::format("TIERFS_BENCH_REGIONS={} is more than {} ways", count, TIERFS_MAX_WAYS));
  const int node = topology.nodes.empty() ? 0 : topology.nodes.front().id;
  g_settings.regions.assign(count,
                            {tierfs::numa::parse_region_spec(fmt::format("numa:{}", node)), 0, {}});
  g_settings.source =
      fmt::format("{} shared-memory regions on node {} (one memory controller)", count, node);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  try {
    std::string config_path;
    if (const char* env = std::getenv("TIERFS_BENCH_CONFIG")) config_path = env;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--config" && i + 1 < argc)
        config_path = argv[++i];
      else if (arg.starts_with("--config="))
        config_path = arg.substr(9);
      else
        throw std::invalid_argument(fmt::format(
            "unknown argument \"{}\" (expected --config FILE or --benchmark_* flags)", arg));
    }
    g_settings.pass_bytes = size_from_env("TIERFS_BENCH_BYTES", g_settings.pass_bytes);
    g_settings.max_touch_bytes =
        size_from_env("TIERFS_BENCH_MAX_TOUCH_BYTES", g_settings.max_touch_bytes);
    choose_regions(config_path);
    if (g_settings.regions.empty()) throw std::invalid_argument("no regions to benchmark");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_bandwidth: %s\n", e.what());
    return 1;
  }
  std::string specs;
  for (const auto& region : g_settings.regions)
    specs += (specs.empty() ? "" : " ") + region.spec.text;
  benchmark::AddCustomContext("regions", specs);
  benchmark::AddCustomContext("regions_from", g_settings.source);
  benchmark::AddCustomContext("bytes_per_pass", tierfs::format_size(g_settings.pass_bytes));
  benchmark::AddCustomContext("request_bytes", tierfs::format_size(kRequestBytes));
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
