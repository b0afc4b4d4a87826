// The kernel's rules for an iomap_begin answer, as a test oracle: what
// fuse_iomap_begin_validate (fs/fuse/fuse_iomap.c of the fuse-iomap series)
// checks after the server or a BPF program answered, and what
// fuse_iomap_begin then does with a write. The kernel fails the I/O with
// EFSCORRUPTED, without falling back to the server, when an answer breaks
// one; the tests run every answer of the BPF program, of its C++ compile and
// of the server's own answer through this. Both generations: the Feb 2026
// one (the BPF hook) and the May 2026 one (stripes, renumbered types and op
// flags, fs/fuse/fuse_iomap.c at 0d91ba1028c4). Written from reading the
// tree, not copied.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernel/fuse_iomap_abi.h"
#include "kernel/iomap_generation.h"

namespace tierfs::kernel {

// struct fuse_iomap_io and struct fuse_iomap_begin_out, member for member.
// Plain aggregates (no member initializers) so that they stay trivially
// copyable from the BPF structs of the same layout.
struct IomapIo {
  uint64_t offset;
  uint64_t length;
  uint64_t addr;
  uint16_t type;
  uint16_t flags;
  uint32_t dev;
};
struct IomapBeginOut {
  IomapIo read;
  IomapIo write;
};
static_assert(sizeof(IomapIo) == 32 && sizeof(IomapBeginOut) == 64, "uapi layout");

struct IomapRules {
  const IomapGeneration* generation = &kFeb2026;  // whose numbers the answer uses
  uint64_t block_size = TIERFS_IOMAP_BLOCK_SIZE;  // i_blocksize(inode)
  uint64_t max_bytes = TIERFS_IOMAP_MAX_BYTES;    // inode->i_sb->s_maxbytes
  bool mapping_cache = false;  // the inode caches mappings (RETRY_CACHE allowed); tierfs: no
  // Beyond the validator, what a write does with the answer: through a
  // PURE_OVERWRITE write mapping the kernel writes via the read mapping, so a
  // WRITE or WRITEBACK answered HOLE would write the data nowhere.
  bool write_target = true;
  // Beyond the validator: iomap turns addr into sectors (addr >> 9) without a
  // check, so a device address that is not block-aligned reads the wrong bytes.
  bool device_alignment = true;
};

// Empty when the kernel accepts the answer to iomap_begin(pos, opflags);
// otherwise the first rule it breaks, one line, naming the mapping and field.
std::string iomap_begin_violation(const IomapBeginOut& out, uint32_t opflags, uint64_t pos,
                                  const IomapRules& rules = {});

// The op flag sets the kernel sends (fs/iomap callers through
// fuse_iomap_op_to_server), for tests that walk all of them.
struct IomapOpSet {
  const char* name;
  uint32_t opflags;
};
// The Feb 2026 generation's (the BPF program's) sets.
extern const IomapOpSet kIomapOpSets[];
extern const size_t kIomapOpSetCount;
// The same sets in a generation's numbers (writeback differs).
std::vector<IomapOpSet> iomap_op_sets(const IomapGeneration& generation);

}  // namespace tierfs::kernel
