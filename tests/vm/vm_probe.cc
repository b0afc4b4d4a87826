// tierfs_vm_probe: the checks of the vm suite that busybox sh cannot do itself.
// It runs inside the VM (kernel/vm/run.sh puts it in /vm/bin) and looks past
// tierfs at the hardware: it reads /dev/daxX.Y directly at the places that
// `tierfs map --json` names, asks the kernel (move_pages) which NUMA node holds
// each page of the server's numa: regions, and compares `tierfs topology --json`
// with the machine the harness emulated. Each subcommand prints what it saw
// and exits 1 when that differs from what it should be.
//
// Where the bytes are is computed with tierfs_map_extent from bpf/tierfs_map.h,
// the one definition of the mapping, from the extent fields the map reports.
// Weights and each region's offset inside its device come from the map.
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bpf/tierfs_map.h"
#include "tierfs/core/inspect_schema.h"

namespace {

using nlohmann::json;
namespace inspect = tierfs::inspect;
constexpr uint64_t kMiB = uint64_t{1} << 20;

// The pattern never repeats within a file, so a byte read from the wrong
// place matches only by chance (1 in 256), and a whole unit never does.
uint8_t pattern_byte(uint64_t seed, uint64_t offset) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * ((offset >> 3) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<uint8_t>(z >> ((offset & 7) * 8));
}

void fill_pattern(uint64_t seed, uint64_t offset, uint8_t* out, size_t length) {
  for (size_t i = 0; i < length; ++i) out[i] = pattern_byte(seed, offset + i);
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", path));
  return json::parse(in);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int write_pattern(const std::string& path, uint64_t size_bytes, uint64_t seed) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
  std::vector<uint8_t> chunk(kMiB);
  for (uint64_t off = 0; off < size_bytes;) {
    const size_t n = std::min<uint64_t>(chunk.size(), size_bytes - off);
    fill_pattern(seed, off, chunk.data(), n);
    const ssize_t done = pwrite(fd, chunk.data(), n, static_cast<off_t>(off));
    if (done <= 0)
      throw std::runtime_error(fmt::format("{}: write: {}", path, std::strerror(errno)));
    off += static_cast<uint64_t>(done);
  }
  if (close(fd) != 0)
    throw std::runtime_error(fmt::format("{}: close: {}", path, std::strerror(errno)));
  fmt::print("wrote {} bytes of pattern {} to {}\n", size_bytes, seed, path);
  return 0;
}

int check_pattern(const std::string& path, uint64_t size_bytes, uint64_t seed) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
  std::vector<uint8_t> got(kMiB), want(kMiB);
  uint64_t off = 0, wrong = 0;
  for (;;) {
    const ssize_t n = pread(fd, got.data(), got.size(), static_cast<off_t>(off));
    if (n < 0) throw std::runtime_error(fmt::format("{}: read: {}", path, std::strerror(errno)));
    if (n == 0) break;
    fill_pattern(seed, off, want.data(), static_cast<size_t>(n));
    for (ssize_t i = 0; i < n; ++i) wrong += got[i] != want[i];
    off += static_cast<uint64_t>(n);
  }
  close(fd);
  fmt::print("{}: read {} bytes, expected {}, {} differ from pattern {}\n", path, off, size_bytes,
             wrong, seed);
  return off == size_bytes && wrong == 0 ? 0 : 1;
}

// One contiguous run of file bytes in one region, as the shared mapping computes it.
struct Piece {
  std::string spec;  // "dax:/dev/dax0.0", "numa:2"
  uint64_t file_offset;
  uint64_t region_offset;
  uint64_t device_offset;  // region_offset plus the region's `offset` inside the device
  uint64_t length;
};

