// bench_bpf: what one mapping costs inside the kernel (the twin, a batch of N
// offsets per BPF_PROG_TEST_RUN so the syscall is amortized), in C++ (the same
// header code), what one map update costs the server, and what one FUSE
// upcall costs on a real tierfs mount (a 4 KiB pread on a cache = "none"
// mount: one READ request each). Then, per interleave granularity, how many
// upcalls 1 GiB of I/O needs: the server path (one READ per max_io request),
// the iomap path without the program (one FUSE_IOMAP_BEGIN per mapping,
// counted by walking tierfs_iomap_fill) and with it (none while the maps
// hold the inode). All in one run, so the ratios compare like with like.
//
//   bench_bpf [--smoke] [--json FILE]      (root: BPF and a FUSE mount)
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bpf/iomap_loader.h"
#include "kernel/probe.h"
#include "tests/support/tierfs_mount.h"

namespace {

using Clock = std::chrono::steady_clock;
using tierfs::bpf::IomapLoader;

constexpr uint64_t KiB = 1024, MiB = KiB * KiB, GiB = MiB * KiB;
constexpr uint64_t kNodeid = 7;
constexpr uint32_t kWays = 8;

double ns_since(Clock::time_point start) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
}

tierfs_layout layout_of(uint32_t ways, uint32_t shift) {
  tierfs_layout l{};
  l.ways = ways;
  l.granularity_shift = shift;
  for (uint32_t i = 0; i < ways; ++i) l.weights[i] = 1;
  return l;
}

tierfs_tier_value tier_value(const tierfs_layout& layout) {
  tierfs_tier_value t{};
  t.layout = layout;
  for (uint32_t i = 0; i < layout.ways; ++i) t.device_cookie[i] = 1 + i;  // as if registered
  return t;
}

tierfs_inode_value inode_value(uint64_t length) {
  tierfs_inode_value v{};
  v.count = 1;
  v.extents[0] = tierfs_extent{0, length, 0, 0, 0};
  return v;
}

std::vector<tierfs_twin_request> random_requests(size_t n, uint64_t file_bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<tierfs_twin_request> out(n);
  for (auto& r : out) r = {kNodeid, rng() % file_bytes, 1 * MiB, 0, 0};
  return out;
}

struct TwinCost {
  size_t batch;
  double ns_per_offset;
  double ns_per_run;
};

// The twin over an 8-way 4 KiB tier and one 1 GiB extent: every answer maps.
std::vector<TwinCost> measure_twin(IomapLoader& loader, const std::vector<size_t>& batches,
                                   size_t offsets_per_batch_size) {
  const tierfs_layout layout = layout_of(kWays, 12);
  const std::vector<uint32_t> cookies(kWays, 1);
  loader.set_tier(0, layout, cookies);
  const tierfs_extent extent{0, GiB, 0, 0, 0};
  loader.set_extents(kNodeid, {&extent, 1});
  std::vector<TwinCost> out;
  for (size_t batch : batches) {
    const auto requests = random_requests(batch, GiB, batch);
    std::vector<tierfs_twin_answer> answers(batch);
    loader.map_in_kernel(requests, answers);  // warm up
    const size_t runs = std::max<size_t>(1, offsets_per_batch_size / batch);
    const auto start = Clock::now();
    for (size_t i = 0; i < runs; ++i)
      if (loader.map_in_kernel(requests, answers) != 0) throw std::runtime_error("twin run failed");
    const double ns = ns_since(start);
    if (answers[0].verdict != TIERFS_IOMAP_HANDLED)
      throw std::runtime_error("the twin fell back where it should map");
    out.push_back({batch, ns / static_cast<double>(runs * batch), ns / static_cast<double>(runs)});
  }
  return out;
}

struct CppCost {
  double map_extent_ns;
  double iomap_fill_ns;
};

CppCost measure_cpp(size_t offsets) {
  const tierfs_tier_value tier = tier_value(layout_of(kWays, 12));
  const tierfs_inode_value inode = inode_value(GiB);
  const auto requests = random_requests(4096, GiB, 1);
  uint64_t sink = 0;
  auto start = Clock::now();
  for (size_t i = 0; i < offsets; ++i) {
    tierfs_mapping m{};
    tierfs_map_extent(&tier.layout, &inode.extents[0], requests[i % requests.size()].pos, &m);
    sink += m.region_offset;
  }
  const double map_ns = ns_since(start) / static_cast<double>(offsets);
  start = Clock::now();
  for (size_t i = 0; i < offsets; ++i) {
    const auto& r = requests[i % requests.size()];
    tierfs_iomap_pair pair{};
    const tierfs_extent_hit hit = tierfs_find_extent(&inode, r.pos);
    sink += static_cast<uint64_t>(
        tierfs_iomap_fill(&inode, hit, &tier, r.pos, r.count, r.opflags, &pair));
    sink += pair.read.addr;
  }
  const double fill_ns = ns_since(start) / static_cast<double>(offsets);
  if (sink == 42) fmt::print("");  // keeps the loops from being optimized away
  return {map_ns, fill_ns};
}

