/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Every number of the fuse-iomap interface tierfs relies on, in one place,
 * for clang -target bpf and g++ alike. Values as read from the kernel tree
 * (kernelorg-mirror/linux_kernel_git_djwong_xfs-linux, include/uapi/linux/fuse.h
 * and fs/fuse/fuse_iomap*.c of the Feb 2026 generation, the one with the BPF
 * struct_ops hook); the names are the series' names with a TIERFS_ prefix so
 * that they never clash with a uapi header that has them.
 *
 * The May 2026 generation (in-kernel striping, no BPF hook) renumbers
 * PURE_OVERWRITE and the op flags. Its uapi was not in the stored tree when
 * this was written, so tierfs speaks only the Feb numbers: nothing here may be
 * sent to a May kernel (kernel/probe.cc tells the two apart and says so).
 */
#ifndef TIERFS_KERNEL_FUSE_IOMAP_ABI_H
#define TIERFS_KERNEL_FUSE_IOMAP_ABI_H

/* FUSE_INIT flag (flags2 bit 11 = bit 43): the connection uses iomap. */
#define TIERFS_FUSE_INIT_IOMAP (1ULL << 43)

/*
 * Registering a block device as a mapping target: ioctl(FUSE_DEV_IOC_BACKING_OPEN)
 * on /dev/fuse with struct fuse_backing_map {__s32 fd; __u32 flags; __u64 padding}
 * and flags = FUSE_BACKING_TYPE_IOMAP; the ioctl returns the device cookie.
 */
#define TIERFS_FUSE_DEV_IOC_MAGIC 229
#define TIERFS_FUSE_BACKING_TYPE_IOMAP 1u

/* Mapping types (FUSE_IOMAP_TYPE_*). */
#define TIERFS_IOMAP_TYPE_HOLE 0
#define TIERFS_IOMAP_TYPE_DELALLOC 1
#define TIERFS_IOMAP_TYPE_MAPPED 2
#define TIERFS_IOMAP_TYPE_UNWRITTEN 3
#define TIERFS_IOMAP_TYPE_INLINE 4
#define TIERFS_IOMAP_TYPE_NOCACHE 253	     /* only with the mapping cache */
#define TIERFS_IOMAP_TYPE_RETRY_CACHE 254    /* only with the mapping cache */
#define TIERFS_IOMAP_TYPE_PURE_OVERWRITE 255 /* the write mapping is the read mapping */

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

/* Operation flags (FUSE_IOMAP_OP_*) of iomap_begin/iomap_end. */
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
#define TIERFS_IOMAP_OP_SWAPFILE (1u << 30)
#define TIERFS_IOMAP_OP_WRITEBACK (1u << 31)
/*
 * What the kernel counts as a write (fuse_is_iomap_file_write): with a
 * PURE_OVERWRITE write mapping it then writes through the read mapping.
 */
#define TIERFS_IOMAP_OP_WRITE_MASK                                                \
	(TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_ZERO | TIERFS_IOMAP_OP_UNSHARE | \
	 TIERFS_IOMAP_OP_WRITEBACK)

/* Return values of the struct_ops callbacks (enum fuse_iomap_bpf_ret). */
#define TIERFS_IOMAP_FALLBACK 0 /* FIB_FALLBACK: the upcall answers */
#define TIERFS_IOMAP_HANDLED 1	/* FIB_HANDLED: the out pair is filled */

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
