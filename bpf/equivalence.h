// The equivalence check between the kernel and C++ compiles of the iomap
// mapping: random tier layouts and inode extents are written through the
// IomapMaps API, random requests are mapped by the twin (real verifier, real
// JIT) and by the same header code in C++, and every answer must be equal.
// Used by `tierfs bpf check`, the BPF tests and the benchmark.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bpf/loader.h"

namespace tierfs::bpf {

struct EquivalenceResult {
  uint64_t cases = 0;
  uint64_t agreed = 0;
  uint64_t mapped = 0;     // HANDLED with a MAPPED or UNWRITTEN read mapping
  uint64_t holes = 0;      // HANDLED with a HOLE
  uint64_t fallbacks = 0;  // FALLBACK
  std::string first_disagreement;  // empty when every case agreed
  int error = 0;                   // -errno of a failed map update or run
};

// Random scenarios: 1-way, 32-way and in-between tiers, equal and weighted,
// granularities 4 KiB to 1 GiB, bases and extents near 2^63 and the top of
// the 64-bit range, holes, unknown inodes and tiers, unregistered devices.
class ScenarioGenerator {
 public:
  explicit ScenarioGenerator(uint64_t seed) : rng_(seed) {}
  // Writes a fresh set of tiers and inodes into `maps`; 0 or -errno.
  int write_maps(IomapMaps& maps);
  // Requests aimed at the extents last written (boundaries, holes, edges).
  std::vector<tierfs_twin_request> requests(size_t count);

  tierfs_layout random_layout();
  std::vector<tierfs_extent> random_extents(size_t count);

 private:
  uint64_t pick_offset();
  std::mt19937_64 rng_;
  std::vector<uint64_t> nodeids_;
  std::vector<std::vector<tierfs_extent>> extents_;
};

// Runs at least `cases` random cases (rounds of maps + requests); stops at the
// first error but counts every disagreement.
EquivalenceResult check_equivalence(IomapLoader& loader, uint64_t cases, uint64_t seed);

std::string describe(const tierfs_twin_request& request);
std::string describe(const tierfs_twin_answer& answer);

}  // namespace tierfs::bpf
