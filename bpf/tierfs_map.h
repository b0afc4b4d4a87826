/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The interleave mapping of tierfs, written once for both compilers:
 * clang -target bpf (the iomap struct_ops program and its syscall twin) and
 * g++ (the FUSE server, the tools, the tests). Pure arithmetic, no globals,
 * only bounded loops, every multiplication and addition checked, so the BPF
 * verifier accepts it and no 64-bit offset can wrap.
 *
 * A tier is an interleave set of `ways` regions with granularity G = 2^shift.
 * A row holds weights[i] consecutive units of G bytes in region i, regions in
 * index order; equal weights are plain RAID0-style interleave. Row r starts at
 * base[i] + r * weights[i] * G in region i.
 *
 * The tier is one linear address space, as a memory controller sees an
 * interleave set: address L lies in unit L / G, that unit is unit
 * (L / G) % row_units of row (L / G) / row_units, and the weights say which
 * region holds it. An extent is a run of a file laid over consecutive
 * addresses from tier_address, which the allocator keeps 4 KiB-aligned; it
 * need not start at a row, so a small file costs its size rounded up to
 * 4 KiB while a large one still starts on a row and interleaves fully.
 */
#ifndef TIERFS_BPF_TIERFS_MAP_H
#define TIERFS_BPF_TIERFS_MAP_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define TIERFS_MAX_WAYS 32
#define TIERFS_MIN_GRANULARITY_SHIFT 12 /* 4 KiB */
#define TIERFS_MAX_GRANULARITY_SHIFT 30 /* 1 GiB */
#define TIERFS_MAX_WEIGHT 255
#define TIERFS_U64_MAX (~(__u64)0)

enum tierfs_map_status {
	TIERFS_MAP_OK = 0,
	TIERFS_MAP_BAD_LAYOUT = 1, /* ways, granularity or a weight out of range */
	TIERFS_MAP_OUTSIDE = 2,	   /* offset not inside the extent / region range */
	TIERFS_MAP_OVERFLOW = 3,   /* the answer does not fit in 64 bits */
};

struct tierfs_layout {
	__u32 ways;		       /* 1 .. TIERFS_MAX_WAYS */
	__u32 granularity_shift;       /* log2 of the interleave unit, 12 .. 30 */
	__u8 weights[TIERFS_MAX_WAYS]; /* units per row in region i, 1 .. 255 */
	__u64 base[TIERFS_MAX_WAYS];   /* byte offset of row 0 inside region i */
};

struct tierfs_extent {
	__u64 file_offset;  /* first file byte of the extent */
	__u64 length;	    /* bytes of file the extent covers */
	__u64 tier_address; /* address in the tier's interleaved space of its first byte */
	__u32 tier;	    /* index of the tier (interleave set) */
	__u32 flags;	    /* TIERFS_EXTENT_* */
};

#define TIERFS_EXTENT_UNWRITTEN 1u /* reserved by fallocate, reads as zeros */

struct tierfs_mapping {
	__u32 region; /* index into the tier's regions */
	__u32 reserved;
	__u64 region_offset; /* byte offset inside that region */
	__u64 length;	     /* bytes contiguous in both file and region from here */
};

static inline int tierfs_layout_valid(const struct tierfs_layout *l)
{
	__u32 i;

	if (l->ways < 1 || l->ways > TIERFS_MAX_WAYS)
		return 0;
	if (l->granularity_shift < TIERFS_MIN_GRANULARITY_SHIFT ||
	    l->granularity_shift > TIERFS_MAX_GRANULARITY_SHIFT)
		return 0;
	for (i = 0; i < TIERFS_MAX_WAYS; i++) {
		if (i >= l->ways)
			break;
		if (l->weights[i] == 0)
			return 0;
	}
	return 1;
}

/* Units of G in one row: the sum of the weights (at most 32 * 255). */
static inline __u32 tierfs_row_units(const struct tierfs_layout *l)
{
	__u32 i, sum = 0;

	for (i = 0; i < TIERFS_MAX_WAYS; i++) {
		if (i >= l->ways)
			break;
		sum += l->weights[i];
	}
	return sum;
}

/* Bytes of file one row holds: row_units * G (below 2^43, never overflows). */
static inline __u64 tierfs_row_bytes(const struct tierfs_layout *l)
{
	return (__u64)tierfs_row_units(l) << l->granularity_shift;
}

/* Bytes region i holds of one row: weights[i] * G. */
static inline __u64 tierfs_region_row_bytes(const struct tierfs_layout *l, __u32 region)
{
	return (__u64)l->weights[region & (TIERFS_MAX_WAYS - 1)] << l->granularity_shift;
}

/*
 * *out = x * m for a small multiplier (m < 2^16), returning 0 when the
 * product does not fit in 64 bits. Written with 32-bit halves because clang
 * turns the usual "x > MAX / m" test into a 128-bit multiply the BPF backend
 * cannot emit.
 */
static inline int tierfs_mul_small(__u64 x, __u32 m, __u64 *out)
{
	__u64 hi = (x >> 32) * m;
	__u64 lo = (x & 0xffffffffULL) * m;
	__u64 product;

	if (hi >> 32)
		return 0;
	product = (hi << 32) + lo;
	if (product < lo)
		return 0;
	*out = product;
	return 1;
}

