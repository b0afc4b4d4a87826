// The page census: which NUMA node holds each page of a file, asked of the
// kernel (move_pages with no target nodes), not of tierfs's own bookkeeping.
// It is how the kernel path's placement is measured: the pages of a file
// whose shared memory policy interleaves it over a tier's nodes must sit on
// those nodes, in the tier's proportions and in runs of its granularity.
//
// The census maps the file MAP_SHARED and read-only, asks mincore() which
// pages the file has in memory, faults in only those (a read fault on a tmpfs
// hole would allocate a page, so holes are never touched) and asks
// move_pages() for their nodes. A page the kernel reports as absent (-ENOENT:
// truncated or swapped out in between) is not counted.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <system_error>
#include <vector>

namespace tierfs::numa {

// Consecutive populated pages of a file on one node. A hole ends a run.
struct PageRun {
  uint64_t first_page = 0;
  uint64_t pages = 0;
  int node = -1;
};

struct PageCensus {
  uint64_t page_bytes = 4096;
  uint64_t file_pages = 0;       // pages the file's size spans
  uint64_t populated_pages = 0;  // pages the kernel placed on a node
  std::map<int, uint64_t> pages_per_node;
  std::vector<PageRun> runs;  // in file order

  uint64_t bytes_on(int node) const;
  // The node's share of the populated pages, 0..1 (0 with none populated).
  double share(int node) const;
  // Run length in pages -> how many runs have it.
  std::map<uint64_t, uint64_t> run_lengths() const;
};

// Takes the census of the file open on fd (any mode that allows a shared
// read-only mapping). On failure returns an empty census and sets error to
// the failing call's errno; the message of what failed is in `what`.
PageCensus take_page_census(int fd, std::error_code& error, std::string& what);

// Builds a census from per-page nodes (negative: not populated), as the
// kernel reports them; take_page_census uses it, tests feed it directly.
PageCensus census_from_nodes(const std::vector<int>& page_nodes, uint64_t page_bytes);

// Where a tier says a file's pages belong.
struct PlacementTarget {
  std::map<int, unsigned> node_weights;  // node -> weight; equal interleave: all 1
  uint64_t granularity_bytes = 4096;
  // Each node's page count may differ from its expected count by this
  // fraction of the expected count.
  double tolerance = 0.05;
};

// What is wrong with a census against a target, one line each; empty when
// the placement is right:
// - every populated page is on one of the target's nodes;
// - each node holds its weight's share of the populated pages, within the
//   tolerance;
// - every run starts and ends on a granularity boundary, except where a hole,
//   the file's start or its end cuts it;
// - with two or more nodes, every run not cut so holds exactly weight x
//   granularity (the kernel's interleave index is biased per inode, so the
//   first run of a file may be shorter).
std::vector<std::string> placement_problems(const PageCensus& census,
                                            const PlacementTarget& target);

// One line per node ("node 1: 8 MiB, 2048 pages, 25.0 %") and one for the
// runs ("runs: 8192 x 1 page"), for tools and test logs.
std::vector<std::string> describe_census(const PageCensus& census);

}  // namespace tierfs::numa