// What the server pays per extent change (IomapLoader::set_extents): one map update.
double measure_map_update(IomapLoader& loader, size_t updates) {
  std::vector<tierfs_extent> extents(4);
  for (size_t i = 0; i < extents.size(); ++i) extents[i] = {i * MiB, MiB, i * 16, 0, 0};
  const auto start = Clock::now();
  for (size_t i = 0; i < updates; ++i) {
    extents[0].length = MiB - (i % 64) * 4096;
    if (loader.set_extents(1000 + i % 64, extents) != 0) throw std::runtime_error("map update");
  }
  const double ns = ns_since(start) / static_cast<double>(updates);
  for (uint64_t i = 0; i < 64; ++i) loader.remove_inode(1000 + i);
  return ns;
}

// A tierfs mount of its own (cache = "none": every read is a READ upcall).
class BenchMount {
 public:
  BenchMount() {
    if (!mount_.start("[mount]\ncache = \"none\"\n\n[[tier]]\nname = \"fast\"\n"
                      "regions = [\"numa:0\"]\nsize = \"64MiB\"\ngranularity = \"4KiB\"\n"))
      throw std::runtime_error("the tierfs mount did not come up: " + mount_.log());
  }
  std::string path(const std::string& name) const { return mount_.path(name); }

 private:
  tierfs::testing::TierfsMount mount_{"tierfs-bench-bpf"};
};

// One FUSE READ round trip: a 4 KiB pread on the cache = "none" mount.
double measure_upcall(size_t reads) {
  BenchMount mount;
  const std::string file = mount.path("data");
  const int fd = open(file.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + file);
  std::vector<char> buf(MiB, 'x');
  if (pwrite(fd, buf.data(), buf.size(), 0) != static_cast<ssize_t>(buf.size()))
    throw std::runtime_error("cannot write " + file);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100; ++i) (void)pread(fd, buf.data(), 4096, 0);  // warm up
  const auto start = Clock::now();
  for (size_t i = 0; i < reads; ++i)
    if (pread(fd, buf.data(), 4096, static_cast<off_t>((rng() % 256) * 4096)) != 4096)
      throw std::runtime_error("short read on " + file);
  const double ns = ns_since(start) / static_cast<double>(reads);
  close(fd);
  return ns;
}

struct UpcallCount {
  uint64_t granularity_bytes;
  uint64_t server_path_reads;      // FUSE READ requests of max_io
  uint64_t iomap_without_program;  // FUSE_IOMAP_BEGIN upcalls, one per mapping
  uint64_t iomap_with_program;     // upcalls left when the program answers
};

// Walks 1 GiB in max_io requests the way the iomap iterator does: each
// iomap_begin answers one mapping, the iterator asks again for the rest.
UpcallCount count_upcalls(uint32_t shift, uint64_t max_io) {
  const tierfs_tier_value tier = tier_value(layout_of(kWays, shift));
  const tierfs_inode_value inode = inode_value(GiB);
  UpcallCount c{uint64_t{1} << shift, GiB / max_io, 0, 0};
  for (uint64_t request = 0; request < GiB; request += max_io) {
    for (uint64_t pos = request; pos < request + max_io;) {
      tierfs_iomap_pair pair{};
      const int verdict = tierfs_iomap_fill(&inode, tierfs_find_extent(&inode, pos), &tier, pos,
                                            request + max_io - pos, 0, &pair);
      ++c.iomap_without_program;
      if (verdict != TIERFS_IOMAP_HANDLED) {
        ++c.iomap_with_program;
        pos = request + max_io;  // the server would answer the rest
        continue;
      }
      pos += pair.read.length;
    }
  }
  return c;
}

}  // namespace

