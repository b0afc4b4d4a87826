/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What the server writes into the BPF maps and how the iomap programs read
 * it, written once for clang -target bpf and g++: the tier and inode map
 * values, the extent lookup, and tierfs_iomap_fill, THE function that turns
 * a file position into the read/write fuse_iomap_io pair. The struct_ops
 * program, its syscall twin, the libfuse FUSE_IOMAP_BEGIN path and the C++
 * equivalence check all call it; the interleave arithmetic itself stays in
 * tierfs_map.h.
 */
#ifndef TIERFS_BPF_IOMAP_H
#define TIERFS_BPF_IOMAP_H

#include "tierfs_map.h"

#define TIERFS_MAX_TIERS 16
/* An inode with more extents than this is not in the map: the server answers. */
#define TIERFS_MAX_INODE_EXTENTS 16
#define TIERFS_MAX_MAPPED_INODES 65536

/* Every number of the fuse-iomap interface (types, op flags, block size) lives here. */
#include "kernel/fuse_iomap_abi.h"

/* Value of the tier map (array, key = tier index). */
struct tierfs_tier_value {
	struct tierfs_layout layout;
	/* FUSE_DEV_IOC_BACKING_OPEN cookie of region i; 0 = not registered -> fallback */
	__u32 device_cookie[TIERFS_MAX_WAYS];
};

/* Value of the inode map (hash, key = FUSE nodeid): extents sorted by file offset. */
struct tierfs_inode_value {
	__u32 count;
	__u32 reserved;
	struct tierfs_extent extents[TIERFS_MAX_INODE_EXTENTS];
};

/* Same layout as the series' struct fuse_iomap_io; copied field by field into it. */
struct tierfs_iomap_io {
	__u64 offset;
	__u64 length;
	__u64 addr;
	__u16 type;
	__u16 flags;
	__u32 dev;
};

struct tierfs_iomap_pair {
	struct tierfs_iomap_io read;
	struct tierfs_iomap_io write;
};

/* Where a position falls in an inode's extents. */
struct tierfs_extent_hit {
	__u32 index; /* extent that holds pos; TIERFS_MAX_INODE_EXTENTS when in a hole */
	__u32 reserved;
	__u64 hole_start; /* in a hole: end of the extent before it, 0 when none */
	__u64 hole_end;	  /* in a hole: start of the next extent, TIERFS_U64_MAX when none */
};

/* Linear and bounded (at most 16 steps): cheaper than a binary search at this size. */
static inline struct tierfs_extent_hit tierfs_find_extent(const struct tierfs_inode_value *v,
							  __u64 pos)
{
	struct tierfs_extent_hit hit = { TIERFS_MAX_INODE_EXTENTS, 0, 0, TIERFS_U64_MAX };
	__u32 i;

	for (i = 0; i < TIERFS_MAX_INODE_EXTENTS; i++) {
		const struct tierfs_extent *e = &v->extents[i];

		if (i >= v->count)
			break;
		if (pos < e->file_offset) {
			hit.hole_end = e->file_offset;
			break;
		}
		if (pos - e->file_offset < e->length) {
			hit.index = i;
			break;
		}
		hit.hole_start = e->file_offset + e->length;
	}
	return hit;
}

static inline void tierfs_iomap_set(struct tierfs_iomap_io *io, __u64 offset, __u64 length,
				    __u64 addr, __u16 type, __u32 dev)
{
	io->offset = offset;
	io->length = length;
	io->addr = addr;
	io->type = type;
	io->flags = 0;
	io->dev = dev;
}

/* The kernel's own test (fuse_is_iomap_file_write): writeback and unshare write too. */
static inline int tierfs_iomap_is_write(__u32 opflags)
{
	return (opflags & TIERFS_FEB26_IOMAP_OP_WRITE_MASK) != 0;
}

#define TIERFS_IOMAP_BLOCK_MASK (TIERFS_IOMAP_BLOCK_SIZE - 1)

/*
 * Fills *out for the position pos of the inode whose extents are `v`, with
 * `tier` the tier value of the extent that holds pos (NULL when the extent's
 * tier is not in the map). `hit` is tierfs_find_extent(v, pos): the caller
 * looks the tier up in between, because BPF reads it from a map.
 *
 * The kernel checks every answer (fuse_iomap_begin_validate) and fails the
 * I/O with EFSCORRUPTED, no fallback, when one breaks its rules; so the
 * answer is always whole blocks of TIERFS_IOMAP_BLOCK_SIZE around pos: it
 * starts at pos rounded down to a block and ends at the last block boundary
 * of the contiguous run (next interleave boundary, extent end or hole end).
 * A block that is only partly inside the run (an extent or hole edge that is
 * not block-aligned) falls back: the server answers it.
 *
 * Reads: MAPPED on the region's device cookie and byte offset, UNWRITTEN for
 * reserved extents, HOLE between extents. Writes (WRITE, ZERO, UNSHARE,
 * WRITEBACK): a MAPPED read mapping and a PURE_OVERWRITE write mapping (null
 * device and address, no flags) inside written extents; writes over holes or
 * reserved extents fall back (the server allocates and converts), and so
 * do untorn (ATOMIC) writes. The
 * mapping is not cut at count: iomap's iterator trims it. Anything the maps
 * cannot answer exactly falls back.
 */
