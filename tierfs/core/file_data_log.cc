// FileData and the metadata log: taking over replayed extents, and making a
// file's bytes durable for fsync per region kind (file: msync, dax: cache
// lines written back; numa: memory is the medium, nothing to do).
#include <cpuid.h>
#include <fmt/format.h>
#include <immintrin.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "tierfs/core/file_data.h"

namespace tierfs {

namespace {

// clflushopt where the CPU has it (weakly ordered, one sfence at the end),
// clflush otherwise. CLWB would keep the lines cached; its intrinsic needs a
// target the build does not ask for, and the data path re-reads rarely.
__attribute__((target("clflushopt"))) void flush_lines_opt(const std::byte* p, size_t n) {
  const auto first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  for (uintptr_t line = first; line < reinterpret_cast<uintptr_t>(p) + n; line += 64)
    _mm_clflushopt(reinterpret_cast<void*>(line));  // NOLINT(performance-no-int-to-ptr)
}

void flush_lines(const std::byte* p, size_t n) {
  // CPUID leaf 7, EBX bit 23: CLFLUSHOPT (compilers disagree on the feature-string name).
  static const bool has_opt = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) != 0 && (ebx & (1u << 23)) != 0;
  }();
  if (has_opt) {
    flush_lines_opt(p, n);
  } else {
    const auto first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
    for (uintptr_t line = first; line < reinterpret_cast<uintptr_t>(p) + n; line += 64)
      _mm_clflush(reinterpret_cast<void*>(line));  // NOLINT(performance-no-int-to-ptr)
  }
  _mm_sfence();
}

int persist_run(const numa::Region& region, std::byte* p, size_t n) {
  switch (region.spec().kind) {
    case numa::RegionKind::numa:
      return 0;
    case numa::RegionKind::dax:
      flush_lines(p, n);
      return 0;
    case numa::RegionKind::file: {
      static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
      const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
      const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
      // NOLINTNEXTLINE(performance-no-int-to-ptr)
      return msync(reinterpret_cast<void*>(begin), end - begin, MS_SYNC) == 0 ? 0 : -errno;
    }
  }
  return 0;
}

}  // namespace

std::string FileData::adopt(Storage& storage, std::vector<tierfs_extent> extents) {
  std::sort(extents.begin(), extents.end(), [](const tierfs_extent& a, const tierfs_extent& b) {
    return a.file_offset < b.file_offset;
  });
  for (size_t i = 0; i < extents.size(); ++i) {
    const tierfs_extent& e = extents[i];
    std::string problem;
    if (e.tier >= storage.tier_count())
      problem = fmt::format("tier {} does not exist", e.tier);
    else if (e.length == 0 || e.length % kBlockBytes || e.file_offset % kBlockBytes ||
             e.tier_address % kBlockBytes)
      problem = "not 4KiB-aligned";
    else if (i > 0 && extents[i - 1].file_offset + extents[i - 1].length > e.file_offset)
      problem = "overlaps the extent before it";
    else if (!storage.tier(e.tier).claim_blocks(
                 BlockRange{e.tier_address / kBlockBytes, e.length / kBlockBytes}))
      problem = "blocks outside the tier or owned by another file";
    if (!problem.empty()) {
      for (size_t k = 0; k < i; ++k)
        storage.tier(extents[k].tier)
            .blocks()
            .free(
                BlockRange{extents[k].tier_address / kBlockBytes, extents[k].length / kBlockBytes});
      return fmt::format("extent {} (file offset {}, tier {}, address {}, {} bytes): {}", i,
                         e.file_offset, e.tier, e.tier_address, e.length, problem);
    }
  }
  extents_ = std::move(extents);
  if (!extents_.empty()) {
    const tierfs_extent& last = extents_.back();
    requested_end_ = last.file_offset + last.length;
    mark_dirty();
    changed(storage);
  }
  return {};
}

int FileData::persist(Storage& storage) const {
  int result = 0;
  for (const tierfs_extent& e : extents_) {
    Tier& tier = storage.tier(e.tier);
    for (uint64_t at = e.file_offset; at < e.file_offset + e.length;) {
      tierfs_mapping m{};
      if (tierfs_map_extent(&tier.layout(), &e, at, &m) != TIERFS_MAP_OK) return -EIO;
      const uint64_t n = std::min<uint64_t>(m.length, e.file_offset + e.length - at);
      if (int err = persist_run(tier.region(m.region), tier.at(m.region, m.region_offset), n))
        result = err;
      at += n;
    }
  }
  return result;
}

}  // namespace tierfs
