// The page census (page_census.h): mincore, MADV_POPULATE_READ on what is in
// memory, move_pages with no target nodes, and the checks against a tier.
#include "numa/page_census.h"

#include <fmt/core.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <numeric>

namespace tierfs::numa {

namespace {

// Pages looked at per mapping: bounds the address space and the arrays
// whatever the file's size.
constexpr uint64_t kWindowPages = 16384;

void set_error(std::error_code& error, std::string& what, std::string call) {
  error = std::error_code(errno, std::system_category());
  what = std::move(call);
}

// Faults in [first, first + count) of the window, pages known to be in memory,
// so that move_pages sees them in this process's page tables.
bool populate(std::byte* base, uint64_t first, uint64_t count, uint64_t page_bytes) {
  std::byte* start = base + first * page_bytes;
  if (madvise(start, count * page_bytes, MADV_POPULATE_READ) == 0) return true;
  if (errno != EINVAL) return false;
  // Before 5.14: touch one byte a page.
  for (uint64_t i = 0; i < count; ++i)
    (void)*static_cast<volatile std::byte*>(start + i * page_bytes);
  return true;
}

// The nodes of the window's pages, -1 where the file has none in memory.
bool window_nodes(int fd, uint64_t first_page, uint64_t pages, uint64_t page_bytes,
                  std::vector<int>& nodes, std::error_code& error, std::string& what) {
  const uint64_t length = pages * page_bytes;
  void* mapped =
      mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(first_page * page_bytes));
  if (mapped == MAP_FAILED) {
    set_error(error, what, "mmap");
    return false;
  }
  auto* base = static_cast<std::byte*>(mapped);
  std::vector<unsigned char> resident(pages);
  std::vector<void*> addresses;
  std::vector<uint64_t> indexes;
  bool ok = mincore(base, length, resident.data()) == 0;
  if (!ok) set_error(error, what, "mincore");
  for (uint64_t i = 0; ok && i < pages;) {
    if ((resident[i] & 1) == 0) {
      ++i;
      continue;
    }
    uint64_t end = i;
    while (end < pages && (resident[end] & 1) != 0) ++end;
    if (!populate(base, i, end - i, page_bytes)) {
      set_error(error, what, "madvise(MADV_POPULATE_READ)");
      ok = false;
    }
    for (uint64_t p = i; p < end; ++p) {
      addresses.push_back(base + p * page_bytes);
      indexes.push_back(p);
    }
    i = end;
  }
  std::vector<int> status(addresses.size(), -1);
  if (ok && !addresses.empty() &&
      move_pages(0, addresses.size(), addresses.data(), nullptr, status.data(), 0) != 0) {
    set_error(error, what, "move_pages");
    ok = false;
  }
  munmap(mapped, length);
  if (!ok) return false;
  nodes.assign(pages, -1);
  // A negative status (-ENOENT: not mapped after all, -EFAULT) is no page.
  for (size_t k = 0; k < indexes.size(); ++k) nodes[indexes[k]] = std::max(status[k], -1);
  return true;
}

}  // namespace

uint64_t PageCensus::bytes_on(int node) const {
  auto it = pages_per_node.find(node);
  return it == pages_per_node.end() ? 0 : it->second * page_bytes;
}

double PageCensus::share(int node) const {
  if (populated_pages == 0) return 0;
  auto it = pages_per_node.find(node);
  return it == pages_per_node.end()
             ? 0
             : static_cast<double>(it->second) / static_cast<double>(populated_pages);
}

std::map<uint64_t, uint64_t> PageCensus::run_lengths() const {
  std::map<uint64_t, uint64_t> lengths;
  for (const auto& run : runs) ++lengths[run.pages];
  return lengths;
}

PageCensus census_from_nodes(const std::vector<int>& page_nodes, uint64_t page_bytes) {
  PageCensus census;
  census.page_bytes = page_bytes;
  census.file_pages = page_nodes.size();
  for (uint64_t page = 0; page < page_nodes.size(); ++page) {
    const int node = page_nodes[page];
    if (node < 0) continue;
    ++census.populated_pages;
    ++census.pages_per_node[node];
    auto& runs = census.runs;
    if (!runs.empty() && runs.back().node == node &&
        runs.back().first_page + runs.back().pages == page)
      ++runs.back().pages;
    else
      runs.push_back(PageRun{page, 1, node});
  }
  return census;
}