// Walks every written extent of a `tierfs map --json` document through
// tierfs_map_extent and checks each piece lands inside the byte range the map
// itself reports for that region.
std::vector<Piece> pieces_of(const json& map_json) {
  const auto map = map_json.get<inspect::MapPage>();
  std::vector<Piece> pieces;
  const uint64_t file_size = map.size;
  for (const inspect::MapExtent& ext : map.extents) {
    if (ext.unwritten) continue;
    tierfs_layout layout{};
    layout.ways = ext.ways;
    layout.granularity_shift = static_cast<uint32_t>(__builtin_ctzll(ext.granularity_bytes));
    const std::vector<unsigned>& weights = ext.weights;
    for (uint32_t i = 0; i < layout.ways && i < TIERFS_MAX_WAYS && i < weights.size(); ++i)
      layout.weights[i] = static_cast<uint8_t>(weights[i]);
    tierfs_extent extent{};
    extent.file_offset = ext.file_offset;
    extent.length = ext.length;
    extent.tier_address = ext.tier_address;
    extent.tier = ext.tier_index;
    std::map<uint32_t, inspect::MapRegion> regions;
    for (const inspect::MapRegion& region : ext.regions) regions[region.index] = region;
    const uint64_t end = std::min<uint64_t>(extent.file_offset + extent.length, file_size);
    for (uint64_t off = extent.file_offset; off < end;) {
      tierfs_mapping m{};
      if (tierfs_map_extent(&layout, &extent, off, &m) != TIERFS_MAP_OK || m.length == 0)
        throw std::runtime_error(fmt::format("file offset {}: tierfs_map_extent refuses it", off));
      const uint64_t length = std::min<uint64_t>(m.length, end - off);
      auto found = regions.find(m.region);
      if (found == regions.end())
        throw std::runtime_error(fmt::format(
            "file offset {} maps to region index {}, which the map does not list", off, m.region));
      const uint64_t lo = found->second.region_offset, hi = found->second.region_end;
      if (m.region_offset < lo || m.region_offset + length > hi)
        throw std::runtime_error(
            fmt::format("file offset {} maps to [{}, {}) of {}, outside the map's [{}, {})", off,
                        m.region_offset, m.region_offset + length, found->second.spec, lo, hi));
      const uint64_t device_shift = found->second.device_offset - lo;
      pieces.push_back(
          {found->second.spec, off, m.region_offset, m.region_offset + device_shift, length});
      off += length;
    }
  }
  return pieces;
}

uint64_t dax_size_bytes(const std::string& device) {
  const std::string name = device.substr(device.rfind('/') + 1);
  return std::stoull(read_text(fmt::format("/sys/bus/dax/devices/{}/size", name)));
}

// A devdax device has no read(2); it is only ever mmap'd, as tierfs does.
struct DaxMapping {
  uint8_t* base = nullptr;
  uint64_t size_bytes = 0;
};

DaxMapping map_dax(const std::string& device) {
  DaxMapping mapping;
  mapping.size_bytes = dax_size_bytes(device);
  const int fd = open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", device, std::strerror(errno)));
  void* base = mmap(nullptr, mapping.size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED)
    throw std::runtime_error(fmt::format("{}: mmap: {}", device, std::strerror(errno)));
  mapping.base = static_cast<uint8_t*>(base);
  return mapping;
}

// shift_bytes != 0 is the suite's control: read that far from where the map
// says, which must then fail, or the comparison proves nothing.
int verify_dax(const std::string& map_path, uint64_t seed, uint32_t min_devices,
               uint64_t shift_bytes) {
  const json map = read_json(map_path);
  std::map<std::string, DaxMapping> devices;
  std::map<std::string, uint64_t> matched, wrong;
  uint64_t elsewhere = 0;
  for (const Piece& piece : pieces_of(map)) {
    if (piece.spec.rfind("dax:", 0) != 0) {
      elsewhere += piece.length;
      continue;
    }
    const std::string device = piece.spec.substr(4);
    if (!devices.count(device)) devices[device] = map_dax(device);
    const DaxMapping& dax = devices[device];
    const uint64_t at = piece.device_offset + shift_bytes;
    if (at + piece.length > dax.size_bytes)
      throw std::runtime_error(fmt::format("{}: the map puts bytes at {} past its end {}", device,
                                           at + piece.length, dax.size_bytes));
    for (uint64_t i = 0; i < piece.length; ++i) {
      const bool same = dax.base[at + i] == pattern_byte(seed, piece.file_offset + i);
      (same ? matched : wrong)[device] += 1;
    }
  }
  uint64_t total_wrong = 0;
  for (const auto& [device, dax] : devices) {
    fmt::print("{}: {} bytes where the map says, {} differ\n", device, matched[device],
               wrong[device]);
    total_wrong += wrong[device];
    munmap(dax.base, dax.size_bytes);
  }
  if (elsewhere) fmt::print("{} bytes of the file live outside DAX regions\n", elsewhere);
  if (devices.size() < min_devices)
    fmt::print("expected the file on at least {} DAX devices, it is on {}\n", min_devices,
               devices.size());
  return total_wrong == 0 && elsewhere == 0 && devices.size() >= min_devices ? 0 : 1;
}

