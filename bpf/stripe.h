/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The stripe path: an equal-weight tier described as the RAID0 stripe that
 * the May 2026 generation of fuse-iomap registers with
 * FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG (at most 256 strips of {device,
 * address} with one strip width) and maps in the kernel, answering
 * MAPPED_STRIPE with an address in the stripe's linear address space.
 *
 * What is tierfs's here and what is not: that generation's uapi (struct
 * layout, ioctl number, type numbers) was not in the stored kernel tree when
 * this was written, so these are tierfs's own structs, not the ioctl's, and
 * the kernel side's arithmetic is the plain RAID0 rule (strip = (L / width)
 * mod n, address = strip address + (L / (width * n)) * width + L mod width),
 * to be checked against the tree before anything is registered. A weighted
 * tier is not a stripe: the BPF program answers those.
 */
#ifndef TIERFS_BPF_STRIPE_H
#define TIERFS_BPF_STRIPE_H

#include "iomap.h"

#define TIERFS_STRIPE_MAX_STRIPS 256

struct tierfs_stripe_strip {
	__u32 dev; /* FUSE_DEV_IOC_BACKING_OPEN cookie of the region's block device */
	__u32 reserved;
	__u64 addr; /* byte offset of the strip's first byte on that device */
};

struct tierfs_stripe_config {
	__u32 nr_strips;
	__u32 reserved;
	__u64 width; /* bytes of one strip unit: weight * G */
	struct tierfs_stripe_strip strips[TIERFS_STRIPE_MAX_STRIPS];
};

/*
 * The stripe an equal-weight layout is: region i is strip i at base[i], the
 * width is weight * G (a row holds `weight` consecutive units per region).
 * 0, or -1 when the layout is no stripe (weighted, malformed).
 */
static inline int tierfs_stripe_config_of(const struct tierfs_layout *l, const __u32 *cookies,
					  struct tierfs_stripe_config *out)
{
	__u32 i;

	if (!tierfs_layout_valid(l))
		return -1;
	for (i = 1; i < l->ways && i < TIERFS_MAX_WAYS; i++)
		if (l->weights[i] != l->weights[0])
			return -1;
	out->nr_strips = l->ways;
	out->reserved = 0;
	out->width = (__u64)l->weights[0] << l->granularity_shift;
	for (i = 0; i < l->ways && i < TIERFS_MAX_WAYS; i++) {
		out->strips[i].dev = cookies[i];
		out->strips[i].reserved = 0;
		out->strips[i].addr = l->base[i];
	}
	return 0;
}

/*
 * Where byte L of the stripe's linear address space lives: the RAID0 rule.
 * 0, or -1 when the answer would not fit in 64 bits.
 */
static inline int tierfs_stripe_locate(const struct tierfs_stripe_config *c, __u64 linear,
				       __u32 *strip, __u64 *addr)
{
	__u64 unit = linear / c->width, row = unit / c->nr_strips, at;

	*strip = (__u32)(unit % c->nr_strips);
	if (row > TIERFS_U64_MAX / c->width)
		return -1;
	at = row * c->width;
	if (at > TIERFS_U64_MAX - c->strips[*strip].addr - linear % c->width)
		return -1;
	*addr = c->strips[*strip].addr + at + linear % c->width;
	return 0;
}

/* A MAPPED_STRIPE answer: a file range and the stripe address of its first byte. */
struct tierfs_stripe_answer {
	__u64 offset;
	__u64 length;
	__u64 linear;
};

/*
 * The MAPPED_STRIPE answer for pos inside extent e of an equal-weight tier:
 * file range [offset, offset + length) in whole blocks, and `addr` the
 * stripe address of `offset` (`linear`). For an equal-weight tier the tier's
 * interleaved address space is the stripe's linear space, and an extent is
 * one run of it from tier_address: the answer reaches the extent's last
 * whole block in one piece.
 * 0, or -1 when it cannot be answered so (unaligned extent, overflow).
 */
static inline int tierfs_stripe_answer_of(const struct tierfs_layout *l,
					  const struct tierfs_extent *e, __u64 pos,
					  struct tierfs_stripe_answer *out)
{
	__u64 row_bytes = tierfs_row_bytes(l), start, end, rel, base;

	if (e->file_offset & (TIERFS_IOMAP_BLOCK_SIZE - 1) || pos < e->file_offset ||
	    pos - e->file_offset >= e->length || pos >= TIERFS_IOMAP_MAX_BYTES)
		return -1;
	start = pos & ~(TIERFS_IOMAP_BLOCK_SIZE - 1);
	end = (e->file_offset + e->length) & ~(TIERFS_IOMAP_BLOCK_SIZE - 1);
	if (end <= start || row_bytes == 0 || (e->tier_address & (TIERFS_IOMAP_BLOCK_SIZE - 1)))
		return -1;
	base = e->tier_address;
	rel = start - e->file_offset;
	if (rel > TIERFS_U64_MAX - base)
		return -1;
	out->offset = start;
	out->length = end - start;
	out->linear = base + rel;
	return 0;
}

#endif /* TIERFS_BPF_STRIPE_H */