static inline int tierfs_iomap_fill(const struct tierfs_inode_value *v,
				    struct tierfs_extent_hit hit,
				    const struct tierfs_tier_value *tier, __u64 pos, __u64 count,
				    __u32 opflags, struct tierfs_iomap_pair *out)
{
	struct tierfs_mapping m = {};
	const struct tierfs_extent *e;
	__u64 start, end, head, addr;
	__u32 dev;

	/* Positions the kernel never asks for: it maps nothing at or past s_maxbytes. */
	if (count == 0 || pos >= TIERFS_IOMAP_MAX_BYTES)
		return TIERFS_IOMAP_FALLBACK;
	/* Untorn writes need FUSE_IOMAP_F_ATOMIC_BIO and a device that does them: the server's. */
	if (opflags & TIERFS_IOMAP_OP_ATOMIC)
		return TIERFS_IOMAP_FALLBACK;
	start = pos & ~TIERFS_IOMAP_BLOCK_MASK;
	head = pos - start;
	if (hit.index >= TIERFS_MAX_INODE_EXTENTS) {
		if (tierfs_iomap_is_write(opflags))
			return TIERFS_IOMAP_FALLBACK;
		end = hit.hole_end & ~TIERFS_IOMAP_BLOCK_MASK;
		if (start < hit.hole_start || end <= start)
			return TIERFS_IOMAP_FALLBACK;
		tierfs_iomap_set(&out->read, start, end - start, TIERFS_IOMAP_NULL_ADDR,
				 TIERFS_IOMAP_TYPE_HOLE, TIERFS_IOMAP_DEV_NULL);
		tierfs_iomap_set(&out->write, start, end - start, TIERFS_IOMAP_NULL_ADDR,
				 TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE, TIERFS_IOMAP_DEV_NULL);
		return TIERFS_IOMAP_HANDLED;
	}
	if (!tier)
		return TIERFS_IOMAP_FALLBACK;
	e = &v->extents[hit.index & (TIERFS_MAX_INODE_EXTENTS - 1)];
	if ((e->flags & TIERFS_EXTENT_UNWRITTEN) && tierfs_iomap_is_write(opflags))
		return TIERFS_IOMAP_FALLBACK;
	/*
	 * Units are aligned in the tier's address space: with the extent's file
	 * offset and tier address both block-aligned, every unit boundary is a
	 * file block boundary (units are at least one block), so the block
	 * holding pos lies in pos's unit and inside the extent.
	 */
	if ((e->file_offset | e->tier_address) & TIERFS_IOMAP_BLOCK_MASK)
		return TIERFS_IOMAP_FALLBACK;
	if (tierfs_map_extent(&tier->layout, e, pos, &m) != TIERFS_MAP_OK)
		return TIERFS_IOMAP_FALLBACK;
	dev = tier->device_cookie[m.region & (TIERFS_MAX_WAYS - 1)];
	if (dev == TIERFS_IOMAP_DEV_NULL)
		return TIERFS_IOMAP_FALLBACK;
	/* m.region_offset >= head: the unit's first byte is at or before start. */
	addr = m.region_offset - head;
	/* iomap addresses the device in sectors of the address: it must be block-aligned. */
	if (addr & TIERFS_IOMAP_BLOCK_MASK)
		return TIERFS_IOMAP_FALLBACK;
	/* pos + m.length cannot wrap: m.length ends inside the extent, below 2^64. */
	end = (pos + m.length) & ~TIERFS_IOMAP_BLOCK_MASK;
	/* The kernel refuses a device range whose end wraps (addr + length == 2^64 included). */
	if (end > start && end - start > TIERFS_U64_MAX - addr)
		end = start + ((TIERFS_U64_MAX - addr) & ~TIERFS_IOMAP_BLOCK_MASK);
	if (end <= start)
		return TIERFS_IOMAP_FALLBACK;
	tierfs_iomap_set(&out->read, start, end - start, addr,
			 (e->flags & TIERFS_EXTENT_UNWRITTEN) ? TIERFS_IOMAP_TYPE_UNWRITTEN
							      : TIERFS_IOMAP_TYPE_MAPPED,
			 dev);
	tierfs_iomap_set(&out->write, start, end - start, TIERFS_IOMAP_NULL_ADDR,
			 TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE, TIERFS_IOMAP_DEV_NULL);
	return TIERFS_IOMAP_HANDLED;
}

#endif /* TIERFS_BPF_IOMAP_H */