// Every byte of the file is on its block device where MAP_JSON says, read
// with O_DIRECT from the device itself (after a sync), as fuse-iomap would
// read it: not through tierfs, not through the server's mapping.
int verify_blockdev(const std::string& map_path, uint64_t seed, uint32_t min_devices,
                    uint64_t shift_bytes) {
  constexpr uint64_t kBlock = 4096;
  std::map<std::string, int> devices;
  std::map<std::string, uint64_t> matched, wrong;
  uint64_t elsewhere = 0;
  for (const Piece& piece : pieces_of(read_json(map_path))) {
    if (piece.spec.rfind("file:/dev/", 0) != 0) {
      elsewhere += piece.length;
      continue;
    }
    const std::string device = piece.spec.substr(5);
    if (!devices.count(device)) {
      const int fd = open(device.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
      if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", device, std::strerror(errno)));
      devices[device] = fd;
    }
    const uint64_t at = piece.device_offset + shift_bytes;
    const uint64_t lo = at / kBlock * kBlock;
    const uint64_t hi = (at + piece.length + kBlock - 1) / kBlock * kBlock;
    void* raw = nullptr;
    if (posix_memalign(&raw, kBlock, hi - lo) != 0) throw std::runtime_error("out of memory");
    std::unique_ptr<uint8_t, decltype(&free)> aligned(static_cast<uint8_t*>(raw), free);
    const ssize_t got = pread(devices[device], aligned.get(), hi - lo, static_cast<off_t>(lo));
    if (got != static_cast<ssize_t>(hi - lo))
      throw std::runtime_error(fmt::format("{}: O_DIRECT read of [{}, {}): {}", device, lo, hi,
                                           got < 0 ? std::strerror(errno) : "short read"));
    for (uint64_t i = 0; i < piece.length; ++i) {
      const bool same = aligned.get()[at - lo + i] == pattern_byte(seed, piece.file_offset + i);
      (same ? matched : wrong)[device] += 1;
    }
  }
  uint64_t total_wrong = 0;
  for (const auto& [device, fd] : devices) {
    fmt::print("{}: {} bytes where the map says, {} differ\n", device, matched[device],
               wrong[device]);
    total_wrong += wrong[device];
    close(fd);
  }
  if (elsewhere) fmt::print("{} bytes of the file live outside block devices\n", elsewhere);
  if (devices.size() < min_devices)
    fmt::print("expected the file on at least {} block devices, it is on {}\n", min_devices,
               devices.size());
  return total_wrong == 0 && elsewhere == 0 && devices.size() >= min_devices ? 0 : 1;
}

// Overwrites the byte that holds file offset `file_offset` on the DAX device
// itself, so the suite can read it back through the mount.
int poke_dax(const std::string& map_path, uint64_t file_offset, uint32_t value) {
  for (const Piece& piece : pieces_of(read_json(map_path))) {
    if (file_offset < piece.file_offset || file_offset >= piece.file_offset + piece.length)
      continue;
    if (piece.spec.rfind("dax:", 0) != 0)
      throw std::runtime_error(
          fmt::format("file offset {} is on {}, not DAX", file_offset, piece.spec));
    const DaxMapping dax = map_dax(piece.spec.substr(4));
    const uint64_t at = piece.device_offset + (file_offset - piece.file_offset);
    dax.base[at] = static_cast<uint8_t>(value);
    munmap(dax.base, dax.size_bytes);
    fmt::print("wrote {:#04x} at byte {} of {} (file offset {})\n", value, at, piece.spec,
               file_offset);
    return 0;
  }
  throw std::runtime_error(fmt::format("file offset {} is in no written extent", file_offset));
}

// The server's mapping of the shared memory it bound to `node`, from numa_maps
// ("7f.. bind:2 file=/dev/shm/tierfs... N2=..").
uint64_t server_region_base(int pid, int node) {
  std::istringstream lines(read_text(fmt::format("/proc/{}/numa_maps", pid)));
  const std::string policy = fmt::format("bind:{}", node);
  std::vector<uint64_t> bases;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string address, line_policy;
    words >> address >> line_policy;
    if (line_policy == policy && line.find(" file=/dev/shm/") != std::string::npos)
      bases.push_back(std::stoull(address, nullptr, 16));
  }
  if (bases.size() != 1)
    throw std::runtime_error(
        fmt::format("process {} has {} shared-memory mappings bound to node {}, expected one", pid,
                    bases.size(), node));
  return bases.front();
}

