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

#include "bpf/iomap_loader.h"

namespace tierfs::bpf {

// How many HANDLED answers with a MAPPED or UNWRITTEN read mapping fell on
// each kind of case: proof that the random mix reaches the edges it aims at.
struct CaseMix {
  uint64_t one_way = 0;          // the extent's tier has one region
  uint64_t max_ways = 0;         // ... TIERFS_MAX_WAYS regions
  uint64_t weighted = 0;         // ... unequal weights
  uint64_t granularity_4k = 0;   // ... 4 KiB units
  uint64_t granularity_1g = 0;   // ... 1 GiB units
  uint64_t near_2_63 = 0;        // pos within 2^40 below 2^63 (s_maxbytes)
  uint64_t near_2_64 = 0;        // device address within 2^40 of 2^64
  uint64_t unwritten = 0;        // an UNWRITTEN read mapping
  uint64_t cut_at_boundary = 0;  // mapping ends at an interleave boundary, before the extent end
  uint64_t writes = 0;           // a write op (WRITE, ZERO, UNSHARE or WRITEBACK) answered
};

struct EquivalenceResult {
  uint64_t cases = 0;
  uint64_t agreed = 0;
  uint64_t mapped = 0;     // HANDLED with a MAPPED or UNWRITTEN read mapping
  uint64_t holes = 0;      // HANDLED with a HOLE
  uint64_t fallbacks = 0;  // FALLBACK
  CaseMix mix;
  std::string first_disagreement;  // empty when every case agreed
  // Every HANDLED answer of the twin goes through the kernel's rules
  // (kernel/iomap_rules.h): answers the kernel would fail with EFSCORRUPTED.
  uint64_t checked = 0;     // HANDLED answers the oracle checked
  uint64_t violations = 0;  // ... that broke a rule
  std::string first_violation;
  int error = 0;  // -errno of a failed map update or run
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

// The kernel's verdict on one twin answer: empty when it would accept it.
std::string oracle_violation(const tierfs_twin_request& request, const tierfs_twin_answer& answer);

// Runs at least `cases` random cases (rounds of maps + requests); stops at the
// first error but counts every disagreement.
EquivalenceResult check_equivalence(IomapLoader& loader, uint64_t cases, uint64_t seed);

std::string describe(const tierfs_twin_request& request);
std::string describe(const tierfs_twin_answer& answer);

}  // namespace tierfs::bpf
