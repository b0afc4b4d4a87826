// iomap_begin_answer: find pos among the extents, then let the shared
// header code map it, and spell the answer in the generation's numbers.
#include "bpf/iomap_answer.h"

#include <algorithm>
#include <cerrno>

#include "bpf/stripe.h"

namespace tierfs::bpf {
namespace {

constexpr uint64_t kBlockMask = TIERFS_IOMAP_BLOCK_SIZE - 1;

// Where pos falls: the extent that holds it, or the hole around it.
tierfs_extent_hit find(std::span<const tierfs_extent> extents, uint64_t pos, size_t& index) {
  tierfs_extent_hit hit{TIERFS_MAX_INODE_EXTENTS, 0, 0, TIERFS_U64_MAX};
  const auto after =
      std::upper_bound(extents.begin(), extents.end(), pos,
                       [](uint64_t p, const tierfs_extent& e) { return p < e.file_offset; });
  index = static_cast<size_t>(after - extents.begin());
  if (after != extents.begin()) {
    const tierfs_extent& e = *(after - 1);
    if (pos - e.file_offset < e.length) {
      index -= 1;
      hit.index = 0;  // the one extent handed to tierfs_iomap_fill
      return hit;
    }
    hit.hole_start = e.file_offset + e.length;
  }
  if (after != extents.end()) hit.hole_end = after->file_offset;
  return hit;
}

kernel::IomapIo to_io(const tierfs_iomap_io& io) {
  return kernel::IomapIo{io.offset, io.length, io.addr, io.type, io.flags, io.dev};
}

// The generation's PURE_OVERWRITE over the read mapping's range.
kernel::IomapIo pure_overwrite(const kernel::IomapIo& read, const kernel::IomapGeneration& gen) {
  return kernel::IomapIo{read.offset,        read.length, TIERFS_IOMAP_NULL_ADDR,
                         gen.pure_overwrite, 0,           TIERFS_IOMAP_DEV_NULL};
}

IomapBeginAnswer error(int err) {
  IomapBeginAnswer answer;
  answer.error = err;
  return answer;
}

}  // namespace

IomapBeginAnswer iomap_begin_answer(std::span<const tierfs_extent> extents,
                                    std::span<const IomapTierTarget> tiers, uint64_t pos,
                                    uint64_t count, uint32_t opflags,
                                    const kernel::IomapGeneration& gen) {
  if (count == 0 || pos >= TIERFS_IOMAP_MAX_BYTES) return error(-EINVAL);
  // tierfs sets no FUSE_ATTR_ATOMIC, and a swapfile's blocks must never move,
  // which migration would do under it.
  if ((opflags & (TIERFS_IOMAP_OP_ATOMIC | gen.op_swapfile)) != 0) return error(-EOPNOTSUPP);
  size_t index = 0;
  const tierfs_extent_hit hit = find(extents, pos, index);
  tierfs_inode_value one{};
  tierfs_iomap_pair pair{};
  IomapBeginAnswer answer;
  if (hit.index >= TIERFS_MAX_INODE_EXTENTS) {
    if ((opflags & (TIERFS_IOMAP_OP_WRITE | gen.op_writeback)) != 0) {
      // The blocks the write touches, up to the next extent.
      const uint64_t start = pos & ~kBlockMask;
      const uint64_t want = std::min<uint64_t>(count, TIERFS_IOMAP_MAX_BYTES - pos);
      const uint64_t end =
          std::min<uint64_t>(hit.hole_end, (pos + want + kBlockMask) & ~kBlockMask);
      if (start < hit.hole_start || end <= start) return error(-EIO);
      answer.allocate = true;
      answer.alloc_offset = start;
      answer.alloc_length = end - start;
      return answer;
    }
    // A read of the hole: the fill's HOLE, asked as a read.
    if (tierfs_iomap_fill(&one, hit, nullptr, pos, count, 0, &pair) != TIERFS_IOMAP_HANDLED)
      return error(-EIO);
    answer.out.read = to_io(pair.read);
    answer.out.write = pure_overwrite(answer.out.read, gen);
    return answer;
  }
  const tierfs_extent& e = extents[index];
  if (e.tier >= tiers.size()) return error(-EIO);
  const IomapTierTarget& tier = tiers[e.tier];
  const bool unwritten = (e.flags & TIERFS_EXTENT_UNWRITTEN) != 0;
  tierfs_stripe_answer stripe{};
  if (gen.stripes && tier.stripe_id != 0 &&
      tierfs_stripe_answer_of(&tier.layout, &e, pos, &stripe) == 0) {
    answer.out.read = kernel::IomapIo{stripe.offset,
                                      stripe.length,
                                      stripe.linear,
                                      unwritten ? gen.unwritten_stripe : gen.mapped_stripe,
                                      0,
                                      tier.stripe_id};
  } else {
    tierfs_tier_value value{};
    value.layout = tier.layout;
    std::copy(tier.device_cookie.begin(), tier.device_cookie.end(), value.device_cookie);
    one.count = 1;
    one.extents[0] = e;
    // Asked as a read: the mapping is the same for a write, which goes
    // through it (PURE_OVERWRITE), reserved space included.
    if (tierfs_iomap_fill(&one, hit, &value, pos, count, 0, &pair) != TIERFS_IOMAP_HANDLED)
      return error(-EIO);
    answer.out.read = to_io(pair.read);
  }
  answer.out.write = pure_overwrite(answer.out.read, gen);
  return answer;
}

}  // namespace tierfs::bpf
