// FileData: the extents of one file and the data operations on them. Every
// address comes from tierfs_map_extent (bpf/tierfs_map.h): walk() loops over
// its runs the way the kernel's iomap iterator would.
//
// Extents start where the file's hole started, rounded down to a row of their
// tier, and cover whole rows unless the next extent cuts them short. Rows are
// zero when handed out (Tier::allocate_rows), so bytes of an extent that were
// never written read as zeros without any bookkeeping.
//
// Preallocation: a write that appends past the last extent takes as many rows
// again as the file already has (at most 64MiB, at most an eighth of what the
// tier has free), so a sequential writer's file stays one extent that grows.
// Rows past the end of the file are given back by truncate() and release(),
// and those that only preallocation took by trim_preallocation() when the
// last writable handle closes (requested_end_ tells them from fallocate's).
//
// The BPF maps hear of a change of the extents once per operation, and only
// when they changed: an overwrite in place costs no map update, and the
// unlink of a file it never heard of no map delete.
#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "tierfs/core/file_data.h"

namespace tierfs {
namespace {

constexpr uint64_t kMaxPreallocBytes = uint64_t{64} << 20;
constexpr size_t kZeroBytes = size_t{1} << 20;
// Holes are answered with pointers into this; the kernel only reads it.
alignas(4096) const std::byte kZeros[kZeroBytes] = {};

uint64_t end_of(const tierfs_extent& e) {
  return e.file_offset + e.length;
}

uint64_t div_up(uint64_t value, uint64_t unit) {
  return value / unit + (value % unit != 0);
}

// Extents still start on a row of their tier here.
uint64_t first_row_of(const Tier& tier, const tierfs_extent& e) {
  return e.tier_address / tier.row_bytes();
}
uint64_t extent_rows(const Tier& tier, const tierfs_extent& e) {
  return div_up(e.length, tier.row_bytes());
}

// Index of the first extent that ends after `off`.
size_t first_ending_after(const std::vector<tierfs_extent>& extents, uint64_t off) {
  return static_cast<size_t>(
      std::partition_point(extents.begin(), extents.end(),
                           [off](const tierfs_extent& e) { return end_of(e) <= off; }) -
      extents.begin());
}

}  // namespace

void FileData::set_preferred_tier(uint32_t tier) {
  preferred_tier_ = tier;
}
uint32_t FileData::preferred_tier() const {
  return preferred_tier_;
}
void FileData::set_ino(uint64_t ino) {
  ino_ = ino;
}
std::span<const tierfs_extent> FileData::extents() const {
  return extents_;
}

template <typename Visit>
int64_t FileData::walk(Storage& storage, uint64_t off, uint64_t len, bool allocate, Visit&& visit) {
  if (len > std::numeric_limits<uint64_t>::max() - off) return -EFBIG;
  uint64_t done = 0;
  size_t i = first_ending_after(extents_, off);
  while (done < len) {
    const uint64_t pos = off + done;
    if (i < extents_.size() && extents_[i].file_offset <= pos) {
      const tierfs_extent& e = extents_[i];
      Tier& tier = storage.tier(e.tier);
      const uint64_t stop = std::min<uint64_t>(end_of(e), off + len);
      for (uint64_t at = pos; at < stop;) {
        tierfs_mapping m{};
        if (tierfs_map_extent(&tier.layout(), &e, at, &m) != TIERFS_MAP_OK) return -EIO;
        const uint64_t n = std::min<uint64_t>(m.length, stop - at);
        visit(tier.at(m.region, m.region_offset), n, e.tier);
        at += n;
      }
      done = stop - off;
      ++i;
      continue;
    }
    const uint64_t hole_end =
        i < extents_.size() ? extents_[i].file_offset : std::numeric_limits<uint64_t>::max();
    if (!allocate) {
      const uint64_t n = std::min<uint64_t>(hole_end - pos, len - done);
      visit(nullptr, n, preferred_tier_);
      done += n;
      continue;
    }
    if (int err = fill_hole(storage, i, pos, len - done, hole_end)) {
      if (done > 0) break;
      return err;
    }
    i = first_ending_after(extents_, pos);
  }
  return static_cast<int64_t>(done);
}

int FileData::fill_hole(Storage& storage, size_t index, uint64_t pos, uint64_t len,
                        uint64_t hole_end) {
  tierfs_extent* prev = index > 0 ? &extents_[index - 1] : nullptr;
  const bool appending = hole_end == std::numeric_limits<uint64_t>::max();
  const size_t tiers = storage.tier_count();
  uint64_t allocated = 0;
  for (const tierfs_extent& e : extents_) allocated += e.length;
  // The preferred tier first, then down the ranking (spill), then the faster tiers.
  for (size_t step = 0; step < tiers; ++step) {
    const uint32_t t = static_cast<uint32_t>((preferred_tier_ + step) % tiers);
    Tier& tier = storage.tier(t);
    const uint64_t row = tier.row_bytes();
    uint64_t prealloc = 0;
    if (appending)
      prealloc = std::min<uint64_t>({div_up(std::min<uint64_t>(allocated, kMaxPreallocBytes), row),
                                     tier.rows().free_rows() / 8});

    if (prev != nullptr && prev->tier == t && end_of(*prev) == pos) {
      // Grow the extent before the hole: its rows continue in the tier when they are free.
      const uint64_t have = extent_rows(tier, *prev);
      if (have * row > prev->length) {  // rows it has but did not cover (it was cut short before)
        prev->length = std::min<uint64_t>(have * row, hole_end - prev->file_offset);
        extents_dirty_ = true;
        return 0;
      }
      const uint64_t limit = div_up(hole_end - prev->file_offset, row) - have;
      RowRange rows{first_row_of(tier, *prev), have};
      const uint64_t got =
          tier.extend_rows(rows, std::min<uint64_t>(div_up(len, row) + prealloc, limit));
      if (got > 0) {
        prev->length = std::min<uint64_t>((have + got) * row, hole_end - prev->file_offset);
        extents_dirty_ = true;
        return 0;
      }
    }

    uint64_t start = pos / row * row;
    if (prev != nullptr && start < end_of(*prev)) start = end_of(*prev);
    const uint64_t limit = div_up(hole_end - start, row);
    const uint64_t want = std::min<uint64_t>(div_up(pos + len - start, row) + prealloc, limit);
    const uint64_t hint = prev != nullptr && prev->tier == t
                              ? first_row_of(tier, *prev) + extent_rows(tier, *prev)
                              : 0;
    auto rows = tier.allocate_rows(want, hint);
    if (!rows) continue;
    const tierfs_extent added{start, std::min<uint64_t>(rows->count * row, hole_end - start),
                              rows->first * row, t, 0};
    extents_.insert(extents_.begin() + static_cast<ptrdiff_t>(index), added);
    merge_neighbours(storage);
    extents_dirty_ = true;
    return 0;
  }
  return -ENOSPC;
}

// Joins extents that continue each other in the file and in the tier's rows.
void FileData::merge_neighbours(Storage& storage) {
  for (size_t i = 1; i < extents_.size();) {
    tierfs_extent& a = extents_[i - 1];
    const tierfs_extent& b = extents_[i];
    const Tier& tier = storage.tier(a.tier);
    const uint64_t rows = extent_rows(tier, a);
    if (a.tier == b.tier && end_of(a) == b.file_offset && rows * tier.row_bytes() == a.length &&
        a.tier_address + a.length == b.tier_address) {
      a.length += b.length;
      extents_.erase(extents_.begin() + static_cast<ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void FileData::changed(Storage& storage) {
  if (!extents_dirty_) return;
  extents_dirty_ = false;
  if (bpf::IomapMaps* maps = storage.maps()) {
    maps->set_extents(ino_, extents_);
    maps_heard_ = true;
  }
}

int64_t FileData::read(Storage& storage, uint64_t off, uint64_t size, uint64_t file_size,
                       std::vector<iovec>& out) {
  if (off >= file_size || size == 0) return 0;
  const uint64_t len = std::min<uint64_t>(size, file_size - off);
  std::array<uint64_t, 64> bytes_per_tier{};
  const int64_t done =
      walk(storage, off, len, false, [&](std::byte* data, uint64_t n, uint32_t tier) {
        if (data == nullptr) {
          for (uint64_t left = n; left > 0;) {
            const uint64_t piece = std::min<uint64_t>(left, kZeroBytes);
            out.push_back({const_cast<std::byte*>(kZeros), piece});
            left -= piece;
          }
          return;
        }
        bytes_per_tier[tier % bytes_per_tier.size()] += n;
        if (!out.empty() &&
            static_cast<std::byte*>(out.back().iov_base) + out.back().iov_len == data)
          out.back().iov_len += n;  // adjacent runs, e.g. consecutive rows of a one-way tier
        else
          out.push_back({data, n});
      });
  for (size_t t = 0; t < storage.tier_count() && t < bytes_per_tier.size(); ++t)
    if (bytes_per_tier[t] > 0) storage.tier(t).count_read(bytes_per_tier[t]);
  return done;
}

int64_t FileData::write(Storage& storage, uint64_t off, std::span<const iovec> in) {
  uint64_t len = 0;
  for (const iovec& v : in) len += v.iov_len;
  if (len == 0) return 0;
  size_t piece = 0;
  uint64_t piece_off = 0;
  std::array<uint64_t, 64> bytes_per_tier{};
  const int64_t done =
      walk(storage, off, len, true, [&](std::byte* data, uint64_t n, uint32_t tier) {
        bytes_per_tier[tier % bytes_per_tier.size()] += n;
        while (n > 0) {
          const uint64_t take = std::min<uint64_t>(n, in[piece].iov_len - piece_off);
          std::memcpy(data, static_cast<const std::byte*>(in[piece].iov_base) + piece_off, take);
          data += take;
          n -= take;
          piece_off += take;
          if (piece_off == in[piece].iov_len) {
            ++piece;
            piece_off = 0;
          }
        }
      });
  for (size_t t = 0; t < storage.tier_count() && t < bytes_per_tier.size(); ++t)
    if (bytes_per_tier[t] > 0) storage.tier(t).count_write(bytes_per_tier[t]);
  if (done > 0) requested_end_ = std::max<uint64_t>(requested_end_, off + done);
  changed(storage);
  return done;
}

int FileData::allocate(Storage& storage, uint64_t off, uint64_t len) {
  const int64_t done = walk(storage, off, len, true, [](std::byte*, uint64_t, uint32_t) {});
  if (done > 0) requested_end_ = std::max<uint64_t>(requested_end_, off + done);
  changed(storage);
  if (done < 0) return static_cast<int>(done);
  return static_cast<uint64_t>(done) == len ? 0 : -ENOSPC;
}

int FileData::zero_range(Storage& storage, uint64_t off, uint64_t len) {
  const int64_t done = walk(storage, off, len, true,
                            [](std::byte* data, uint64_t n, uint32_t) { std::memset(data, 0, n); });
  if (done > 0) requested_end_ = std::max<uint64_t>(requested_end_, off + done);
  changed(storage);
  if (done < 0) return static_cast<int>(done);
  return static_cast<uint64_t>(done) == len ? 0 : -ENOSPC;
}

void FileData::zero_bytes(Storage& storage, const tierfs_extent& extent, uint64_t off,
                          uint64_t len) {
  Tier& tier = storage.tier(extent.tier);
  for (uint64_t at = off; at < off + len;) {
    tierfs_mapping m{};
    if (tierfs_map_extent(&tier.layout(), &extent, at, &m) != TIERFS_MAP_OK) return;
    const uint64_t n = std::min<uint64_t>(m.length, off + len - at);
    std::memset(tier.at(m.region, m.region_offset), 0, n);
    at += n;
  }
}

void FileData::remove_range(Storage& storage, uint64_t off, uint64_t len) {
  const uint64_t end = len > std::numeric_limits<uint64_t>::max() - off
                           ? std::numeric_limits<uint64_t>::max()
                           : off + len;
  std::vector<tierfs_extent> kept;
  kept.reserve(extents_.size() + 1);
  for (const tierfs_extent& e : extents_) {
    if (end_of(e) <= off || e.file_offset >= end) {
      kept.push_back(e);
      continue;
    }
    extents_dirty_ = true;
    Tier& tier = storage.tier(e.tier);
    const uint64_t row = tier.row_bytes();
    const uint64_t rows = extent_rows(tier, e);
    const uint64_t a =
        std::max<uint64_t>(off, e.file_offset) - e.file_offset;  // removed bytes, relative
    const uint64_t b = std::min<uint64_t>(end, end_of(e)) - e.file_offset;
    const uint64_t left_rows = div_up(a, row);  // rows that keep bytes before a
    const uint64_t right_row =
        b >= e.length ? rows : b / row;  // first row that keeps bytes after b
    if (left_rows >= right_row) {  // no whole row inside: the bytes become zeros, the rows stay
      zero_bytes(storage, e, e.file_offset + a, b - a);
      kept.push_back(e);
      continue;
    }
    if (a < left_rows * row)
      zero_bytes(storage, e, e.file_offset + a, std::min<uint64_t>(left_rows * row, e.length) - a);
    if (right_row < rows && right_row * row < b)
      zero_bytes(storage, e, e.file_offset + right_row * row, b - right_row * row);
    tier.free_rows(RowRange{first_row_of(tier, e) + left_rows, right_row - left_rows});
    if (left_rows > 0)
      kept.push_back({e.file_offset, std::min<uint64_t>(left_rows * row, e.length), e.tier_address,
                      e.tier, e.flags});
    if (right_row < rows)
      kept.push_back({e.file_offset + right_row * row, e.length - right_row * row,
                      e.tier_address + right_row * row, e.tier, e.flags});
  }
  extents_ = std::move(kept);
}

int FileData::punch_hole(Storage& storage, uint64_t off, uint64_t len) {
  remove_range(storage, off, len);
  changed(storage);
  return 0;
}

void FileData::truncate(Storage& storage, uint64_t new_size) {
  remove_range(storage, new_size, std::numeric_limits<uint64_t>::max() - new_size);
  requested_end_ = std::min(requested_end_, new_size);
  changed(storage);
}

void FileData::trim_preallocation(Storage& storage, uint64_t file_size) {
  const uint64_t keep = std::max(requested_end_, file_size);
  // Only the last extents can reach past `keep`: the list is sorted.
  while (!extents_.empty() && end_of(extents_.back()) > keep) {
    tierfs_extent& e = extents_.back();
    Tier& tier = storage.tier(e.tier);
    const uint64_t row = tier.row_bytes();
    const uint64_t rows = extent_rows(tier, e);
    const uint64_t kept_rows = e.file_offset >= keep ? 0 : div_up(keep - e.file_offset, row);
    if (kept_rows >= rows) break;  // it ends inside the row that holds `keep`
    tier.free_rows(RowRange{first_row_of(tier, e) + kept_rows, rows - kept_rows});
    extents_dirty_ = true;
    if (kept_rows > 0) {
      e.length = std::min<uint64_t>(e.length, kept_rows * row);
      break;
    }
    extents_.pop_back();
  }
  changed(storage);
}

void FileData::release(Storage& storage) {
  for (const tierfs_extent& e : extents_) {
    Tier& tier = storage.tier(e.tier);
    tier.free_rows(RowRange{first_row_of(tier, e), extent_rows(tier, e)});
  }
  extents_.clear();
  requested_end_ = 0;
  extents_dirty_ = false;
  // A file that never had extents is unknown to the maps: no map delete per unlink.
  if (bpf::IomapMaps* maps = storage.maps(); maps && maps_heard_) maps->remove_inode(ino_);
  maps_heard_ = false;
}

int64_t FileData::seek_data(uint64_t off, uint64_t file_size) const {
  if (off >= file_size) return -ENXIO;
  const size_t i = first_ending_after(extents_, off);
  if (i == extents_.size()) return -ENXIO;
  const uint64_t at = std::max<uint64_t>(off, extents_[i].file_offset);
  return at < file_size ? static_cast<int64_t>(at) : -ENXIO;
}

int64_t FileData::seek_hole(uint64_t off, uint64_t file_size) const {
  if (off >= file_size) return -ENXIO;
  uint64_t at = off;
  for (size_t i = first_ending_after(extents_, off);
       i < extents_.size() && extents_[i].file_offset <= at; ++i)
    at = end_of(extents_[i]);
  return static_cast<int64_t>(std::min<uint64_t>(at, file_size));
}

uint64_t FileData::allocated_bytes() const {
  uint64_t total = 0;
  for (const tierfs_extent& e : extents_) total += e.length;
  return total;
}

}  // namespace tierfs
