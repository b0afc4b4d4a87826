// In-place moves of a tmpfs file's pages to a new shared policy (see
// file_policy.h, move_file_pages): mbind(MPOL_MF_MOVE_ALL) over windows of
// the file, then move_pages(2) for the pages the first pass leaves on the
// wrong node of the new set.
#include <fcntl.h>
#include <fmt/format.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "numa/file_policy.h"

#ifndef MPOL_WEIGHTED_INTERLEAVE
#define MPOL_WEIGHTED_INTERLEAVE 6
#endif

namespace numa {

namespace {

// Pages looked at per mapping: bounds the address space and the arrays
// whatever the file's size; a multiple of every folio size tmpfs uses, so
// no folio straddles two windows.
constexpr uint64_t kWindowPages = 16384;

std::string errno_line(const char* call) {
  return fmt::format("{} of the backing file: {}", call, std::strerror(errno));
}

// The policy's nodes in ascending order with their weights (1 when equal).
std::vector<std::pair<int, uint32_t>> sorted_nodes(const FilePolicy& policy) {
  std::map<int, uint32_t> by_node;
  const bool weighted = is_weighted(policy);
  for (size_t i = 0; i < policy.nodes.size(); ++i)
    by_node[policy.nodes[i]] =
        weighted && i < policy.weights.size() ? std::max<uint32_t>(policy.weights[i], 1) : 1;
  return {by_node.begin(), by_node.end()};
}

class Window {
 public:
  Window(int fd, uint64_t first_page, uint64_t pages, uint64_t page_bytes)
      : pages_(pages), page_bytes_(page_bytes) {
    void* mapped = mmap(nullptr, pages * page_bytes, PROT_READ, MAP_SHARED, fd,
                        static_cast<off_t>(first_page * page_bytes));
    base_ = mapped == MAP_FAILED ? nullptr : static_cast<std::byte*>(mapped);
  }
  ~Window() {
    if (base_ != nullptr) munmap(base_, pages_ * page_bytes_);
  }
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;

  bool mapped() const { return base_ != nullptr; }
  std::byte* page(uint64_t i) const { return base_ + i * page_bytes_; }
  uint64_t bytes() const { return pages_ * page_bytes_; }

  // The pages the file has in memory, faulted into this mapping (so that
  // mbind's walk and move_pages see them); holes stay holes.
  std::string populate(std::vector<uint64_t>& resident) const {
    std::vector<unsigned char> in_core(pages_);
    if (mincore(base_, bytes(), in_core.data()) != 0) return errno_line("mincore");
    for (uint64_t i = 0; i < pages_;) {
      if ((in_core[i] & 1) == 0) {
        ++i;
        continue;
      }
      uint64_t end = i;
      while (end < pages_ && (in_core[end] & 1) != 0) ++end;
      // EFAULT: the file was truncated meanwhile; those pages are gone.
      if (madvise(page(i), (end - i) * page_bytes_, MADV_POPULATE_READ) != 0 && errno != EFAULT)
        return errno_line("madvise(MADV_POPULATE_READ)");
      for (uint64_t p = i; p < end; ++p) resident.push_back(p);
      i = end;
    }
    return "";
  }

