// fuse_iomap_begin_validate's checks, one by one, in the kernel's order, so
// that the first message is the one the kernel's trace (fuse_iomap_bad_data)
// would name.
#include "kernel/iomap_rules.h"

#include <string>
#include <vector>

namespace tierfs::kernel {
namespace {

bool known_type(uint16_t type, const IomapGeneration& gen) {
  switch (type) {
    case TIERFS_IOMAP_TYPE_HOLE:
    case TIERFS_IOMAP_TYPE_DELALLOC:
    case TIERFS_IOMAP_TYPE_MAPPED:
    case TIERFS_IOMAP_TYPE_UNWRITTEN:
    case TIERFS_IOMAP_TYPE_INLINE:
      return true;
    default:
      return type == gen.pure_overwrite || type == gen.retry_cache || type == gen.nocache ||
             gen.is_stripe_type(type);
  }
}

// fuse_iomap_check_mapping: one mapping on its own. Empty when it passes.
std::string check_mapping(const IomapIo& map, bool write_mapping, const IomapRules& rules) {
  const IomapGeneration& gen = *rules.generation;
  if (!known_type(map.type, gen)) return "unknown type " + std::to_string(map.type);
  if ((map.flags & ~TIERFS_IOMAP_F_ALL) != 0) return "unknown flags " + std::to_string(map.flags);
  if (map.length == 0) return "zero length";
  if (map.offset % rules.block_size != 0)
    return "offset " + std::to_string(map.offset) + " not a multiple of the block size " +
           std::to_string(rules.block_size);
  if (map.length % rules.block_size != 0)
    return "length " + std::to_string(map.length) + " not a multiple of the block size " +
           std::to_string(rules.block_size);
  uint64_t end = 0;
  if (__builtin_add_overflow(map.offset, map.length, &end)) return "offset + length overflows";
  if (map.offset >= rules.max_bytes) return "offset at or past s_maxbytes";
  const bool null_dev = map.dev == TIERFS_IOMAP_DEV_NULL;
  const bool null_addr = map.addr == TIERFS_IOMAP_NULL_ADDR;
  if (map.type == TIERFS_IOMAP_TYPE_MAPPED || map.type == TIERFS_IOMAP_TYPE_UNWRITTEN ||
      gen.is_stripe_type(map.type)) {
    if (null_dev) return "mapped without a device";
    if (null_addr) return "mapped without an address";
  } else if (map.type == TIERFS_IOMAP_TYPE_DELALLOC || map.type == TIERFS_IOMAP_TYPE_HOLE ||
             map.type == TIERFS_IOMAP_TYPE_INLINE) {
    if (!null_dev) return "hole/delalloc/inline with a device";
    if (!null_addr) return "hole/delalloc/inline with an address";
  } else if (map.type == gen.pure_overwrite) {
    if (!write_mapping) return "PURE_OVERWRITE as the read mapping";
    if (map.flags != 0) return "PURE_OVERWRITE with flags";
    if (!null_dev) return "PURE_OVERWRITE with a device";
    if (!null_addr) return "PURE_OVERWRITE with an address";
  } else {  // RETRY_CACHE falls through to NOCACHE's checks, as in the kernel
    if (map.type == gen.retry_cache && !rules.mapping_cache)
      return "RETRY_CACHE without a mapping cache";
    if (map.flags != 0) return "cache instruction with flags";
    if (!null_dev) return "cache instruction with a device";
    if (!null_addr) return "cache instruction with an address";
  }
  if (!null_addr && __builtin_add_overflow(map.addr, map.length, &end))
    return "addr + length overflows";
  return "";
}

}  // namespace

std::string iomap_begin_violation(const IomapBeginOut& out, uint32_t opflags, uint64_t pos,
                                  const IomapRules& rules) {
  if (std::string why = check_mapping(out.read, false, rules); !why.empty())
    return "read mapping: " + why;
  if (std::string why = check_mapping(out.write, true, rules); !why.empty())
    return "write mapping: " + why;
  const IomapGeneration& gen = *rules.generation;
  if (out.read.type == gen.nocache) return "read mapping: NOCACHE in iomap_begin";
  if (out.write.type == gen.nocache) return "write mapping: NOCACHE in iomap_begin";
  // Offsets and lengths were checked above: no overflow in offset + length.
  if (out.read.offset > pos) return "read mapping starts after pos";
  if (out.write.offset > pos) return "write mapping starts after pos";
  if (out.read.offset + out.read.length <= pos) return "read mapping ends before pos";
  if (out.write.offset + out.write.length <= pos) return "write mapping ends before pos";
  // May 2026: no cache retry for ops that bypass the cache (the kernel tests
  // the read mapping there, twice; the write mapping is not looked at).
  if ((opflags & gen.op_nocache_mask) != 0 && out.read.type == gen.retry_cache)
    return "RETRY_CACHE for an op that bypasses the mapping cache";
  const IomapIo& target = out.write.type == gen.pure_overwrite ? out.read : out.write;
  if ((opflags & TIERFS_IOMAP_OP_ATOMIC) != 0) {
    if (target.type != TIERFS_IOMAP_TYPE_MAPPED && target.type != TIERFS_IOMAP_TYPE_UNWRITTEN)
      return "atomic write not to a mapped or unwritten mapping (EIO)";
    if ((target.flags & TIERFS_IOMAP_F_ATOMIC_BIO) == 0)
      return "atomic write without FUSE_IOMAP_F_ATOMIC_BIO (EIO)";
  }
  const bool target_has_space = target.type == TIERFS_IOMAP_TYPE_MAPPED ||
                                target.type == TIERFS_IOMAP_TYPE_UNWRITTEN ||
                                gen.is_stripe_type(target.type);
  if (rules.write_target && (opflags & (TIERFS_IOMAP_OP_WRITE | gen.op_writeback)) != 0 &&
      !target_has_space)
    return "write or writeback through a mapping of type " + std::to_string(target.type) +
           ": the data would be written nowhere";
  if (rules.device_alignment) {
    for (const IomapIo* map : {&out.read, &out.write})
      if (map->addr != TIERFS_IOMAP_NULL_ADDR && map->addr % rules.block_size != 0)
        return std::string(map == &out.read ? "read" : "write") +
               " mapping: device address not block-aligned";
  }
  return "";
}

const IomapOpSet kIomapOpSets[] = {
    {"read", 0},
    {"report", TIERFS_IOMAP_OP_REPORT},
    {"direct read", TIERFS_IOMAP_OP_DIRECT},
    {"fault", TIERFS_IOMAP_OP_FAULT},
    {"write", TIERFS_IOMAP_OP_WRITE},
    {"direct write", TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_DIRECT},
    {"nowait direct write",
     TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_DIRECT | TIERFS_IOMAP_OP_NOWAIT},
    {"zero", TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_ZERO},
    {"zero alone", TIERFS_IOMAP_OP_ZERO},
    {"unshare", TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_UNSHARE},
    {"unshare alone", TIERFS_IOMAP_OP_UNSHARE},
    {"writeback alone", TIERFS_FEB26_IOMAP_OP_WRITEBACK},
    {"page fault write", TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_FAULT},
};
const size_t kIomapOpSetCount = sizeof(kIomapOpSets) / sizeof(kIomapOpSets[0]);

std::vector<IomapOpSet> iomap_op_sets(const IomapGeneration& generation) {
  std::vector<IomapOpSet> sets(kIomapOpSets, kIomapOpSets + kIomapOpSetCount);
  for (IomapOpSet& set : sets)
    if ((set.opflags & TIERFS_FEB26_IOMAP_OP_WRITEBACK) != 0)
      set.opflags = (set.opflags & ~TIERFS_FEB26_IOMAP_OP_WRITEBACK) | generation.op_writeback;
  return sets;
}

}  // namespace tierfs::kernel
