/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Every number of the fuse-iomap interface tierfs relies on, in one place,
 * for clang -target bpf and g++ alike, read from the kernel tree
 * (kernelorg-mirror/linux_kernel_git_djwong_xfs-linux). Two generations are
 * published and they disagree on some numbers, so:
 *
 * - TIERFS_IOMAP_*: the numbers both generations share;
 * - TIERFS_FEB26_*: the Feb 2026 generation (branch fuse-iomap-bpf, the one
 *   with the BPF struct_ops hook; include/uapi/linux/fuse.h as stored at
 *   00681926cddb83dd12be92379dc23d1dd9854b87, fs/fuse/fuse_iomap_bpf.h);
 * - TIERFS_MAY26_*: the May 2026 generation (branch fuse-iomap-striping,
 *   include/uapi/linux/fuse.h and fs/fuse/fuse_iomap.c at
 *   0d91ba1028c411680cfbd2c3e04e6086ae0e3768, fs/fuse/fuse_i.h and
 *   fs/fuse/dev.c at 5c58999c173cdc28d8b12c18a68100899f9dd1b8).
 *
 * A number that differs has no unprefixed name, so code cannot use one
 * without saying which generation it speaks. The names are the series' names
 * with a prefix, so they never clash with a uapi header that has them.
 */
#ifndef TIERFS_KERNEL_FUSE_IOMAP_ABI_H
#define TIERFS_KERNEL_FUSE_IOMAP_ABI_H

/* ---- Both generations ---- */

/* FUSE_INIT flag (flags2 bit 11 = bit 43): the connection uses iomap. */
#define TIERFS_FUSE_INIT_IOMAP (1ULL << 43)

/*
 * Registering a block device as a mapping target: ioctl(FUSE_DEV_IOC_BACKING_OPEN)
 * = _IOW(229, 1, struct fuse_backing_map {__s32 fd; __u32 flags; __u64 padding})
 * on /dev/fuse with flags = FUSE_BACKING_TYPE_IOMAP; it returns the device
 * cookie (ids 1 .. 1024: fuse_iomap_backing_ops.id_start/id_end 1/1025).
 */
#define TIERFS_FUSE_DEV_IOC_MAGIC 229
#define TIERFS_FUSE_DEV_IOC_BACKING_OPEN_NR 1
#define TIERFS_FUSE_DEV_IOC_BACKING_OPEN_VALUE 0x4010e501u /* _IOW(229, 1, 16 bytes) */
#define TIERFS_FUSE_BACKING_TYPE_IOMAP 1u
#define TIERFS_FUSE_IOMAP_DEVICE_ID_FIRST 1
#define TIERFS_FUSE_IOMAP_DEVICE_ID_LAST 1024

/* Mapping types (FUSE_IOMAP_TYPE_*) below 5, the same in both. */
#define TIERFS_IOMAP_TYPE_HOLE 0
#define TIERFS_IOMAP_TYPE_DELALLOC 1
#define TIERFS_IOMAP_TYPE_MAPPED 2
#define TIERFS_IOMAP_TYPE_UNWRITTEN 3
#define TIERFS_IOMAP_TYPE_INLINE 4

#define TIERFS_IOMAP_DEV_NULL 0u       /* FUSE_IOMAP_DEV_NULL */
#define TIERFS_IOMAP_NULL_ADDR (~0ULL) /* FUSE_IOMAP_NULL_ADDR */

/* Mapping flags (FUSE_IOMAP_F_*) a server may return from iomap_begin. */
#define TIERFS_IOMAP_F_NEW (1u << 0)
#define TIERFS_IOMAP_F_DIRTY (1u << 1)
#define TIERFS_IOMAP_F_SHARED (1u << 2)
#define TIERFS_IOMAP_F_MERGED (1u << 3)
#define TIERFS_IOMAP_F_BOUNDARY (1u << 4)
#define TIERFS_IOMAP_F_ANON_WRITE (1u << 5)
#define TIERFS_IOMAP_F_ATOMIC_BIO (1u << 6)
#define TIERFS_IOMAP_F_WANT_IOMAP_END (1u << 7)
#define TIERFS_IOMAP_F_ALL                                                             \
	(TIERFS_IOMAP_F_NEW | TIERFS_IOMAP_F_DIRTY | TIERFS_IOMAP_F_SHARED |           \
	 TIERFS_IOMAP_F_MERGED | TIERFS_IOMAP_F_BOUNDARY | TIERFS_IOMAP_F_ANON_WRITE | \
	 TIERFS_IOMAP_F_ATOMIC_BIO | TIERFS_IOMAP_F_WANT_IOMAP_END)

/* Operation flags (FUSE_IOMAP_OP_*) bits 0 .. 10, the same in both. */
#define TIERFS_IOMAP_OP_WRITE (1u << 0)
#define TIERFS_IOMAP_OP_ZERO (1u << 1)
#define TIERFS_IOMAP_OP_REPORT (1u << 2)
#define TIERFS_IOMAP_OP_FAULT (1u << 3)
#define TIERFS_IOMAP_OP_DIRECT (1u << 4)
#define TIERFS_IOMAP_OP_NOWAIT (1u << 5)
#define TIERFS_IOMAP_OP_OVERWRITE_ONLY (1u << 6)
#define TIERFS_IOMAP_OP_UNSHARE (1u << 7)
#define TIERFS_IOMAP_OP_DAX (1u << 8)
#define TIERFS_IOMAP_OP_ATOMIC (1u << 9)
#define TIERFS_IOMAP_OP_DONTCACHE (1u << 10)

