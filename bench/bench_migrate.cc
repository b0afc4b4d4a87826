// Migration benchmark (docs/benchmarks.md, issue 14), on real mounts:
//  1. migration bandwidth: a file of --size bytes moved by the migrate ioctl
//     between DRAM tiers of two layouts and between DRAM and a file tier, in
//     both directions, against memcpy of the same size in the same run (into
//     a destination touched before and into a fresh one);
//  2. foreground 1 MiB sequential read and write bandwidth on a pinned file,
//     without the mover and while the mover demotes a cold file at its rate
//     limit (--rate), and their ratio.
// Prints one line per figure and, with --json, a document with all of them.
// The DRAM tiers are pinned to data_path = "server": these are the server's
// copies (auto would put a 2 MiB numa: tier on the kernel path, whose moves
// tests/integration/kernel_migrate.sh and kernel_move.sh check).
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/tierfs_mount.h"
#include "tierfs/cli/virtual_xattr.h"
#include "tierfs/core/migrate_ioctl.h"
#include "tierfs/core/units.h"

namespace {

using tierfs::format_size;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

double gib_per_s(uint64_t bytes, double seconds) {
  return static_cast<double>(bytes) / seconds / (1 << 30);
}

void write_file(const std::string& path, uint64_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  std::vector<char> chunk(1 << 20);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 131 + 7);
  for (uint64_t done = 0; done < size; done += chunk.size())
    if (write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size()))
      throw std::runtime_error(path + ": short write");
  close(fd);
}

double migrate_seconds(const std::string& path, const std::string& tier) {
  // O_NONBLOCK as tierfs migrate opens: a direct-I/O handle on either path.
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK);
  tierfs::MigrateRequest request{};
  std::strncpy(request.tier, tier.c_str(), sizeof request.tier - 1);
  const auto start = clock_type::now();
  const int rc = ioctl(fd, tierfs::kMigrateIoctl, &request);
  const double s = seconds_since(start);
  close(fd);
  if (rc != 0) throw std::runtime_error(fmt::format("migrate {} to {}: {}", path, tier, rc));
  return s;
}

double memcpy_seconds(uint64_t size, bool touched) {
  auto map = [&] {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    return static_cast<char*>(p);
  };
  char* src = map();
  char* dst = map();
  std::memset(src, 1, size);
  if (touched) std::memset(dst, 2, size);
  const auto start = clock_type::now();
  std::memcpy(dst, src, size);
  const double s = seconds_since(start);
  munmap(src, size);
  munmap(dst, size);
  return s;
}

// Sequential 1 MiB reads or writes over the file for `seconds`; bytes per second.
double foreground(const std::string& path, uint64_t size, bool writing, double seconds) {
  const int fd = open(path.c_str(), writing ? O_WRONLY : O_RDONLY);
  std::vector<char> buffer(1 << 20, 'x');
  uint64_t bytes = 0, off = 0;
  const auto start = clock_type::now();
  while (seconds_since(start) < seconds) {
    const ssize_t n = writing ? pwrite(fd, buffer.data(), buffer.size(), static_cast<off_t>(off))
                              : pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(off));
    if (n <= 0) break;
    bytes += static_cast<uint64_t>(n);
    off = (off + buffer.size()) % size;
  }
  const double s = seconds_since(start);
  close(fd);
  return static_cast<double>(bytes) / s;
}

struct Options {
  uint64_t size = uint64_t{1} << 30;
  uint64_t rate = uint64_t{256} << 20;
  int reps = 3;
  double window_s = 1.5;
  std::string json;
};

nlohmann::json migration_bandwidth(const Options& o) {
  const std::string tier_size = format_size(o.size * 2);
  tierfs::testing::TierfsMount mount("tierfs-bench-migrate");
  const std::string config = fmt::format(
      "[[tier]]\nname = \"dram\"\nregions = [\"numa:0\"]\nsize = \"{0}\"\n"
      "data_path = \"server\"\n"
      "[[tier]]\nname = \"dram64k\"\nregions = [\"numa:0\"]\nsize = \"{0}\"\ngranularity = "
      "\"64KiB\"\n"
      "[[tier]]\nname = \"file\"\nregions = [\"file:@WORK@/file.img\"]\nsize = \"{0}\"\ncreate = "
      "true\n",
      tier_size);
  if (!mount.start(config)) throw std::runtime_error("mount: " + mount.log());
  const std::string file = mount.path("big");
  write_file(file, o.size);
  nlohmann::json out;
  for (const auto& [to, back] :
       std::vector<std::pair<std::string, std::string>>{{"dram64k", "dram"}, {"file", "dram"}}) {
    std::vector<double> there, home;
    for (int r = 0; r < o.reps; ++r) {
      there.push_back(gib_per_s(o.size, migrate_seconds(file, to)));
      home.push_back(gib_per_s(o.size, migrate_seconds(file, back)));
    }
    out[fmt::format("{}->{}", back, to)] = there;
    out[fmt::format("{}->{}", to, back)] = home;
  }
  std::vector<double> warm, cold;
  for (int r = 0; r < o.reps; ++r) {
    warm.push_back(gib_per_s(o.size, memcpy_seconds(o.size, true)));
    cold.push_back(gib_per_s(o.size, memcpy_seconds(o.size, false)));
  }
  out["memcpy_touched_dst"] = warm;
  out["memcpy_fresh_dst"] = cold;
  mount.stop();
  return out;
}

