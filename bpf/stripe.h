/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The stripe path of the May 2026 generation of fuse-iomap: an equal-weight
 * tier registered with FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG as a RAID0
 * stripe (one strip per region, at most 256, one strip width), and answers
 * MAPPED_STRIPE/UNWRITTEN_STRIPE with an address in the stripe's linear
 * space, which the kernel turns into a device address itself
 * (fuse_iomap_adjust_stripe).
 *
 * The argument is built here in the ioctl's own layout (struct
 * fuse_iomap_backing_stripe and fuse_iomap_backing_strip of
 * include/uapi/linux/fuse.h at 0d91ba1028c411680cfbd2c3e04e6086ae0e3768),
 * checked below against that reading; the numbers are in
 * kernel/fuse_iomap_abi.h. The RAID0 arithmetic is the kernel's, rendered as a
 * test oracle in kernel/iomap_stripe_rules.h; nothing here computes where a
 * stripe address lands, because tierfs's mapping exists once, in
 * tierfs_map.h. A weighted tier is no stripe (docs/bpf.md says why tierfs
 * does not lay one out as one).
 */
#ifndef TIERFS_BPF_STRIPE_H
#define TIERFS_BPF_STRIPE_H

#include "iomap.h"

#ifndef __bpf__
#include <linux/ioctl.h>
#endif

#ifdef __cplusplus
#define TIERFS_STRIPE_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define TIERFS_STRIPE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define TIERFS_STRIPE_MAX_STRIPS TIERFS_MAY26_STRIPE_MAX_STRIPS

/* struct fuse_iomap_backing_strip */
struct tierfs_stripe_strip {
	__u32 dev; /* FUSE_DEV_IOC_BACKING_OPEN cookie of the region's block device */
	__u32 reserved;
	__u64 addr; /* byte offset of the strip's first byte on that device */
};

/* struct fuse_iomap_backing_stripe without its flexible array */
struct tierfs_stripe_header {
	__u16 nr_strips;
	__u8 reserved[6];
	__u64 strip_width; /* bytes of one strip unit: weight * G */
};

/* The whole argument: the header and room for the most strips the kernel takes. */
struct tierfs_stripe_config {
	struct tierfs_stripe_header header;
	struct tierfs_stripe_strip strips[TIERFS_STRIPE_MAX_STRIPS];
};

TIERFS_STRIPE_STATIC_ASSERT(sizeof(struct tierfs_stripe_strip) == 16, "strip entry is 16 bytes");
TIERFS_STRIPE_STATIC_ASSERT(__builtin_offsetof(struct tierfs_stripe_strip, addr) == 8,
			    "strip addr at byte 8");
TIERFS_STRIPE_STATIC_ASSERT(sizeof(struct tierfs_stripe_header) == 16, "header is 16 bytes");
TIERFS_STRIPE_STATIC_ASSERT(__builtin_offsetof(struct tierfs_stripe_header, strip_width) == 8,
			    "strip_width at byte 8");
TIERFS_STRIPE_STATIC_ASSERT(__builtin_offsetof(struct tierfs_stripe_config, strips) == 16,
			    "strips follow the header");
TIERFS_STRIPE_STATIC_ASSERT(TIERFS_STRIPE_MAX_STRIPS == 256, "FUSE_IOMAP_BACKING_MAX_STRIPS");

#ifndef __bpf__
/* _IOW(FUSE_DEV_IOC_MAGIC, 103, struct fuse_iomap_backing_stripe) */
#define TIERFS_FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG                             \
	_IOW(TIERFS_FUSE_DEV_IOC_MAGIC, TIERFS_MAY26_FUSE_DEV_IOC_STRIPE_CONFIG_NR, \
	     struct tierfs_stripe_header)
TIERFS_STRIPE_STATIC_ASSERT(TIERFS_FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG ==
				    TIERFS_MAY26_FUSE_DEV_IOC_STRIPE_CONFIG_VALUE,
			    "stripe config ioctl number");
#endif

/* Bytes of the ioctl argument for a stripe of n strips. */
static inline __u64 tierfs_stripe_arg_bytes(__u32 nr_strips)
{
	return sizeof(struct tierfs_stripe_header) +
	       (__u64)nr_strips * sizeof(struct tierfs_stripe_strip);
}

/*
 * The stripe an equal-weight layout is: region i is strip i at base[i], the
 * width is weight * G (a row holds `weight` consecutive units per region).
 * 0, or -1 when the layout is no stripe (weighted, malformed), a region has
 * no registered device (cookie 0) or its base is not block-aligned.
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
	out->header.nr_strips = (__u16)l->ways;
	for (i = 0; i < 6; i++)
		out->header.reserved[i] = 0;
	out->header.strip_width = (__u64)l->weights[0] << l->granularity_shift;
	for (i = 0; i < l->ways && i < TIERFS_MAX_WAYS; i++) {
		/* The kernel fails every I/O on a strip that is not block-aligned. */
		if (cookies[i] == TIERFS_IOMAP_DEV_NULL ||
		    (l->base[i] & (TIERFS_IOMAP_BLOCK_SIZE - 1)))
			return -1;
		out->strips[i].dev = cookies[i];
		out->strips[i].reserved = 0;
		out->strips[i].addr = l->base[i];
	}
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
	struct tierfs_mapping m;

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
	/* The kernel refuses an address range whose end wraps (addr + length == 2^64 too). */
	if (end - start > TIERFS_U64_MAX - (base + rel))
		end = start + ((TIERFS_U64_MAX - (base + rel)) & ~(TIERFS_IOMAP_BLOCK_SIZE - 1));
	if (end <= start)
		return -1;
	/* The first block's device address must exist (fit in 64 bits) for the kernel too. */
	if (tierfs_map_extent(l, e, start, &m) != TIERFS_MAP_OK)
		return -1;
	out->offset = start;
	out->length = end - start;
	out->linear = base + rel;
	return 0;
}

#endif /* TIERFS_BPF_STRIPE_H */