/* fuse_attr.flags FUSE_ATTR_EXCLUSIVE (part of the May generation's FUSE_ATTR_IOMAP) */
#define TIERFS_FUSE_ATTR_EXCLUSIVE (1u << 2)

/* ---- Feb 2026 (BPF struct_ops hook) ---- */

#define TIERFS_FEB26_IOMAP_TYPE_NOCACHE 253	   /* only with the mapping cache */
#define TIERFS_FEB26_IOMAP_TYPE_RETRY_CACHE 254	   /* only with the mapping cache */
#define TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE 255 /* the write mapping is the read mapping */
#define TIERFS_FEB26_IOMAP_OP_SWAPFILE (1u << 30)
#define TIERFS_FEB26_IOMAP_OP_WRITEBACK (1u << 31)
/*
 * What the kernel counts as a write (fuse_is_iomap_file_write): with a
 * PURE_OVERWRITE write mapping it then writes through the read mapping.
 */
#define TIERFS_FEB26_IOMAP_OP_WRITE_MASK                                          \
	(TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_ZERO | TIERFS_IOMAP_OP_UNSHARE | \
	 TIERFS_FEB26_IOMAP_OP_WRITEBACK)
#define TIERFS_FEB26_FUSE_ATTR_IOMAP (1u << 3)

/* Return values of the struct_ops callbacks (enum fuse_iomap_bpf_ret). */
#define TIERFS_IOMAP_FALLBACK 0 /* FIB_FALLBACK: the upcall answers */
#define TIERFS_IOMAP_HANDLED 1	/* FIB_HANDLED: the out pair is filled */

/* ---- May 2026 (in-kernel striping, no BPF hook) ---- */

#define TIERFS_MAY26_IOMAP_TYPE_UNWRITTEN_STRIPE 65531 /* addr is in the stripe's space */
#define TIERFS_MAY26_IOMAP_TYPE_MAPPED_STRIPE 65532    /* ... and dev is the stripe id */
#define TIERFS_MAY26_IOMAP_TYPE_NOCACHE 65533
#define TIERFS_MAY26_IOMAP_TYPE_RETRY_CACHE 65534
#define TIERFS_MAY26_IOMAP_TYPE_PURE_OVERWRITE 65535
#define TIERFS_MAY26_IOMAP_OP_WRITEBACK (1u << 11)
#define TIERFS_MAY26_IOMAP_OP_SWAPFILE (1u << 31)
/* fuse_is_iomap_file_write: swapfile activation counts as a write here. */
#define TIERFS_MAY26_IOMAP_OP_WRITE_MASK                                          \
	(TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_ZERO | TIERFS_IOMAP_OP_UNSHARE | \
	 TIERFS_MAY26_IOMAP_OP_WRITEBACK | TIERFS_MAY26_IOMAP_OP_SWAPFILE)
/* fuse_iomap_can_cache: ops that never use the mapping cache (no RETRY_CACHE). */
#define TIERFS_MAY26_IOMAP_OP_NOCACHE_MASK \
	(TIERFS_IOMAP_OP_REPORT | TIERFS_IOMAP_OP_ATOMIC | TIERFS_MAY26_IOMAP_OP_SWAPFILE)
/* FUSE_ATTR_EXCLUSIVE | __FUSE_ATTR_IOMAP (1 << 3) */
#define TIERFS_MAY26_FUSE_ATTR_IOMAP (TIERFS_FUSE_ATTR_EXCLUSIVE | (1u << 3))

/*
 * FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG = _IOW(229, 103, struct
 * fuse_iomap_backing_stripe): a 16-byte header {__u16 nr_strips; __u8
 * reserved[6]; __u64 strip_width} and nr_strips entries {__u32 dev; __u32
 * reserved; __u64 addr}, each dev a registered iomap device. The size in the
 * number is the header's (the flexible array adds nothing). It returns the
 * stripe id: fuse_iomap_stripe_backing_ops.id_start/id_end = 2048/3073.
 */
#define TIERFS_MAY26_FUSE_DEV_IOC_STRIPE_CONFIG_NR 103
#define TIERFS_MAY26_FUSE_DEV_IOC_STRIPE_CONFIG_VALUE 0x4010e567u /* _IOW(229, 103, 16 bytes) */
#define TIERFS_MAY26_STRIPE_MAX_STRIPS 256 /* FUSE_IOMAP_BACKING_MAX_STRIPS */
#define TIERFS_MAY26_STRIPE_ID_FIRST 2048
#define TIERFS_MAY26_STRIPE_ID_LAST 3072

/*
 * The block size tierfs declares in its FUSE_IOMAP_CONFIG reply
 * (s_blocksize): every mapping's offset and length must be a multiple of it
 * (fuse_iomap_check_mapping). Equal to the smallest interleave unit, so every
 * unit boundary of a block-aligned extent is a block boundary.
 */
#define TIERFS_IOMAP_BLOCK_SHIFT 12
#define TIERFS_IOMAP_BLOCK_SIZE (1ULL << TIERFS_IOMAP_BLOCK_SHIFT)
/*
 * s_maxbytes of a fuse mount that does not set FUSE_IOMAP_CONFIG_MAXBYTES
 * (MAX_LFS_FILESIZE on 64-bit): the kernel never maps a position at or past it.
 */
#define TIERFS_IOMAP_MAX_BYTES 0x7fffffffffffffffULL

#endif /* TIERFS_KERNEL_FUSE_IOMAP_ABI_H */