static int run_main(int argc, char** argv) {
  CLI::App app{"bench_bpf: in-kernel mapping cost against the C++ mapping and a FUSE upcall"};
  bool smoke = false;
  std::string json_path;
  app.add_flag("--smoke", smoke, "tiny sizes: proves the benchmark runs, not its speed");
  app.add_option("--json", json_path, "also write the figures as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  const tierfs::kernel::KernelFeatures features = tierfs::kernel::probe_kernel();
  if (!features.bpf_usable || geteuid() != 0) {
    const char* required = std::getenv("TIERFS_REQUIRE_PRIVILEGED");
    fmt::print(stderr, "bench_bpf: needs root and BPF ({})\n",
               features.bpf_usable ? "not root" : features.bpf_missing);
    return required != nullptr && std::string(required) == "1" ? 1 : 77;  // 77: meson's skip
  }
  try {
    std::string error;
    auto loader = IomapLoader::load(error);
    if (!loader) throw std::runtime_error(error);
    const size_t scale = smoke ? 1 : 64;
    const auto twin = measure_twin(*loader, {1, 16, 64, 256}, 4096 * scale);
    const CppCost cpp = measure_cpp(65536 * scale);
    const double update_ns = measure_map_update(*loader, 256 * scale);
    const double upcall_ns = measure_upcall(smoke ? 200 : 20000);
    const double twin_best = twin.back().ns_per_offset;

    nlohmann::json doc = {{"kernel", features.release},
                          {"upcall_ns", upcall_ns},
                          {"upcall", "4 KiB pread on a cache=none tierfs mount (one FUSE READ)"},
                          {"cpp_map_extent_ns", cpp.map_extent_ns},
                          {"cpp_iomap_fill_ns", cpp.iomap_fill_ns},
                          {"map_update_ns", update_ns},
                          {"upcall_over_twin", upcall_ns / twin_best}};
    fmt::print("kernel {}; tier: {} ways, 4 KiB; one 1 GiB extent; every answer MAPPED\n\n",
               features.release, kWays);
    fmt::print("{:<48} {:>12} {:>14}\n", "mapping", "ns/offset", "upcall / this");
    for (const TwinCost& t : twin) {
      fmt::print("{:<48} {:>12.1f} {:>13.0f}x\n",
                 fmt::format("twin in the kernel, batch of {} per run", t.batch), t.ns_per_offset,
                 upcall_ns / t.ns_per_offset);
      doc["twin"].push_back(
          {{"batch", t.batch}, {"ns_per_offset", t.ns_per_offset}, {"ns_per_run", t.ns_per_run}});
    }
    fmt::print("{:<48} {:>12.1f} {:>13.0f}x\n", "C++ tierfs_map_extent", cpp.map_extent_ns,
               upcall_ns / cpp.map_extent_ns);
    fmt::print("{:<48} {:>12.1f} {:>13.0f}x\n", "C++ tierfs_find_extent + tierfs_iomap_fill",
               cpp.iomap_fill_ns, upcall_ns / cpp.iomap_fill_ns);
    fmt::print("{:<48} {:>12.1f}\n", "FUSE upcall: 4 KiB pread, cache=none mount", upcall_ns);
    fmt::print("{:<48} {:>12.1f}\n\n", "server's BPF map update per extent change", update_ns);

    const uint64_t max_io = 1 * MiB;
    fmt::print("upcalls for 1 GiB of I/O in {} MiB requests on a {}-way tier\n", max_io / MiB,
               kWays);
    fmt::print("{:>12} {:>14} {:>22} {:>20} {:>18}\n", "granularity", "server path",
               "iomap, no program", "iomap + program", "upcall time saved");
    for (uint32_t shift : {12u, 16u, 21u, 26u, 30u}) {
      const UpcallCount c = count_upcalls(shift, max_io);
      const double saved_ms = static_cast<double>(c.iomap_without_program - c.iomap_with_program) *
                              (upcall_ns - twin_best) / 1e6;
      fmt::print("{:>12} {:>14} {:>22} {:>20} {:>15.1f} ms\n",
                 c.granularity_bytes >= GiB   ? fmt::format("{} GiB", c.granularity_bytes / GiB)
                 : c.granularity_bytes >= MiB ? fmt::format("{} MiB", c.granularity_bytes / MiB)
                                              : fmt::format("{} KiB", c.granularity_bytes / KiB),
                 c.server_path_reads, c.iomap_without_program, c.iomap_with_program, saved_ms);
      doc["upcalls_per_gib"].push_back({{"granularity_bytes", c.granularity_bytes},
                                        {"server_path_reads", c.server_path_reads},
                                        {"iomap_without_program", c.iomap_without_program},
                                        {"iomap_with_program", c.iomap_with_program}});
    }
    fmt::print("\nin-kernel mapping (batch {}) is {:.0f}x cheaper than a FUSE upcall\n",
               twin.back().batch, upcall_ns / twin_best);
    if (!json_path.empty()) std::ofstream(json_path) << doc.dump(2) << "\n";
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_bpf: {}\n", e.what());
    return 1;
  }
  return 0;
}

// The last line of defence: run_main turns errors into one line itself, and
// anything that still escapes (an error while printing one) ends here.
int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("bench_bpf: unexpected error\n", stderr);
    return 1;
  }
}