PageCensus take_page_census(int fd, std::error_code& error, std::string& what) {
  error.clear();
  what.clear();
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    set_error(error, what, "fstat");
    return {};
  }
  const auto page_bytes = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t file_pages = (static_cast<uint64_t>(st.st_size) + page_bytes - 1) / page_bytes;
  std::vector<int> nodes(file_pages, -1);
  std::vector<int> window;
  for (uint64_t first = 0; first < file_pages; first += kWindowPages) {
    const uint64_t pages = std::min(kWindowPages, file_pages - first);
    if (!window_nodes(fd, first, pages, page_bytes, window, error, what)) return {};
    std::copy(window.begin(), window.end(), nodes.begin() + static_cast<ptrdiff_t>(first));
  }
  return census_from_nodes(nodes, page_bytes);
}

std::vector<std::string> placement_problems(const PageCensus& census,
                                            const PlacementTarget& target) {
  std::vector<std::string> problems;
  if (census.populated_pages == 0) {
    problems.emplace_back("no page of the file is in memory");
    return problems;
  }
  const unsigned total_weight =
      std::accumulate(target.node_weights.begin(), target.node_weights.end(), 0U,
                      [](unsigned sum, const auto& entry) { return sum + entry.second; });
  for (const auto& [node, pages] : census.pages_per_node)
    if (target.node_weights.count(node) == 0)
      problems.push_back(fmt::format(
          "{} pages are on node {}, which is not one of the tier's nodes", pages, node));
  for (const auto& [node, weight] : target.node_weights) {
    const double expected = static_cast<double>(census.populated_pages) * weight / total_weight;
    const auto it = census.pages_per_node.find(node);
    const uint64_t have = it == census.pages_per_node.end() ? 0 : it->second;
    if (std::abs(static_cast<double>(have) - expected) > target.tolerance * expected)
      problems.push_back(fmt::format(
          "node {} holds {} of {} pages ({:.1f} %); weight {} of {} wants {:.0f} ({:.1f} %), "
          "within {:.0f} %",
          node, have, census.populated_pages, 100.0 * census.share(node), weight, total_weight,
          expected, 100.0 * weight / total_weight, 100 * target.tolerance));
  }

  const uint64_t unit = std::max<uint64_t>(1, target.granularity_bytes / census.page_bytes);
  const auto& runs = census.runs;
  for (size_t i = 0; i < runs.size(); ++i) {
    const PageRun& run = runs[i];
    const uint64_t end = run.first_page + run.pages;
    // A run is cut where a hole or the file's start or end bounds it instead
    // of another run.
    const bool cut_before = run.first_page == 0 || i == 0 ||
                            runs[i - 1].first_page + runs[i - 1].pages != run.first_page;
    const bool cut_after =
        end == census.file_pages || i + 1 == runs.size() || runs[i + 1].first_page != end;
    const auto weight = target.node_weights.find(run.node);
    std::string wrong;
    if (!cut_before && run.first_page % unit != 0)
      wrong = fmt::format("starts off a {}-page boundary", unit);
    else if (!cut_after && end % unit != 0)
      wrong = fmt::format("ends off a {}-page boundary", unit);
    else if (!cut_before && !cut_after && target.node_weights.size() > 1 &&
             weight != target.node_weights.end() && run.pages != weight->second * unit)
      wrong = fmt::format("is not weight {} x {} pages long", weight->second, unit);
    if (wrong.empty()) continue;
    problems.push_back(fmt::format("the run of {} pages on node {} at page {} {}", run.pages,
                                   run.node, run.first_page, wrong));
    if (problems.size() >= 20) {
      problems.emplace_back("(more runs are wrong; only the first are listed)");
      break;
    }
  }
  return problems;
}

std::vector<std::string> describe_census(const PageCensus& census) {
  std::vector<std::string> lines;
  lines.push_back(fmt::format("{} of {} pages in memory ({} B pages)", census.populated_pages,
                              census.file_pages, census.page_bytes));
  for (const auto& [node, pages] : census.pages_per_node)
    lines.push_back(fmt::format("node {}: {} pages, {} B, {:.1f} %", node, pages,
                                pages * census.page_bytes, 100.0 * census.share(node)));
  std::string runs = "runs:";
  for (const auto& [pages, count] : census.run_lengths())
    runs += fmt::format(" {} x {} page{}", count, pages, pages == 1 ? "" : "s");
  lines.push_back(census.runs.empty() ? "runs: none" : runs);
  return lines;
}

}  // namespace tierfs::numa
