// tierfs_vm_placement: the vm placement suite's helper (tests/vm/vm_placement.sh),
// run inside the VM on a kernel with several NUMA nodes.
//   policy-file FILE SIZE --nodes 0,1,2,3 [--weighted] [--by write|fault]
//     creates FILE, gives it a shared interleave (or weighted-interleave)
//     policy over the nodes by mbind on a mapping, as the kernel path does,
//     and fills it with write() or with stores through a mapping;
//   rebind FILE --nodes 2,3 [--weighted]
//     moves the pages in place to a new policy (mbind with MPOL_MF_MOVE);
//   hold-map FILE READY
//     maps FILE shared, reads every page (so this process maps them all),
//     creates READY and holds the mapping until killed: a file mapped by
//     another process while tierfs moves it;
//   census FILE --weights 0:3,1:1 --granularity BYTES
//     takes the page census (numa/page_census.h) and checks it against the
//     weights and granularity: exit 0 when right, 1 when not, 2 on an error.
#include <fcntl.h>
#include <fmt/core.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "numa/page_census.h"

namespace {

// Linux 6.9's MPOL_WEIGHTED_INTERLEAVE; Debian 12's headers predate it.
constexpr int kWeightedInterleave = 6;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

std::vector<int> parse_nodes(const std::string& text) {
  std::vector<int> nodes;
  for (const std::string& node : CLI::detail::split(text, ',')) nodes.push_back(std::stoi(node));
  return nodes;
}

// Sets the file's shared policy through a mapping of all of it; `flags` adds
// MPOL_MF_MOVE to move what is already there.
void bind(int fd, size_t size, const std::vector<int>& nodes, bool weighted, unsigned flags) {
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) fail_errno("mmap");
  if (flags != 0 && madvise(map, size, MADV_POPULATE_READ) != 0) fail_errno("MADV_POPULATE_READ");
  unsigned long mask = 0;
  for (int node : nodes) mask |= 1UL << node;
  if (mbind(map, size, weighted ? kWeightedInterleave : MPOL_INTERLEAVE, &mask, sizeof(mask) * 8,
            flags) != 0)
    fail_errno("mbind");
  munmap(map, size);
}

void policy_file(const std::string& path, size_t size, const std::vector<int>& nodes, bool weighted,
                 const std::string& by) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) fail_errno("open " + path);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) fail_errno("ftruncate");
  bind(fd, size, nodes, weighted, 0);
  if (by == "fault") {
    void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) fail_errno("mmap");
    std::memset(map, 0x5a, size);
    munmap(map, size);
  } else {
    const std::vector<char> block(1 << 20, 0x5a);
    for (size_t done = 0; done < size;) {
      const size_t want = std::min(block.size(), size - done);
      const ssize_t wrote = pwrite(fd, block.data(), want, static_cast<off_t>(done));
      if (wrote <= 0) fail_errno("pwrite");
      done += static_cast<size_t>(wrote);
    }
  }
  close(fd);
}

void rebind(const std::string& path, const std::vector<int>& nodes, bool weighted) {
  const int fd = open(path.c_str(), O_RDWR);
  if (fd < 0) fail_errno("open " + path);
  const off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0) throw std::runtime_error(path + " is empty");
  bind(fd, static_cast<size_t>(size), nodes, weighted, MPOL_MF_MOVE | MPOL_MF_STRICT);
  close(fd);
}

void hold_map(const std::string& path, const std::string& ready) {
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) fail_errno("open " + path);
  const off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0) throw std::runtime_error(path + " is empty");
  void* map = mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) fail_errno("mmap");
  if (madvise(map, static_cast<size_t>(size), MADV_POPULATE_READ) != 0)
    fail_errno("MADV_POPULATE_READ");
  const int out = open(ready.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) fail_errno("open " + ready);
  close(out);
  while (true) pause();
}

int census(const std::string& path, const std::string& weights, uint64_t granularity) {
  tierfs::numa::PlacementTarget target;
  target.granularity_bytes = granularity;
  for (const std::string& entry : CLI::detail::split(weights, ',')) {
    const size_t colon = entry.find(':');
    if (colon == std::string::npos) throw std::runtime_error("--weights wants NODE:WEIGHT,...");
    target.node_weights[std::stoi(entry.substr(0, colon))] =
        static_cast<unsigned>(std::stoul(entry.substr(colon + 1)));
  }
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) fail_errno("open " + path);
  std::error_code error;
  std::string what;
  const auto measured = tierfs::numa::take_page_census(fd, error, what);
  close(fd);
  if (error) throw std::runtime_error(fmt::format("{}: {}: {}", path, what, error.message()));
  for (const auto& line : tierfs::numa::describe_census(measured)) fmt::print("{}\n", line);
  const auto problems = tierfs::numa::placement_problems(measured, target);
  // The first few say what is wrong; a wrong layout repeats over every run.
  for (size_t i = 0; i < problems.size() && i < 6; ++i) fmt::print("wrong: {}\n", problems[i]);
  if (problems.size() > 6) fmt::print("wrong: ... {} lines in all\n", problems.size());
  return problems.empty() ? 0 : 1;
}

int run_main(int argc, char** argv) {
  CLI::App app{"vm placement suite helper"};
  app.require_subcommand(1);
  std::string file, nodes, by = "write", weights;
  size_t size = 0;
  uint64_t granularity = 4096;
  bool weighted = false;
  auto* make = app.add_subcommand("policy-file", "create a file with an interleave policy");
  make->add_option("FILE", file)->required();
  make->add_option("SIZE", size)->required();
  make->add_option("--nodes", nodes)->required();
  make->add_flag("--weighted", weighted);
  make->add_option("--by", by)->check(CLI::IsMember({"write", "fault"}));
  auto* move = app.add_subcommand("rebind", "move a file's pages to another policy");
  move->add_option("FILE", file)->required();
  move->add_option("--nodes", nodes)->required();
  move->add_flag("--weighted", weighted);
  std::string ready;
  auto* hold = app.add_subcommand("hold-map", "map a file and hold the mapping");
  hold->add_option("FILE", file)->required();
  hold->add_option("READY", ready)->required();
  auto* count = app.add_subcommand("census", "check where the kernel holds a file's pages");
  count->add_option("FILE", file)->required();
  count->add_option("--weights", weights)->required();
  count->add_option("--granularity", granularity);
  CLI11_PARSE(app, argc, argv);
  try {
    if (*make) policy_file(file, size, parse_nodes(nodes), weighted, by);
    if (*move) rebind(file, parse_nodes(nodes), weighted);
    if (*hold) hold_map(file, ready);
    if (*count) return census(file, weights, granularity);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tierfs_vm_placement: {}\n", e.what());
    return 2;
  }
}

}  // namespace

// An error while printing an error ends here.
int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("tierfs_vm_placement: unexpected error\n", stderr);
    return 2;
  }
}
