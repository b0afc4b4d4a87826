// FileData: the extents of one file and the data operations on them. Every
// address comes from tierfs_map_extent (bpf/tierfs_map.h): walk() loops over
// its runs the way the kernel's iomap iterator would.
//
// Extents are 4 KiB-granular: file offset, length and tier address are
// multiples of 4 KiB and an extent owns exactly the blocks it covers, so a
// file costs its allocated bytes rounded up to 4 KiB, and st_blocks and
// statfs are exact. Blocks are zero when handed out (Tier::allocate_blocks),
// so bytes of an extent that were never written read as zeros without any
// bookkeeping. A file that is or will be larger than a row of its tier asks
// for runs that start on a row at the file offset's phase, so its rows
// interleave fully, as they would with row allocation.
//
// Preallocation: a write that appends past the last extent takes as much
// again as the file already holds (at most 64MiB, at most an eighth of what
// the tier has free), so a sequential writer's file stays one extent that
// grows, and a 1 KiB log reserves 4 KiB, not megabytes. Blocks past the end
// of the file are given back by truncate() and release(), and those that only
// preallocation took by trim_preallocation() when the last writable handle
// closes (requested_end_ tells them from fallocate's).
//
// Blocks no write has touched yet (fresh, or taken by preallocation) get a
// write's bytes by pwritev on the region's shared-memory object
// (Tier::write_through_file): the kernel then fills whole pages without
// zeroing them first. Everything else is a guarded copy through the mapping.
//
// A call that fails gives back what it took: fallocate and zero_range every
// block they added, a short write the blocks past its last written byte.
//
// The BPF maps hear of a change of the extents once per operation, and only
// when they changed: an overwrite in place costs no map update, and the
// unlink of a file it never heard of no map delete.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "tierfs/core/file_data.h"

#include "tierfs/core/copy_guard.h"
#include "tierfs/core/journal.h"
#include "tierfs/core/request_traffic.h"

