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

/* Values of the fuse-iomap series (uapi), mirrored here for g++ and BPF alike. */
#define TIERFS_IOMAP_TYPE_HOLE 0
#define TIERFS_IOMAP_TYPE_DELALLOC 1
#define TIERFS_IOMAP_TYPE_MAPPED 2
#define TIERFS_IOMAP_TYPE_UNWRITTEN 3
#define TIERFS_IOMAP_TYPE_INLINE 4
#define TIERFS_IOMAP_TYPE_PURE_OVERWRITE 255 /* the write mapping is the read mapping */
#define TIERFS_IOMAP_OP_WRITE (1u << 0)
#define TIERFS_IOMAP_OP_ZERO (1u << 1)
#define TIERFS_IOMAP_NULL_ADDR TIERFS_U64_MAX
#define TIERFS_IOMAP_DEV_NULL 0u

#define TIERFS_IOMAP_FALLBACK 0 /* FIB_FALLBACK: the upcall answers */
#define TIERFS_IOMAP_HANDLED 1  /* FIB_HANDLED: the out pair is filled */

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
	__u32 index;      /* extent that holds pos; TIERFS_MAX_INODE_EXTENTS when in a hole */
	__u32 reserved;
	__u64 hole_end;   /* in a hole: start of the next extent, TIERFS_U64_MAX when none */
};

/* Linear and bounded (at most 16 steps): cheaper than a binary search at this size. */
static inline struct tierfs_extent_hit tierfs_find_extent(const struct tierfs_inode_value *v,
							  __u64 pos)
{
	struct tierfs_extent_hit hit = {TIERFS_MAX_INODE_EXTENTS, 0, TIERFS_U64_MAX};
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

static inline int tierfs_iomap_is_write(__u32 opflags)
{
	return (opflags & (TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_ZERO)) != 0;
}

/*
 * Fills *out for [pos, pos + count) of the inode whose extents are `v`, with
 * `tier` the tier value of the extent that holds pos (NULL when the extent's
 * tier is not in the map). `hit` is tierfs_find_extent(v, pos): the caller
 * looks the tier up in between, because BPF reads it from a map.
 *
 * Reads: MAPPED on the region's device cookie and byte offset, cut at the
 * next interleave boundary and at count; UNWRITTEN likewise for reserved
 * extents; HOLE up to the next extent. Writes: MAPPED read mapping and a
 * PURE_OVERWRITE write mapping (NULL address and device, as libfuse's
 * fuse_iomap_pure_overwrite spells it) inside written extents; allocating writes and
 * writes into reserved extents fall back (the server allocates and converts).
 * Anything the maps cannot answer exactly falls back.
 */
static inline int tierfs_iomap_fill(const struct tierfs_inode_value *v,
				    struct tierfs_extent_hit hit,
				    const struct tierfs_tier_value *tier, __u64 pos, __u64 count,
				    __u32 opflags, struct tierfs_iomap_pair *out)
{
	struct tierfs_mapping m = {};
	const struct tierfs_extent *e;
	__u64 length;
	__u32 dev;

	if (count == 0)
		return TIERFS_IOMAP_FALLBACK;
	if (hit.index >= TIERFS_MAX_INODE_EXTENTS) {
		if (tierfs_iomap_is_write(opflags))
			return TIERFS_IOMAP_FALLBACK;
		length = hit.hole_end - pos;
		if (length > count)
			length = count;
		if (length == 0) /* pos is the last byte of the 64-bit range */
			return TIERFS_IOMAP_FALLBACK;
		tierfs_iomap_set(&out->read, pos, length, TIERFS_IOMAP_NULL_ADDR,
				 TIERFS_IOMAP_TYPE_HOLE, TIERFS_IOMAP_DEV_NULL);
		tierfs_iomap_set(&out->write, pos, length, TIERFS_IOMAP_NULL_ADDR,
				 TIERFS_IOMAP_TYPE_PURE_OVERWRITE, TIERFS_IOMAP_DEV_NULL);
		return TIERFS_IOMAP_HANDLED;
	}
	if (!tier)
		return TIERFS_IOMAP_FALLBACK;
	e = &v->extents[hit.index & (TIERFS_MAX_INODE_EXTENTS - 1)];
	if ((e->flags & TIERFS_EXTENT_UNWRITTEN) && tierfs_iomap_is_write(opflags))
		return TIERFS_IOMAP_FALLBACK;
	if (tierfs_map_extent(&tier->layout, e, pos, &m) != TIERFS_MAP_OK)
		return TIERFS_IOMAP_FALLBACK;
	dev = tier->device_cookie[m.region & (TIERFS_MAX_WAYS - 1)];
	if (dev == TIERFS_IOMAP_DEV_NULL)
		return TIERFS_IOMAP_FALLBACK;
	length = m.length < count ? m.length : count;
	tierfs_iomap_set(&out->read, pos, length, m.region_offset,
			 (e->flags & TIERFS_EXTENT_UNWRITTEN) ? TIERFS_IOMAP_TYPE_UNWRITTEN
							      : TIERFS_IOMAP_TYPE_MAPPED,
			 dev);
	tierfs_iomap_set(&out->write, pos, length, TIERFS_IOMAP_NULL_ADDR,
			 TIERFS_IOMAP_TYPE_PURE_OVERWRITE, TIERFS_IOMAP_DEV_NULL);
	return TIERFS_IOMAP_HANDLED;
}

#endif /* TIERFS_BPF_IOMAP_H */