// wrong_node_control: expect each region's pages on the next node instead,
// which must then fail, or the comparison proves nothing.
int verify_numa(const std::string& map_path, int pid, uint32_t min_nodes, bool wrong_node_control) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::map<int, std::vector<void*>> pages_by_node;
  uint64_t elsewhere = 0;
  for (const Piece& piece : pieces_of(read_json(map_path))) {
    if (piece.spec.rfind("numa:", 0) != 0) {
      elsewhere += piece.length;
      continue;
    }
    const int node = std::stoi(piece.spec.substr(5));
    auto& pages = pages_by_node[node];
    const uint64_t base = server_region_base(pid, node);
    for (uint64_t at = piece.region_offset / page * page; at < piece.region_offset + piece.length;
         at += page)
      // An address in the server process, for move_pages(2) to query.
      pages.push_back(reinterpret_cast<void*>(base + at));  // NOLINT(performance-no-int-to-ptr)
  }
  uint64_t misplaced = 0;
  for (auto& [node, pages] : pages_by_node) {
    std::sort(pages.begin(), pages.end());
    pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
    std::vector<int> status(pages.size(), -1);
    // nodes == nullptr: only report where each page is, move nothing.
    if (move_pages(pid, pages.size(), pages.data(), nullptr, status.data(), 0) != 0)
      throw std::runtime_error(fmt::format("move_pages({}): {}", pid, std::strerror(errno)));
    std::map<int, uint64_t> where;
    for (int s : status) where[s] += 1;
    std::string seen;
    for (const auto& [at, count] : where)
      seen += at >= 0 ? fmt::format(" node {}: {}", at, count)
                      : fmt::format(" not present ({}): {}", std::strerror(-at), count);
    fmt::print("numa:{}: {} pages of the file;{}\n", node, pages.size(), seen);
    const int expected = wrong_node_control ? (node + 1) % numa_num_configured_nodes() : node;
    misplaced += pages.size() - where[expected];
  }
  if (elsewhere) fmt::print("{} bytes of the file live outside numa: regions\n", elsewhere);
  if (pages_by_node.size() < min_nodes)
    fmt::print("expected the file on at least {} nodes, it is on {}\n", min_nodes,
               pages_by_node.size());
  return misplaced == 0 && elsewhere == 0 && pages_by_node.size() >= min_nodes ? 0 : 1;
}

// `tierfs topology --json` against what kernel/vm/run.sh emulated.
int verify_topology(const std::string& path, int nodes, std::vector<int> dax_nodes,
                    uint64_t dax_mib) {
  const json doc = read_json(path);
  std::vector<int> ids, seen_dax_nodes;
  for (const json& node : doc.at("nodes")) {
    ids.push_back(node.at("id"));
    fmt::print("node {}: {} bytes, cpus {}\n", node.at("id").get<int>(),
               node.at("total_bytes").get<uint64_t>(), node.at("cpus").dump());
  }
  std::vector<int> want_ids(static_cast<size_t>(nodes));
  for (int i = 0; i < nodes; ++i) want_ids[static_cast<size_t>(i)] = i;
  bool ok = ids == want_ids;
  if (!ok) fmt::print("expected nodes 0..{}\n", nodes - 1);
  std::vector<std::string> paths;
  for (const json& dax : doc.at("dax_devices")) {
    const uint64_t size = dax.at("size_bytes");
    const std::string mode = dax.at("mode");
    paths.push_back(dax.at("path"));
    seen_dax_nodes.push_back(dax.at("numa_node"));
    fmt::print("{}: {} bytes, node {}, mode {}\n", paths.back(), size, seen_dax_nodes.back(), mode);
    // The devdax info block takes a little of the pmem range.
    if (size > dax_mib * kMiB || size + 16 * kMiB < dax_mib * kMiB || mode != "devdax") {
      fmt::print("  expected a devdax device of at most {} MiB and more than {} MiB\n", dax_mib,
                 dax_mib - 16);
      ok = false;
    }
  }
  std::vector<std::string> want_paths;
  for (size_t i = 0; i < dax_nodes.size(); ++i)
    want_paths.push_back(fmt::format("/dev/dax{}.0", i));
  std::sort(paths.begin(), paths.end());
  std::sort(seen_dax_nodes.begin(), seen_dax_nodes.end());
  std::sort(dax_nodes.begin(), dax_nodes.end());
  if (paths != want_paths || seen_dax_nodes != dax_nodes) {
    fmt::print("expected {} DAX devices dax0.0.. on nodes {}\n", dax_nodes.size(),
               json(dax_nodes).dump());
    ok = false;
  }
  return ok ? 0 : 1;
}