 private:
  std::byte* base_ = nullptr;
  uint64_t pages_;
  uint64_t page_bytes_;
};

// Whether the folio_pages pages at `at` are one folio: their frames are
// consecutive from an aligned one (/proc/self/pagemap; frame numbers need
// CAP_SYS_ADMIN, else they read 0 and `fallback` decides).
bool one_folio(int pagemap_fd, const std::byte* at, uint64_t folio_pages, uint64_t page_bytes,
               bool fallback) {
  if (pagemap_fd < 0) return fallback;
  std::vector<uint64_t> entries(folio_pages);
  const auto offset = static_cast<off_t>(reinterpret_cast<uintptr_t>(at) / page_bytes * 8);
  const auto want = static_cast<ssize_t>(folio_pages * 8);
  if (pread(pagemap_fd, entries.data(), static_cast<size_t>(want), offset) != want) return fallback;
  constexpr uint64_t kPresent = uint64_t{1} << 63, kFrame = (uint64_t{1} << 55) - 1;
  const uint64_t first = entries[0] & kFrame;
  if ((entries[0] & kPresent) == 0 || first == 0) return fallback;
  if (first % folio_pages != 0) return false;
  for (uint64_t i = 1; i < folio_pages; ++i)
    if ((entries[i] & kPresent) == 0 || (entries[i] & kFrame) != first + i) return false;
  return true;
}

// Pass 2 over one window: each resident folio not on its interleave node
// goes there. An aligned group of folio_pages pages is one folio when its
// frames say so (a huge page), or, without frame numbers, when all of it is
// on one node; anything else goes page by page.
std::string place_exactly(const Window& window, uint64_t first_page,
                          const std::vector<uint64_t>& resident, const FilePolicy& policy,
                          uint64_t inode_number, uint64_t folio_pages, int flags, int pagemap_fd,
                          uint64_t page_bytes, PageMoves& moves) {
  std::vector<void*> addresses;
  addresses.reserve(resident.size());
  for (uint64_t p : resident) addresses.push_back(window.page(p));
  std::vector<int> nodes(resident.size(), -1);
  if (move_pages(0, addresses.size(), addresses.data(), nullptr, nodes.data(), 0) != 0)
    return errno_line("move_pages (asking where pages are)");
  std::vector<void*> to_move;
  std::vector<int> targets;
  for (size_t k = 0; k < resident.size();) {
    const uint64_t page = first_page + resident[k];
    size_t group = 1;
    if (folio_pages > 1 && page % folio_pages == 0 && k + folio_pages <= resident.size() &&
        resident[k + folio_pages - 1] == resident[k] + folio_pages - 1) {
      const bool one_node = std::all_of(nodes.begin() + static_cast<ptrdiff_t>(k),
                                        nodes.begin() + static_cast<ptrdiff_t>(k + folio_pages),
                                        [&](int node) { return node == nodes[k]; });
      if (one_node &&
          one_folio(pagemap_fd, window.page(resident[k]), folio_pages, page_bytes, true))
        group = folio_pages;
    }
    const uint64_t index = group > 1 ? page / folio_pages : page;
    const int want = interleave_node(policy, inode_number + index);
    if (nodes[k] >= 0 && nodes[k] != want) {
      to_move.push_back(addresses[k]);
      targets.push_back(want);
    }
    k += group;
  }
  if (to_move.empty()) return "";
  std::vector<int> status(to_move.size(), 0);
  if (move_pages(0, to_move.size(), to_move.data(), targets.data(), status.data(), flags) < 0 &&
      errno != ENOENT)
    return errno_line("move_pages");
  for (size_t i = 0; i < status.size(); ++i) {
    if (status[i] == targets[i])
      ++moves.moved_pages;
    else
      ++moves.left_pages;
  }
  return "";
}

}  // namespace

int interleave_node(const FilePolicy& policy, uint64_t ilx) {
  const auto nodes = sorted_nodes(policy);
  if (nodes.empty()) return -1;
  uint64_t total = 0;
  for (const auto& [node, weight] : nodes) total += weight;
  uint64_t target = ilx % total;
  for (const auto& [node, weight] : nodes) {
    if (target < weight) return node;
    target -= weight;
  }
  return nodes.back().first;
}

std::string move_file_pages(int fd, const FilePolicy& policy, uint64_t folio_bytes,
                            PageMoves& moves) {
  if (std::string error = apply_file_policy(fd, policy, false); !error.empty()) return error;
  struct stat st {};
  if (fstat(fd, &st) != 0) return errno_line("fstat");
  const auto page_bytes = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t folio_pages = std::max<uint64_t>(1, folio_bytes / page_bytes);
  const uint64_t file_pages = (static_cast<uint64_t>(st.st_size) + page_bytes - 1) / page_bytes;
  bitmask* mask = numa_allocate_nodemask();
  for (int node : policy.nodes) numa_bitmask_setbit(mask, static_cast<unsigned>(node));
  const int mode = is_weighted(policy) ? MPOL_WEIGHTED_INTERLEAVE : MPOL_INTERLEAVE;
  const bool own_pagemap = folio_pages > 1 && moves.pagemap_fd < 0;
  const int pagemap_fd = own_pagemap       ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)
                         : folio_pages > 1 ? moves.pagemap_fd
                                           : -1;
  std::string error;
  for (uint64_t first = 0; first < file_pages && error.empty(); first += kWindowPages) {
    const uint64_t pages = std::min(kWindowPages, file_pages - first);
    const Window window(fd, first, pages, page_bytes);
    if (!window.mapped()) {
      error = errno_line("mmap");
      break;
    }
    std::vector<uint64_t> resident;
    if (error = window.populate(resident); !error.empty() || resident.empty()) continue;
    moves.resident_pages += resident.size();
    int flags = moves.move_all ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE;
    long rc = mbind(window.page(0), window.bytes(), mode, mask->maskp, mask->size + 1,
                    static_cast<unsigned>(flags));
    if (rc != 0 && errno == EPERM && moves.move_all) {
      // No CAP_SYS_NICE: pages mapped by other processes stay.
      moves.move_all = false;
      flags = MPOL_MF_MOVE;
      rc = mbind(window.page(0), window.bytes(), mode, mask->maskp, mask->size + 1,
                 static_cast<unsigned>(flags));
    }
    if (rc != 0) {
      error = errno_line("mbind(MPOL_MF_MOVE)");
      break;
    }
    error = place_exactly(window, first, resident, policy, static_cast<uint64_t>(st.st_ino),
                          folio_pages, flags, pagemap_fd, page_bytes, moves);
  }
  if (own_pagemap && pagemap_fd >= 0) close(pagemap_fd);
  numa_free_nodemask(mask);
  return error;
}

}  // namespace numa