nlohmann::json foreground_under_mover(const Options& o) {
  tierfs::testing::TierfsMount mount("tierfs-bench-mover");
  const uint64_t fg_size = std::min<uint64_t>(uint64_t{256} << 20, o.size / 4);
  // The cold file alone passes the high mark; the foreground file is pinned.
  const std::string config = fmt::format(
      "[[tier]]\nname = \"dram\"\nregions = [\"numa:0\"]\nsize = \"{}\"\n"
      "data_path = \"server\"\nhigh_watermark = 40\nlow_watermark = 10\n"
      "[[tier]]\nname = \"slow\"\nregions = [\"numa:0\"]\nsize = \"{}\"\ngranularity = \"64KiB\"\n"
      "[[placement]]\npath = \"fg\"\ntier = \"dram\"\npin = true\n"
      "[mover]\nrate = \"{}\"\ninterval_ms = 100\n",
      format_size(o.size * 2), format_size(o.size * 2), format_size(o.rate));
  if (!mount.start(config)) throw std::runtime_error("mount: " + mount.log());
  const std::string fg = mount.path("fg");
  write_file(fg, fg_size);
  nlohmann::json out;
  out["read_without_mover"] = foreground(fg, fg_size, false, o.window_s);
  out["write_without_mover"] = foreground(fg, fg_size, true, o.window_s);
  write_file(mount.path("cold"), o.size);
  // Until the mover has the cold file in hand.
  const auto give_up = clock_type::now() + std::chrono::seconds(30);
  while (!tierfs::read_extent_map(mount.path("cold")).migration && clock_type::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  out["read_with_mover"] = foreground(fg, fg_size, false, o.window_s);
  out["write_with_mover"] = foreground(fg, fg_size, true, o.window_s);
  out["mover_still_moving"] = tierfs::read_extent_map(mount.path("cold")).migration.has_value();
  out["mover_rate"] = o.rate;
  out["read_ratio"] =
      out["read_with_mover"].get<double>() / out["read_without_mover"].get<double>();
  out["write_ratio"] =
      out["write_with_mover"].get<double>() / out["write_without_mover"].get<double>();
  mount.stop();
  return out;
}

}  // namespace

static int run_main(int argc, char** argv) {
  CLI::App app{"tierfs migration benchmark"};
  Options o;
  std::string size = "1GiB", rate = "256MiB";
  app.add_option("--size", size, "file size moved (and memcpy'd)");
  app.add_option("--rate", rate, "the mover's rate limit for the foreground test");
  app.add_option("--reps", o.reps, "moves per direction");
  app.add_option("--window", o.window_s, "seconds per foreground measurement");
  app.add_option("--json", o.json, "write the figures here");
  CLI11_PARSE(app, argc, argv);
  try {
    if (getuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
      fmt::print("bench_migrate: skipped: needs root and /dev/fuse\n");
      return 77;
    }
    const auto parsed_size = tierfs::parse_size(size), parsed_rate = tierfs::parse_size(rate);
    if (!parsed_size || !parsed_rate) throw std::runtime_error("--size/--rate: not a size");
    o.size = *parsed_size;
    o.rate = *parsed_rate;
    nlohmann::json doc{{"size", o.size}, {"reps", o.reps}};
    doc["migration_gib_per_s"] = migration_bandwidth(o);
    doc["foreground_bytes_per_s"] = foreground_under_mover(o);
    for (const auto& [name, values] : doc["migration_gib_per_s"].items()) {
      std::string cells;
      for (double v : values) cells += fmt::format(" {:.2f}", v);
      fmt::print("{:<22} GiB/s:{}\n", name, cells);
    }
    const auto& fg = doc["foreground_bytes_per_s"];
    fmt::print("foreground 1MiB read  {:.2f} -> {:.2f} GiB/s with the mover at {}/s (x{:.2f})\n",
               fg["read_without_mover"].get<double>() / (1 << 30),
               fg["read_with_mover"].get<double>() / (1 << 30), rate,
               fg["read_ratio"].get<double>());
    fmt::print("foreground 1MiB write {:.2f} -> {:.2f} GiB/s with the mover at {}/s (x{:.2f})\n",
               fg["write_without_mover"].get<double>() / (1 << 30),
               fg["write_with_mover"].get<double>() / (1 << 30), rate,
               fg["write_ratio"].get<double>());
    if (!o.json.empty()) std::ofstream(o.json) << doc.dump(2) << "\n";
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_migrate: {}\n", e.what());
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("bench_migrate: unexpected error\n", stderr);
    return 1;
  }
}
