// Tier: regions of one interleave set, the layout that bpf/tierfs_map.h
// computes with, block zeroing, statistics.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>

#include "tierfs/core/tier.h"

#include "tierfs/core/copy_guard.h"
#include "tierfs/core/units.h"

namespace tierfs {

namespace {
// Bad blocks a tier logs one by one before it logs only each doubling of the count.
constexpr uint64_t kBadBlocksLogged = 16;
}  // namespace

Tier::Tier(const TierGeometry& geometry, std::vector<std::unique_ptr<numa::Region>> regions)
    : geometry_(geometry),
      regions_(std::move(regions)),
      blocks_(geometry.capacity_bytes / kBlockBytes) {
  if (regions_.size() != geometry_.regions.size())
    throw std::invalid_argument("Tier: one region per way of the geometry");
  bool fresh_is_zero = true;
  for (size_t i = 0; i < regions_.size(); ++i) {
    fresh_is_zero = fresh_is_zero && regions_[i]->spec().kind == numa::RegionKind::numa;
    reservable_[i] = regions_[i]->reservable() && regions_[i]->fd() >= 0;
    // Reservable numa: regions are /dev/shm objects (hugetlbfs has no write(2)).
    writes_through_file_[i] = reservable_[i] && regions_[i]->spec().kind == numa::RegionKind::numa;
  }
  // Devices and files may hold a previous user's bytes: remember which rows still might.
  if (!fresh_is_zero) untouched_.assign((geometry_.rows + 63) / 64, ~uint64_t{0});
}

Tier::Tier(const TierGeometry& geometry, uint64_t blocks) : geometry_(geometry), blocks_(blocks) {}

std::unique_ptr<Tier> Tier::without_regions(const TierGeometry& geometry) {
  return std::unique_ptr<Tier>(new Tier(geometry, 0));
}

Tier::~Tier() = default;

const std::string& Tier::name() const {
  return geometry_.name;
}
const TierGeometry& Tier::geometry() const {
  return geometry_;
}
const tierfs_layout& Tier::layout() const {
  return geometry_.layout;
}
uint64_t Tier::row_bytes() const {
  return geometry_.row_bytes;
}
uint64_t Tier::row_blocks() const {
  return geometry_.row_bytes / kBlockBytes;
}
uint64_t Tier::granularity_bytes() const {
  return geometry_.granularity_bytes();
}
std::byte* Tier::region_data(uint32_t region) const {
  return regions_[region]->data();
}
std::byte* Tier::at(uint32_t region, uint64_t device_offset) const {
  return regions_[region]->data() + (device_offset - geometry_.layout.base[region]);
}
uint64_t Tier::device_offset_of(uint32_t region, const std::byte* address) const {
  return geometry_.layout.base[region] + static_cast<uint64_t>(address - regions_[region]->data());
}
const numa::Region& Tier::region(uint32_t index) const {
  return *regions_.at(index);
}
uint32_t Tier::ways() const {
  return geometry_.layout.ways;
}
BlockAllocator& Tier::blocks() {
  return blocks_;
}
uint64_t Tier::free_bytes() const {
  return blocks_.free_blocks() * kBlockBytes;
}

// A row is zeroed whole the first time any block of it is handed out: every
// other block of it is free then, and free blocks read as zeros. Bad blocks
// of the row are skipped; one that faults now becomes bad. False when a
// block of `range` itself faulted: the caller's blocks are not all zeros.
bool Tier::zero_untouched(BlockRange range) {
  if (untouched_.empty() || range.count == 0) return true;
  const uint64_t per_row = row_blocks();
  bool ok = true;
  std::lock_guard guard(untouched_lock_);
  for (uint64_t row = range.first / per_row; row <= (range.end() - 1) / per_row; ++row) {
    uint64_t& word = untouched_[row / 64];
    const uint64_t bit = uint64_t{1} << (row % 64);
    if ((word & bit) == 0) continue;
    word &= ~bit;
    const uint64_t before = bad_count_.load(std::memory_order_relaxed);
    // A memset, not discard(): punching would give back the space reserve() just took.
    for (const BlockRange& good : good_runs(BlockRange{row * per_row, per_row}))
      each_region_range(good, [this](uint32_t region, uint64_t device_offset, uint64_t length) {
        zero_memory(region, at(region, device_offset), length);
      });
    if (bad_count_.load(std::memory_order_relaxed) != before && any_bad(range)) ok = false;
  }
  return ok;
}

void Tier::mark_touched(BlockRange range) {
  if (untouched_.empty() || range.count == 0) return;
  const uint64_t per_row = row_blocks();
  std::lock_guard guard(untouched_lock_);
  for (uint64_t row = range.first / per_row; row <= (range.end() - 1) / per_row; ++row)
    untouched_[row / 64] &= ~(uint64_t{1} << (row % 64));
}

int Tier::reserve(BlockRange range) {
  int err = 0;
  each_region_range(range, [&](uint32_t i, uint64_t device_offset, uint64_t length) {
    if (err != 0 || !reservable_[i].load(std::memory_order_relaxed)) return;
    int rc;
    do {
      rc = fallocate(regions_[i]->fd(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(device_offset),
                     static_cast<off_t>(length));
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) return;
    if (errno == EOPNOTSUPP) {
      // Nothing to reserve with here; say so once.
      if (reservable_[i].exchange(false))
        spdlog::warn(
            "region \"{}\" of tier \"{}\": its file system cannot reserve space "
            "(fallocate unsupported); a full file system will fail writes with EIO",
            regions_[i]->spec().text, name());
      return;
    }
    err = -errno;
  });
  return err;
}

std::optional<BlockRange> Tier::allocate_blocks(const BlockRequest& request, int* error) {
  auto range = blocks_.allocate(request);
  if (!range) {
    if (error != nullptr) *error = -ENOSPC;
    return range;
  }
  if (int err = reserve(*range); err != 0) {
    // Whatever part was reserved goes back to the system with the blocks.
    free_blocks(*range);
    if (error != nullptr) *error = err;
    return std::nullopt;
  }
  if (!zero_untouched(*range)) {
    // Backing storage gone or a memory error: EIO, the bad blocks stay out of use.
    free_blocks(*range);
    if (error != nullptr) *error = -EIO;
    return std::nullopt;
  }
  return range;
}

uint64_t Tier::extend_blocks(BlockRange& range, uint64_t count, int* error) {
  const uint64_t old_end = range.end();
  const uint64_t got = blocks_.extend(range, count);
  if (got == 0) return 0;
  const BlockRange added{old_end, got};
  int err = reserve(added);
  if (err == 0 && !zero_untouched(added)) err = -EIO;
  if (err != 0) {
    free_blocks(added);
    range.count -= got;
    if (error != nullptr) *error = err;
    return 0;
  }
  return got;
}

void Tier::discard(uint32_t region_index, uint64_t device_offset, uint64_t length) {
  const numa::Region& region = *regions_[region_index];
  // Punching a hole returns the pages of shared memory and sparse files to
  // the system and reads back as zeros; devices and huge pages get a memset.
  const bool punched =
      region.spec().kind != numa::RegionKind::dax && region.fd() >= 0 &&
      fallocate(region.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(device_offset), static_cast<off_t>(length)) == 0;
  if (!punched) zero_memory(region_index, at(region_index, device_offset), length);
}

bool Tier::zero_memory(uint32_t region, std::byte* data, uint64_t length) {
  struct Span {
    std::byte *begin, *end;
  };
  // memset may store out of order (glibc writes the tail first): after a
  // fault both sides of the faulting page are zeroed again, each guarded.
  std::vector<Span> pending{{data, data + length}};
  bool ok = true;
  while (!pending.empty()) {
    const Span span = pending.back();
    pending.pop_back();
    if (span.begin >= span.end) continue;
    const auto* fault = static_cast<const std::byte*>(
        guarded_zero(span.begin, static_cast<size_t>(span.end - span.begin)));
    if (fault == nullptr) continue;
    ok = false;
    // Outside the span (cannot be: nothing else is touched): stop rather than loop.
    if (fault < span.begin || fault >= span.end || !mark_bad(region, fault)) break;
    const uint64_t in_page = reinterpret_cast<uintptr_t>(fault) % kBlockBytes;
    std::byte* page =
        span.begin + (fault - span.begin) - std::min<uint64_t>(in_page, fault - span.begin);
    std::byte* next = span.begin + (fault - span.begin) + (kBlockBytes - in_page);
    pending.push_back({span.begin, page});
    pending.push_back({std::min(next, span.end), span.end});
  }
  return ok;
}

uint64_t Tier::write_through_file(uint32_t region, const std::byte* data,
                                  std::span<const iovec> parts) {
  if (!writes_through_file_[region].load(std::memory_order_relaxed)) return 0;
  const numa::Region& r = *regions_[region];
  // Device offsets are offsets in the region's object (as for reserve's fallocate).
  auto offset = static_cast<off_t>(device_offset_of(region, data));
  uint64_t done = 0;
  while (!parts.empty()) {
    const size_t count = std::min<size_t>(parts.size(), IOV_MAX);
    uint64_t asked = 0;
    for (size_t i = 0; i < count; ++i) asked += parts[i].iov_len;
    const ssize_t n = pwritev(r.fd(), parts.data(), static_cast<int>(count), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EFAULT && errno != ENOSPC && errno != EIO &&
        writes_through_file_[region].exchange(false)) {
      // Refused, not failed (a seccomp filter, an object that takes no
      // write(2)): copies from now on, slower for new files; say so once.
      spdlog::warn(
          "region \"{}\" of tier \"{}\": new blocks are copied through the mapping, "
          "pwritev failed: {}",
          r.spec().text, name(), std::strerror(errno));
    }
    if (n > 0) done += static_cast<uint64_t>(n);
    // Failed or short (shared memory that was reserved does neither but on
    // a signal or a region cut short): the caller's guarded copy does the rest.
    if (n < 0 || static_cast<uint64_t>(n) < asked) break;
    offset += n;
    parts = parts.subspan(count);
  }
  return done;
}

void Tier::each_region_range(BlockRange range,
                             const std::function<void(uint32_t, uint64_t, uint64_t)>& fn) const {
  const uint64_t row = geometry_.row_bytes;
  const uint64_t begin = range.first * kBlockBytes, end = range.end() * kBlockBytes;
  const uint64_t whole_first = std::min(end, (begin + row - 1) / row * row);
  const uint64_t whole_end = std::max(whole_first, end / row * row);
  // Partial rows at either edge, unit by unit through the one mapping.
  auto pieces = [&](uint64_t from, uint64_t to) {
    if (from >= to) return;
    const tierfs_extent span{0, to - from, from, 0, 0};
    for (uint64_t off = 0; off < span.length;) {
      tierfs_mapping m{};
      if (tierfs_map_extent(&geometry_.layout, &span, off, &m) != TIERFS_MAP_OK)
        throw std::logic_error("Tier: an address outside the tier");
      fn(m.region, m.region_offset, m.length);
      off += m.length;
    }
  };
  pieces(begin, whole_first);
  // Whole rows are one range in every region.
  if (whole_end > whole_first) {
    for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
      const uint64_t region_row = tierfs_region_row_bytes(&geometry_.layout, i);
      fn(i, geometry_.layout.base[i] + whole_first / row * region_row,
         (whole_end - whole_first) / row * region_row);
    }
  }
  pieces(whole_end, end);
}

void Tier::zero_blocks(BlockRange range) {
  each_region_range(range, [this](uint32_t region, uint64_t device_offset, uint64_t length) {
    discard(region, device_offset, length);
  });
}

void Tier::zero_good_blocks(BlockRange range) {
  for (const BlockRange& good : good_runs(range)) zero_blocks(good);
}

bool Tier::any_bad(BlockRange range) const {
  if (bad_count_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard guard(bad_lock_);
  const auto bad = bad_.lower_bound(range.first);
  return bad != bad_.end() && *bad < range.end();
}

std::vector<BlockRange> Tier::good_runs(BlockRange range) const {
  if (bad_count_.load(std::memory_order_relaxed) == 0) return {range};
  std::vector<BlockRange> out;
  std::lock_guard guard(bad_lock_);
  uint64_t from = range.first;
  for (auto bad = bad_.lower_bound(range.first); bad != bad_.end() && *bad < range.end(); ++bad) {
    if (*bad > from) out.push_back(BlockRange{from, *bad - from});
    from = *bad + 1;
  }
  if (from < range.end()) out.push_back(BlockRange{from, range.end() - from});
  return out;
}

void Tier::free_blocks(BlockRange range) {
  if (range.count == 0) return;
  // A persistent tier's files outlive the server: unmount keeps their bytes.
  const bool keep_bytes = persistent_ && unmounting_.load();
  // Bad blocks are neither touched again (that could fault outside a guarded
  // copy) nor handed out again; a block whose zeroing faults now joins them.
  if (!keep_bytes) zero_good_blocks(range);
  for (const BlockRange& good : good_runs(range)) blocks_.free(good);
}

void Tier::set_persistent(bool persistent) {
  persistent_ = persistent;
}
bool Tier::persistent() const {
  return persistent_;
}
void Tier::prepare_unmount() {
  unmounting_ = true;
}

bool Tier::mark_bad(uint32_t region, const std::byte* address) {
  if (region >= regions_.size()) return false;  // no such region, or none mapped (kernel path)
  const std::byte* data = region_data(region);
  if (address < data || address >= data + geometry_.regions[region].bytes)
    return false;  // the fault was not in this region (the request's own buffer)
  const uint64_t device_offset = device_offset_of(region, address);
  // The inverse mapping over the whole tier: the tier address is the offset.
  const tierfs_extent everything{0, geometry_.capacity_bytes, 0, 0, 0};
  __u64 tier_address = 0;
  if (tierfs_unmap_extent(&geometry_.layout, &everything, region, device_offset, &tier_address) !=
      TIERFS_MAP_OK)
    return false;
  const uint64_t block = tier_address / kBlockBytes;
  uint64_t count = 0;
  {
    std::lock_guard guard(bad_lock_);
    if (!bad_.insert(block).second) return true;
    count = bad_count_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  // A failing device or a backing file cut short can fault block after
  // block: the first ones are logged one by one, then only each doubling.
  if (count <= kBadBlocksLogged) {
    spdlog::error(
        "tier \"{}\": block {} (region \"{}\" offset {}) is bad: a copy or zeroing took a "
        "SIGBUS there; the request failed with EIO and the block is out of use{}",
        name(), block, regions_[region]->spec().text, device_offset,
        count == kBadBlocksLogged ? " (further bad blocks are counted in `tierfs stats`; the "
                                    "log says so again at each doubling)"
                                  : "");
  } else if ((count & (count - 1)) == 0) {
    spdlog::error("tier \"{}\": {} bad blocks ({}), the latest in region \"{}\"", name(), count,
                  format_size_approx(count * kBlockBytes), regions_[region]->spec().text);
  }
  // A free block (a neighbour in a row being zeroed, scrubbed at replay) is
  // taken out of the allocator so it is never handed out; a block a file or
  // the caller holds stays held, and free_blocks never gives it back.
  blocks_.claim(BlockRange{block, 1});
  return true;
}

uint64_t Tier::bad_blocks() const {
  std::lock_guard guard(bad_lock_);
  return bad_.size();
}

std::vector<BlockRange> Tier::bad_runs() const {
  std::vector<BlockRange> out;
  std::lock_guard guard(bad_lock_);
  for (const uint64_t block : bad_) {
    if (!out.empty() && out.back().end() == block)
      ++out.back().count;
    else
      out.push_back(BlockRange{block, 1});
  }
  return out;
}

namespace {

// Adds one request to `ops` and `bytes` of the tier and of each region it reached.
template <typename Counter>
void count_request(const Tier::RegionBytes& bytes_per_region, uint32_t ways, Counter&& counter) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < ways; ++i) {
    if (bytes_per_region[i] == 0) continue;
    counter(static_cast<int>(i), bytes_per_region[i]);
    total += bytes_per_region[i];
  }
  if (total > 0) counter(-1, total);
}

}  // namespace

void Tier::count_read(const RegionBytes& bytes_per_region) {
  count_request(bytes_per_region, ways(), [this](int region, uint64_t bytes) {
    Traffic& t = region < 0 ? traffic_ : region_traffic_[region];
    t.reads.fetch_add(1, std::memory_order_relaxed);
    t.bytes_read.fetch_add(bytes, std::memory_order_relaxed);
  });
}

void Tier::count_write(const RegionBytes& bytes_per_region) {
  count_request(bytes_per_region, ways(), [this](int region, uint64_t bytes) {
    Traffic& t = region < 0 ? traffic_ : region_traffic_[region];
    t.writes.fetch_add(1, std::memory_order_relaxed);
    t.bytes_written.fetch_add(bytes, std::memory_order_relaxed);
  });
}

namespace {

template <typename Stats, typename Traffic>
void load_traffic(const Traffic& t, Stats& s) {
  s.bytes_read = t.bytes_read.load(std::memory_order_relaxed);
  s.bytes_written = t.bytes_written.load(std::memory_order_relaxed);
  s.reads = t.reads.load(std::memory_order_relaxed);
  s.writes = t.writes.load(std::memory_order_relaxed);
}

}  // namespace

TierStats Tier::stats() const {
  TierStats s;
  s.name = geometry_.name;
  s.granularity_bytes = granularity_bytes();
  s.ways = geometry_.layout.ways;
  s.row_bytes = geometry_.row_bytes;
  const uint64_t used = (blocks_.total_blocks() - blocks_.free_blocks()) * kBlockBytes;
  s.capacity_bytes = geometry_.capacity_bytes;
  s.used_bytes = used;
  s.bad_bytes = bad_blocks() * kBlockBytes;
  s.persistent = persistent_;
  // Each region's share of the used bytes by its weight: exact for whole
  // rows, within a row for the partial ones (walking every extent is not worth it).
  const uint32_t units = tierfs_row_units(&geometry_.layout);
  for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
    // Without mapped regions (kernel path) the configured spec says it.
    const numa::RegionSpec& spec = geometry_.regions[i].spec;
    RegionStats& r = s.regions.emplace_back(RegionStats{
        spec.text, geometry_.regions[i].bytes, used / units * geometry_.layout.weights[i],
        i < regions_.size() ? regions_[i]->numa_node()
                            : (spec.kind == numa::RegionKind::numa ? spec.node : -1)});
    load_traffic(region_traffic_[i], r);
  }
  load_traffic(traffic_, s);
  return s;
}

}  // namespace tierfs