// Prints "TIER used=BYTES regions=SPEC,SPEC region_used=BYTES" per tier of `tierfs stats --json`.
int print_stats(const std::string& path) {
  const auto stats = read_json(path).get<inspect::Stats>();
  for (const inspect::TierUse& tier : stats.tiers) {
    std::string specs;
    uint64_t region_used = 0;
    for (const inspect::RegionUse& region : tier.regions) {
      specs += (specs.empty() ? "" : ",") + region.spec;
      region_used += region.used_bytes;
    }
    fmt::print("{} used={} regions={} region_used={}\n", tier.name, tier.used_bytes, specs,
               region_used);
  }
  return 0;
}

}  // namespace

static int run_main(int argc, char** argv) {
  CLI::App app{"Checks of the tierfs vm suite that look at the emulated hardware"};
  app.require_subcommand(1);
  int status = 0;
  std::string path, map_path;
  uint64_t size_bytes = 0, seed = 1, file_offset = 0, dax_mib = 128;
  uint32_t value = 0, min_count = 1;
  uint64_t shift_bytes = 0;
  bool wrong_node_control = false;
  int pid = 0, nodes = 0;
  std::vector<int> dax_nodes;

  auto* write = app.add_subcommand("write-pattern", "write SIZE bytes of pattern SEED to FILE");
  write->add_option("FILE", path)->required();
  write->add_option("SIZE", size_bytes)->required();
  write->add_option("SEED", seed)->required();
  write->callback([&] { status = write_pattern(path, size_bytes, seed); });

  auto* check =
      app.add_subcommand("check-pattern", "FILE holds exactly SIZE bytes of pattern SEED");
  check->add_option("FILE", path)->required();
  check->add_option("SIZE", size_bytes)->required();
  check->add_option("SEED", seed)->required();
  check->callback([&] { status = check_pattern(path, size_bytes, seed); });

  auto* dax = app.add_subcommand("verify-dax", "every byte is on /dev/daxX.Y where MAP_JSON says");
  dax->add_option("MAP_JSON", map_path)->required();
  dax->add_option("SEED", seed)->required();
  dax->add_option("--min-devices", min_count, "the file must span this many devices");
  dax->add_option("--control-shift", shift_bytes,
                  "control: read this many bytes off the mapped place");
  dax->callback([&] { status = verify_dax(map_path, seed, min_count, shift_bytes); });

  auto* blk = app.add_subcommand(
      "verify-blockdev", "every byte is on its block device where MAP_JSON says (O_DIRECT)");
  blk->add_option("MAP_JSON", map_path)->required();
  blk->add_option("SEED", seed)->required();
  blk->add_option("--min-devices", min_count, "the file must span this many devices");
  blk->add_option("--control-shift", shift_bytes,
                  "control: read this many bytes off the mapped place");
  blk->callback([&] { status = verify_blockdev(map_path, seed, min_count, shift_bytes); });

  auto* poke = app.add_subcommand("poke-dax", "write VALUE on the device at FILE_OFFSET's place");
  poke->add_option("MAP_JSON", map_path)->required();
  poke->add_option("FILE_OFFSET", file_offset)->required();
  poke->add_option("VALUE", value)->required()->check(CLI::Range(0, 255));
  poke->callback([&] { status = poke_dax(map_path, file_offset, value); });

  auto* numa = app.add_subcommand("verify-numa", "every page of the file is on its region's node");
  numa->add_option("MAP_JSON", map_path)->required();
  numa->add_option("SERVER_PID", pid)->required();
  numa->add_option("--min-nodes", min_count, "the file must span this many nodes");
  numa->add_flag("--control-wrong-node", wrong_node_control,
                 "control: expect every region's pages on the next node");
  numa->callback([&] { status = verify_numa(map_path, pid, min_count, wrong_node_control); });

  auto* topo =
      app.add_subcommand("verify-topology", "TOPOLOGY_JSON lists exactly the VM's hardware");
  topo->add_option("TOPOLOGY_JSON", path)->required();
  topo->add_option("--nodes", nodes)->required();
  topo->add_option("--dax-nodes", dax_nodes, "the node of each DAX device")->delimiter(',');
  topo->add_option("--dax-mib", dax_mib);
  topo->callback([&] { status = verify_topology(path, nodes, dax_nodes, dax_mib); });

  auto* stats = app.add_subcommand("stats", "one line per tier of STATS_JSON: used bytes, regions");
  stats->add_option("STATS_JSON", path)->required();
  stats->callback([&] { status = print_stats(path); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tierfs_vm_probe: {}\n", e.what());
    return 2;
  }
  return status;
}

// The last line of defence: run_main turns errors into one line itself, and
// anything that still escapes (an error while printing one) ends here.
int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("tierfs_vm_probe: unexpected error\n", stderr);
    return 1;
  }
}