/*
 * Maps file offset `off` inside extent `e` of a tier with layout `l`: the
 * region, the offset inside it, and how many bytes from there stay
 * contiguous in both the file and the region (up to the next region switch
 * or the end of the extent). Callers loop, as the kernel's iomap iterator does.
 */
static inline int tierfs_map_extent(const struct tierfs_layout *l, const struct tierfs_extent *e,
				    __u64 off, struct tierfs_mapping *out)
{
	__u64 granule, rel, addr, unit_index, row, inner, per_row, ro, run_units, len;
	__u32 units, unit, first = 0, i, region = 0, found = 0;

	if (!tierfs_layout_valid(l))
		return TIERFS_MAP_BAD_LAYOUT;
	if (off < e->file_offset)
		return TIERFS_MAP_OUTSIDE;
	rel = off - e->file_offset;
	if (rel >= e->length)
		return TIERFS_MAP_OUTSIDE;
	if (rel > TIERFS_U64_MAX - e->tier_address)
		return TIERFS_MAP_OVERFLOW;
	addr = e->tier_address + rel;

	granule = 1ULL << l->granularity_shift;
	units = tierfs_row_units(l);
	unit_index = addr >> l->granularity_shift;
	row = unit_index / units;
	unit = (__u32)(unit_index % units);
	inner = addr & (granule - 1);

	for (i = 0; i < TIERFS_MAX_WAYS; i++) {
		if (i >= l->ways)
			break;
		if (unit < first + l->weights[i]) {
			region = i;
			found = 1;
			break;
		}
		first += l->weights[i];
	}
	if (!found)
		return TIERFS_MAP_BAD_LAYOUT;

	per_row = (__u64)l->weights[region] << l->granularity_shift;
	/* ro = row * weight * G, with the multiply and the shift both checked */
	if (!tierfs_mul_small(row, l->weights[region], &ro))
		return TIERFS_MAP_OVERFLOW;
	if (ro > (TIERFS_U64_MAX >> l->granularity_shift))
		return TIERFS_MAP_OVERFLOW;
	ro <<= l->granularity_shift;
	if (ro > TIERFS_U64_MAX - l->base[region])
		return TIERFS_MAP_OVERFLOW;
	ro += l->base[region];
	/* The region's run ends with this row's last unit in the region: its last byte must fit. */
	if (per_row - 1 > TIERFS_U64_MAX - ro)
		return TIERFS_MAP_OVERFLOW;
	ro += ((__u64)(unit - first) << l->granularity_shift) + inner;

	if (l->ways == 1) {
		/* One region: consecutive rows are adjacent, the rest of the extent is one run. */
		len = e->length - rel;
	} else {
		run_units = first + l->weights[region] - unit;
		len = (run_units << l->granularity_shift) - inner;
		if (len > e->length - rel)
			len = e->length - rel;
	}
	/* Near the top of the 64-bit range the run ends where the region's address space does. */
	if (len - 1 > TIERFS_U64_MAX - ro)
		len = TIERFS_U64_MAX - ro + 1;

	out->region = region;
	out->reserved = 0;
	out->region_offset = ro;
	out->length = len;
	return TIERFS_MAP_OK;
}

/*
 * The inverse: which file offset of extent `e` lives at `region_offset` of
 * region `region`. TIERFS_MAP_OUTSIDE when that byte belongs to no address
 * of the extent (before base, before tier_address, or past its length).
 */
static inline int tierfs_unmap_extent(const struct tierfs_layout *l, const struct tierfs_extent *e,
				      __u32 region, __u64 region_offset, __u64 *file_offset)
{
	__u64 granule, per_row, delta, row, within, unit_index, addr, rel;
	__u32 units, first = 0, i;

	if (!tierfs_layout_valid(l))
		return TIERFS_MAP_BAD_LAYOUT;
	if (region >= l->ways || region >= TIERFS_MAX_WAYS)
		return TIERFS_MAP_OUTSIDE;
	if (region_offset < l->base[region])
		return TIERFS_MAP_OUTSIDE;

	for (i = 0; i < TIERFS_MAX_WAYS; i++) {
		if (i >= region)
			break;
		first += l->weights[i];
	}
	granule = 1ULL << l->granularity_shift;
	units = tierfs_row_units(l);
	per_row = (__u64)l->weights[region] << l->granularity_shift;
	delta = region_offset - l->base[region];
	row = delta / per_row;
	within = delta % per_row;
	if (!tierfs_mul_small(row, units, &unit_index))
		return TIERFS_MAP_OUTSIDE;
	if (unit_index > TIERFS_U64_MAX - units)
		return TIERFS_MAP_OUTSIDE;
	unit_index += first + (within >> l->granularity_shift);
	if (unit_index > (TIERFS_U64_MAX >> l->granularity_shift))
		return TIERFS_MAP_OUTSIDE;
	addr = (unit_index << l->granularity_shift) | (within & (granule - 1));
	if (addr < e->tier_address)
		return TIERFS_MAP_OUTSIDE;
	rel = addr - e->tier_address;
	if (rel >= e->length)
		return TIERFS_MAP_OUTSIDE;
	if (rel > TIERFS_U64_MAX - e->file_offset)
		return TIERFS_MAP_OVERFLOW;
	*file_offset = e->file_offset + rel;
	return TIERFS_MAP_OK;
}

#endif /* TIERFS_BPF_TIERFS_MAP_H */