namespace tierfs {
namespace {

constexpr uint64_t kMaxPreallocBytes = uint64_t{64} << 20;
constexpr size_t kZeroBytes = size_t{1} << 20;
// Holes are answered with pointers into this; the kernel only reads it.
alignas(4096) const std::byte kZeros[kZeroBytes] = {};

// A read the server answers for a kernel-path file (a handle without
// passthrough): into a buffer of the calling thread, which the caller's
// reply uses before that thread reads again.
int64_t read_backing(const BackingFile& backing, uint64_t off, uint64_t size,
                     std::vector<iovec>& out) {
  thread_local std::vector<char> buffer;
  const int64_t n = backing.read(off, size, buffer);
  if (n > 0) out.push_back({buffer.data(), static_cast<size_t>(n)});
  return n;
}

uint64_t end_of(const tierfs_extent& e) {
  return e.file_offset + e.length;
}

uint64_t div_up(uint64_t value, uint64_t unit) {
  return value / unit + (value % unit != 0);
}

uint64_t round_down(uint64_t value) {
  return value / kBlockBytes * kBlockBytes;
}
// Offsets stay below 2^63 (off_t), so rounding up cannot wrap.
uint64_t round_up(uint64_t value) {
  return div_up(value, kBlockBytes) * kBlockBytes;
}

BlockRange blocks_of(const tierfs_extent& e) {
  return {e.tier_address / kBlockBytes, e.length / kBlockBytes};
}

// The file ranges the running operation allocated, so a failed call can give
// them back. Per thread: the caller holds the inode's lock for the whole call.
struct FileRange {
  uint64_t off, len;
};
thread_local std::vector<FileRange> fresh_ranges;

void note_fresh(uint64_t off, uint64_t len) {
  if (!fresh_ranges.empty() && fresh_ranges.back().off + fresh_ranges.back().len == off)
    fresh_ranges.back().len += len;
  else
    fresh_ranges.push_back({off, len});
}

// Whether the running operation allocated all of [off, off + len).
bool is_fresh(uint64_t off, uint64_t len) {
  return std::any_of(fresh_ranges.begin(), fresh_ranges.end(), [&](const FileRange& r) {
    return r.off <= off && off + len <= r.off + r.len;
  });
}

// Index of the first extent that ends after `off`.
size_t first_ending_after(const std::vector<tierfs_extent>& extents, uint64_t off) {
  return static_cast<size_t>(
      std::partition_point(extents.begin(), extents.end(),
                           [off](const tierfs_extent& e) { return end_of(e) <= off; }) -
      extents.begin());
}

// Whether extents cover every byte of [off, off + len) (an overwrite in place).
bool covered(const std::vector<tierfs_extent>& extents, uint64_t off, uint64_t len) {
  uint64_t pos = off;
  for (size_t i = first_ending_after(extents, off); i < extents.size() && pos < off + len; ++i) {
    if (extents[i].file_offset > pos) return false;
    pos = end_of(extents[i]);
  }
  return pos >= off + len;
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

void FileData::attach_backing(std::unique_ptr<BackingFile> backing) {
  backing_ = std::move(backing);
}
uint64_t FileData::size(uint64_t recorded) const {
  return backing_ ? backing_->facts().size : recorded;
}
int FileData::extend(uint64_t new_size) {
  return backing_ && backing_->facts().size < new_size ? backing_->set_size(new_size) : 0;
}
int FileData::set_mtime(int64_t ns) {
  return backing_ ? backing_->set_mtime(ns) : 0;
}
bool FileData::stamp_now(bool data, int64_t& mtime_ns, int64_t& ctime_ns) {
  if (!backing_ || backing_->stamp_now(data) != 0) return false;
  const BackingFile::Facts facts = backing_->facts();
  if (facts.ctime_ns == 0) return false;  // gone meanwhile: the caller's clock then
  if (data) mtime_ns = facts.mtime_ns;
  ctime_ns = facts.ctime_ns;
  return true;
}
int FileData::set_atime(int64_t ns) {
  return backing_ ? backing_->set_atime(ns) : 0;
}
// A kernel-path read is the kernel's: it moves the backing file's atime
// (relatime, as tmpfs does), never the server's record.
int64_t FileData::atime_ns(int64_t recorded) const {
  return backing_ ? std::max(recorded, backing_->facts().atime_ns) : recorded;
}
int64_t FileData::mtime_ns(int64_t recorded) const {
  return backing_ ? std::max(recorded, backing_->facts().mtime_ns) : recorded;
}
int64_t FileData::ctime_ns(int64_t recorded) const {
  return backing_ ? std::max(recorded, backing_->facts().ctime_ns) : recorded;
}
FileData::Attrs FileData::attrs(const Attrs& recorded) const {
  if (!backing_)
    return {recorded.size, allocated_bytes(), recorded.atime_ns, recorded.mtime_ns,
            recorded.ctime_ns};
  const BackingFile::Facts facts = backing_->facts();
  return {facts.size, facts.allocated_bytes, std::max(recorded.atime_ns, facts.atime_ns),
          std::max(recorded.mtime_ns, facts.mtime_ns), std::max(recorded.ctime_ns, facts.ctime_ns)};
}

template <typename Visit>
int64_t FileData::walk(Storage& storage, uint64_t off, uint64_t len, bool allocate,
                       bool preallocate, Visit&& visit) {
  if (len > std::numeric_limits<uint64_t>::max() - off) return -EFBIG;
  if (allocate) note_change(off, off + len);
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
        visit(tier.at(m.region, m.region_offset), n, e.tier, m.region);
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
      visit(nullptr, n, preferred_tier_, 0u);
      done += n;
      continue;
    }
    if (int err = fill_hole(storage, i, pos, len - done, hole_end, preallocate)) {
      if (done > 0) break;
      return err;
    }
    i = first_ending_after(extents_, pos);
  }
  return static_cast<int64_t>(done);
}

int FileData::fill_hole(Storage& storage, size_t index, uint64_t pos, uint64_t len,
                        uint64_t hole_end, bool preallocate) {
  tierfs_extent* prev = index > 0 ? &extents_[index - 1] : nullptr;
  const bool appending = preallocate && hole_end == std::numeric_limits<uint64_t>::max();
  uint64_t start = round_down(pos);
  if (prev != nullptr && start < end_of(*prev)) start = end_of(*prev);
  // Blocks up to the end of the range, never into the next extent.
  const uint64_t limit = (std::min(hole_end, round_up(pos + len)) - start) / kBlockBytes;
  const uint64_t needed = (round_up(pos + len) - start) / kBlockBytes;
  const uint64_t held = allocated_bytes();
  const size_t tiers = storage.tier_count();
  int err = -ENOSPC;  // -EIO once a tier's fresh blocks faulted when zeroed
  // The preferred tier first, then down the ranking (spill), then the faster tiers.
  for (size_t step = 0; step < (spill_ ? tiers : 1); ++step) {
    const uint32_t t = static_cast<uint32_t>((preferred_tier_ + step) % tiers);
    Tier& tier = storage.tier(t);
    uint64_t prealloc = 0;
    if (appending)
      prealloc = std::min<uint64_t>(
          {std::min(held, kMaxPreallocBytes) / kBlockBytes, tier.blocks().free_blocks() / 8});
    const uint64_t want = appending ? needed + prealloc : std::min(needed, limit);
    const bool same_tier = prev != nullptr && prev->tier == t;

    if (same_tier && end_of(*prev) == start) {
      // Grow the extent before the hole: its blocks continue in the tier when they are free.
      BlockRange blocks = blocks_of(*prev);
      int grow_err = 0;
      if (const uint64_t got = tier.extend_blocks(blocks, want, &grow_err)) {
        note_fresh(end_of(*prev), got * kBlockBytes);
        prev->length += got * kBlockBytes;
        mark_dirty();
        return 0;
      }
      if (grow_err == -EIO) err = -EIO;
    }
    // A file that is or will be larger than a row gets runs that start on a
    // row at its offset's phase: its rows interleave as row allocation's did.
    const uint64_t row = tier.row_bytes();
    const bool large = start + want * kBlockBytes >= row;
    BlockRequest request{want, same_tier ? blocks_of(*prev).end() : BlockRequest::kNoHint,
                         large ? tier.row_blocks() : 1, large ? start % row / kBlockBytes : 0};
    int tier_err = 0;
    auto blocks = tier.allocate_blocks(request, &tier_err);
    if (!blocks) {
      if (tier_err == -EIO) err = -EIO;
      continue;
    }
    const tierfs_extent added{start, blocks->count * kBlockBytes, blocks->first * kBlockBytes, t,
                              0};
    note_fresh(start, added.length);
    extents_.insert(extents_.begin() + static_cast<ptrdiff_t>(index), added);
    merge_neighbours();
    mark_dirty();
    return 0;
  }
  return err;
}

// Joins extents that continue each other in the file and in the tier's address space.
void FileData::merge_neighbours() {
  for (size_t i = 1; i < extents_.size();) {
    tierfs_extent& a = extents_[i - 1];
    const tierfs_extent& b = extents_[i];
    if (a.tier == b.tier && end_of(a) == b.file_offset &&
        a.tier_address + a.length == b.tier_address) {
      a.length += b.length;
      extents_.erase(extents_.begin() + static_cast<ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void FileData::free_later(Storage& storage, uint32_t tier, BlockRange range) {
  // A migration's copy target (no inode number) is no file the log knows.
  if (storage.journal() != nullptr && ino_ != 0)
    deferred_.push_back({tier, range});
  else
    storage.tier(tier).free_blocks(range);
}

void FileData::free_deferred(Storage& storage) {
  if (deferred_.empty()) return;
  crash_point("free.after_log");
  for (const DeferredFree& f : deferred_) storage.tier(f.tier).free_blocks(f.blocks);
  deferred_.clear();
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
  if (backing_) return read_backing(*backing_, off, size, out);
  if (off >= file_size || size == 0) return 0;
  const uint64_t len = std::min<uint64_t>(size, file_size - off);
  RequestTraffic traffic;
  const int64_t done =
      walk(storage, off, len, false, false,
           [&](std::byte* data, uint64_t n, uint32_t tier, uint32_t region) {
             if (data == nullptr) {
               for (uint64_t left = n; left > 0;) {
                 const uint64_t piece = std::min<uint64_t>(left, kZeroBytes);
                 out.push_back({const_cast<std::byte*>(kZeros), piece});
                 left -= piece;
               }
               return;
             }
             traffic.add(tier, region, n);
             if (!out.empty() &&
                 static_cast<std::byte*>(out.back().iov_base) + out.back().iov_len == data)
               out.back().iov_len += n;  // adjacent runs, e.g. consecutive rows of a one-way tier
             else
               out.push_back({data, n});
           });
  traffic.count_reads(storage);
  return done;
}

int64_t FileData::write(Storage& storage, uint64_t off, std::span<const iovec> in) {
  if (backing_) {
    // A migration off the kernel path copies the backing file: it must hear
    // of the writes the server makes (the kernel's own are excluded there).
    const int64_t done = backing_->write(off, in);
    if (done > 0) note_change(off, off + static_cast<uint64_t>(done));
    return done;
  }
  uint64_t len = 0;
  for (const iovec& v : in) len += v.iov_len;
  if (len == 0) return 0;
  // Where the copy is in `in`.
  size_t piece = 0;
  uint64_t piece_off = 0;
  auto advance = [&](uint64_t bytes) {
    piece_off += bytes;
    while (piece < in.size() && piece_off >= in[piece].iov_len) {
      piece_off -= in[piece].iov_len;
      ++piece;
    }
  };
  RequestTraffic traffic;
  fresh_ranges.clear();
  bool faulted = false;
  // A migration's copy target (no inode number) is no file the log knows.
  Journal* journal = ino_ != 0 ? storage.journal() : nullptr;
  uint64_t copy_len = len;
  if (journal != nullptr && covered(extents_, off, len)) {
    note_change(off, off + len);  // nothing to allocate or log: straight to the copy
    crash_point("write.before_copy");
  } else if (journal != nullptr) {
    // Blocks first, logged before any byte lands in them: a block that holds
    // bytes is never free at replay, so no other file can be handed them.
    const uint64_t version = extents_version_;
    const int64_t got =
        walk(storage, off, len, true, true, [](std::byte*, uint64_t, uint32_t, uint32_t) {});
    if (got < 0) {
      give_back_fresh(storage, 0);
      changed(storage);
      return got;
    }
    copy_len = static_cast<uint64_t>(got);
    if (copy_len < len) give_back_fresh(storage, off + copy_len);
    if (extents_version_ != version) {
      thread_local RecordBuilder records;
      records.clear();
      records.extents(ino_, extents_.data(), extents_.size());
      journal->commit(records);
    }
    crash_point("write.before_copy");
  }
  // Blocks no write has touched since they were handed out: the ones this
  // call allocated, and those past every range ever written, fallocated or
  // zeroed (append preallocation). They take the bytes by write(2) on the
  // region's object (Tier::write_through_file), everything else by a copy.
  const uint64_t untouched_from = round_up(requested_end_);
  uint64_t at_file = off;
  const int64_t done =
      walk(storage, off, copy_len, journal == nullptr, true,
           [&](std::byte* data, uint64_t n, uint32_t tier, uint32_t region) {
             traffic.add(tier, region, n);
             const bool untouched = at_file >= untouched_from || is_fresh(at_file, n);
             at_file += n;
             if (untouched && !faulted) {
               thread_local std::vector<iovec> parts;
               parts.clear();
               size_t p = piece;
               uint64_t p_off = piece_off;
               for (uint64_t left = n; left > 0; ++p, p_off = 0) {
                 const uint64_t take = std::min<uint64_t>(left, in[p].iov_len - p_off);
                 parts.push_back({static_cast<std::byte*>(in[p].iov_base) + p_off, take});
                 left -= take;
               }
               const uint64_t wrote = storage.tier(tier).write_through_file(region, data, parts);
               data += wrote;
               n -= wrote;
               advance(wrote);
             }
             while (n > 0 && !faulted) {
               const uint64_t take = std::min<uint64_t>(n, in[piece].iov_len - piece_off);
               // A SIGBUS in the copy (memory error, backing storage gone) fails
               // this request with EIO and retires the block; the server lives.
               if (const void* at = guarded_copy(
                       data, static_cast<const std::byte*>(in[piece].iov_base) + piece_off, take)) {
                 storage.tier(tier).mark_bad(region, static_cast<const std::byte*>(at));
                 faulted = true;
                 break;
               }
               data += take;
               n -= take;
               advance(take);
             }
           });
  traffic.count_writes(storage);
  if (faulted) {
    give_back_fresh(storage, 0);  // bad blocks among them stay out of use
    changed(storage);
    return -EIO;
  }
  if (done > 0) requested_end_ = std::max<uint64_t>(requested_end_, off + done);
  // Short or failed: the blocks it took past its last written byte go back.
  if (done < static_cast<int64_t>(len)) give_back_fresh(storage, done > 0 ? off + done : 0);
  changed(storage);
  return done;
}

void FileData::give_back_fresh(Storage& storage, uint64_t from) {
  from = round_up(from);
  for (const FileRange& r : fresh_ranges) {
    const uint64_t begin = std::max(r.off, from);
    if (begin < r.off + r.len) remove_range(storage, begin, r.off + r.len - begin);
  }
  fresh_ranges.clear();
}

int FileData::allocate(Storage& storage, uint64_t off, uint64_t len) {
  if (backing_) {
    note_change(off, off + len);
    return backing_->allocate(off, len);
  }
  fresh_ranges.clear();
  const int64_t done =
      walk(storage, off, len, true, false, [](std::byte*, uint64_t, uint32_t, uint32_t) {});
  if (done < 0 || static_cast<uint64_t>(done) != len) {
    give_back_fresh(storage, 0);  // a failed fallocate keeps nothing
    changed(storage);
    return done < 0 ? static_cast<int>(done) : -ENOSPC;
  }
  requested_end_ = std::max<uint64_t>(requested_end_, off + len);
  changed(storage);
  return 0;
}

int FileData::zero_range(Storage& storage, uint64_t off, uint64_t len) {
  if (backing_) {
    note_change(off, off + len);
    return backing_->zero_range(off, len);
  }
  fresh_ranges.clear();
  bool faulted = false;
  const int64_t done = walk(storage, off, len, true, false,
                            [&](std::byte* data, uint64_t n, uint32_t tier, uint32_t region) {
                              // A SIGBUS fails the request with EIO (copy_guard.h).
                              if (!faulted && !storage.tier(tier).zero_memory(region, data, n))
                                faulted = true;
                            });
  if (faulted || done < 0 || static_cast<uint64_t>(done) != len) {
    give_back_fresh(storage, 0);
    changed(storage);
    return faulted ? -EIO : done < 0 ? static_cast<int>(done) : -ENOSPC;
  }
  requested_end_ = std::max<uint64_t>(requested_end_, off + len);
  changed(storage);
  return 0;
}

bool FileData::zero_bytes(Storage& storage, const tierfs_extent& extent, uint64_t off,
                          uint64_t len) {
  Tier& tier = storage.tier(extent.tier);
  bool ok = true;
  for (uint64_t at = off; at < off + len;) {
    tierfs_mapping m{};
    if (tierfs_map_extent(&tier.layout(), &extent, at, &m) != TIERFS_MAP_OK) return false;
    const uint64_t n = std::min<uint64_t>(m.length, off + len - at);
    ok = tier.zero_memory(m.region, tier.at(m.region, m.region_offset), n) && ok;
    at += n;
  }
  return ok;
}

int FileData::zero_partial_blocks(Storage& storage, uint64_t off, uint64_t end) {
  bool ok = true;
  auto zero = [&](uint64_t from, uint64_t to) {
    if (from >= to) return;
    const size_t i = first_ending_after(extents_, from);
    if (i < extents_.size() && extents_[i].file_offset < to) {
      const tierfs_extent& e = extents_[i];
      const uint64_t a = std::max<uint64_t>(from, e.file_offset), b = std::min(to, end_of(e));
      if (a < b) ok = zero_bytes(storage, e, a, b - a) && ok;
    }
  };
  // The blocks at either edge that the removal keeps: at most one extent each
  // (an edge lies inside one block, and extents are block-granular).
  const uint64_t head_end = std::min(end, round_up(off));
  zero(off, head_end);
  if (end != std::numeric_limits<uint64_t>::max()) zero(std::max(head_end, round_down(end)), end);
  return ok ? 0 : -EIO;
}

void FileData::remove_range(Storage& storage, uint64_t off, uint64_t len) {
  const uint64_t end = len > std::numeric_limits<uint64_t>::max() - off
                           ? std::numeric_limits<uint64_t>::max()
                           : off + len;
  note_change(off, end);
  std::vector<tierfs_extent> kept;
  kept.reserve(extents_.size() + 1);
  for (const tierfs_extent& e : extents_) {
    if (end_of(e) <= off || e.file_offset >= end) {
      kept.push_back(e);
      continue;
    }
    mark_dirty();
    const uint64_t a = std::max<uint64_t>(off, e.file_offset) - e.file_offset;  // relative
    const uint64_t b = std::min<uint64_t>(end, end_of(e)) - e.file_offset;
    const uint64_t left = round_up(a);  // bytes kept before the removed blocks
    const uint64_t right = b >= e.length ? e.length : round_down(b);  // kept from here on
    // The partial blocks at the edges were zeroed first (zero_partial_blocks).
    if (left >= right) {  // no whole block inside: the block stays
      kept.push_back(e);
      continue;
    }
    free_later(storage, e.tier,
               BlockRange{(e.tier_address + left) / kBlockBytes, (right - left) / kBlockBytes});
    if (left > 0) kept.push_back({e.file_offset, left, e.tier_address, e.tier, e.flags});
    if (right < e.length)
      kept.push_back(
          {e.file_offset + right, e.length - right, e.tier_address + right, e.tier, e.flags});
  }
  extents_ = std::move(kept);
}

int FileData::punch_hole(Storage& storage, uint64_t off, uint64_t len) {
  if (backing_) {
    note_change(off, off + len);
    return backing_->punch_hole(off, len);
  }
  const uint64_t end = len > std::numeric_limits<uint64_t>::max() - off
                           ? std::numeric_limits<uint64_t>::max()
                           : off + len;
  // Zeroing the edges can fault (copy_guard.h): then nothing is removed.
  if (int err = zero_partial_blocks(storage, off, end)) return err;
  remove_range(storage, off, len);
  changed(storage);
  return 0;
}

int FileData::truncate(Storage& storage, uint64_t new_size) {
  if (backing_) {
    note_change(new_size, std::numeric_limits<uint64_t>::max());
    return backing_->set_size(new_size);
  }
  if (int err = zero_partial_blocks(storage, new_size, std::numeric_limits<uint64_t>::max()))
    return err;
  remove_range(storage, new_size, std::numeric_limits<uint64_t>::max() - new_size);
  requested_end_ = std::min(requested_end_, new_size);
  changed(storage);
  return 0;
}

void FileData::trim_preallocation(Storage& storage, uint64_t file_size) {
  const uint64_t keep = round_up(std::max(requested_end_, file_size));
  // Only the last extents can reach past `keep`: the list is sorted.
  if (!extents_.empty() && end_of(extents_.back()) > keep)
    remove_range(storage, keep, std::numeric_limits<uint64_t>::max() - keep);
  changed(storage);
}

void FileData::release(Storage& storage) {
  if (backing_) backing_->remove();
  for (const tierfs_extent& e : extents_) free_later(storage, e.tier, blocks_of(e));
  if (!extents_.empty()) ++extents_version_;
  extents_.clear();
  requested_end_ = 0;
  extents_dirty_ = false;
  // A file that never had extents is unknown to the maps: no map delete per unlink.
  if (bpf::IomapMaps* maps = storage.maps(); maps && maps_heard_) maps->remove_inode(ino_);
  maps_heard_ = false;
}

void FileData::note_change(uint64_t off, uint64_t end) {
  if (!watching_) return;
  // Adjacent or overlapping with the last range (sequential writes): one range.
  if (!changes_.empty() && off <= changes_.back().end && end >= changes_.back().off) {
    changes_.back().off = std::min(changes_.back().off, off);
    changes_.back().end = std::max(changes_.back().end, end);
    return;
  }
  // Bounded: past this many, one range that covers them all.
  constexpr size_t kMaxChanges = 4096;
  if (changes_.size() == kMaxChanges) {
    ChangedRange all{off, end};
    for (const ChangedRange& r : changes_)
      all = {std::min(all.off, r.off), std::max(all.end, r.end)};
    changes_.assign(1, all);
    return;
  }
  changes_.push_back({off, end});
}

void FileData::watch_changes(bool on) {
  watching_ = on;
  changes_.clear();
}

bool FileData::watching_changes() const {
  return watching_;
}

std::vector<FileData::ChangedRange> FileData::take_changes() {
  std::vector<ChangedRange> out;
  out.swap(changes_);
  return out;
}

void FileData::set_spill(bool spill) {
  spill_ = spill;
}

int FileData::copy_to(Storage& storage, FileData& target, uint64_t off, uint64_t end,
                      bool copy_bytes) const {
  for (size_t i = first_ending_after(extents_, off);
       i < extents_.size() && extents_[i].file_offset < end; ++i) {
    const tierfs_extent& e = extents_[i];
    const Tier& source = storage.tier(e.tier);
    const uint64_t from = std::max<uint64_t>(off, e.file_offset);
    const uint64_t to = std::min<uint64_t>(end, end_of(e));
    uint64_t at = from;  // the source byte the next target run takes
    bool mapped = true, faulted = false;
    const int64_t done =
        target.walk(storage, from, to - from, true, false,
                    [&](std::byte* data, uint64_t n, uint32_t tier, uint32_t region) {
                      if (!copy_bytes) return;
                      while (n > 0 && mapped && !faulted) {
                        tierfs_mapping m{};
                        mapped = tierfs_map_extent(&source.layout(), &e, at, &m) == TIERFS_MAP_OK;
                        const uint64_t piece = std::min<uint64_t>(m.length, n);
                        // A SIGBUS on either side fails the move with EIO (copy_guard.h).
                        if (mapped)
                          if (const void* fault =
                                  guarded_copy(data, source.at(m.region, m.region_offset), piece)) {
                            const auto* at_fault = static_cast<const std::byte*>(fault);
                            if (!storage.tier(e.tier).mark_bad(m.region, at_fault))
                              storage.tier(tier).mark_bad(region, at_fault);
                            faulted = true;
                            return;
                          }
                        data += piece;
                        at += piece;
                        n -= piece;
                      }
                    });
    if (!mapped || faulted) return -EIO;
    if (done < 0) return static_cast<int>(done);
    if (static_cast<uint64_t>(done) != to - from) return -ENOSPC;
  }
  return 0;
}

void FileData::discard(Storage& storage, uint64_t off, uint64_t end) {
  if (end > off) remove_range(storage, off, end - off);
}

void FileData::adopt_extents(Storage& storage, FileData& target,
                             const std::function<void()>& log_switch) {
  std::vector<tierfs_extent> old = std::move(extents_);
  extents_ = std::move(target.extents_);
  target.extents_.clear();
  extents_dirty_ = true;
  changed(storage);
  mark_dirty();
  // The switch is logged (one record of the new extent list) before the old
  // blocks go back: at replay no block is owned twice.
  if (log_switch) {
    log_switch();
  } else if (Journal* journal = storage.journal(); journal != nullptr && ino_ != 0) {
    thread_local RecordBuilder records;
    records.clear();
    records.extents(ino_, extents_.data(), extents_.size());
    journal->commit(records);
  }
  crash_point("migrate.after_switch_log");
  for (const tierfs_extent& e : old) storage.tier(e.tier).free_blocks(blocks_of(e));
}

int64_t FileData::seek_data(uint64_t off, uint64_t file_size) const {
  if (backing_) return backing_->seek(off, SEEK_DATA);
  if (off >= file_size) return -ENXIO;
  const size_t i = first_ending_after(extents_, off);
  if (i == extents_.size()) return -ENXIO;
  const uint64_t at = std::max<uint64_t>(off, extents_[i].file_offset);
  return at < file_size ? static_cast<int64_t>(at) : -ENXIO;
}

int64_t FileData::seek_hole(uint64_t off, uint64_t file_size) const {
  if (backing_) return backing_->seek(off, SEEK_HOLE);
  if (off >= file_size) return -ENXIO;
  uint64_t at = off;
  for (size_t i = first_ending_after(extents_, off);
       i < extents_.size() && extents_[i].file_offset <= at; ++i)
    at = end_of(extents_[i]);
  return static_cast<int64_t>(std::min<uint64_t>(at, file_size));
}

uint64_t FileData::allocated_bytes() const {
  if (backing_) return backing_->facts().allocated_bytes;
  uint64_t total = 0;
  for (const tierfs_extent& e : extents_) total += e.length;
  return total;
}

}  // namespace tierfs
