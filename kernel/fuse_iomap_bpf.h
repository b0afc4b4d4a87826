/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The fuse-iomap BPF interface (struct_ops fuse_iomap_bpf_ops, its argument
 * types and kfuncs) for BPF programs built against a vmlinux.h that lacks it,
 * as every stock kernel's does today. Names are exactly the series' names:
 * CO-RE (preserve_access_index) and libbpf's struct_ops registration resolve
 * types and members by name against the running kernel's BTF, so on a patched
 * kernel these declarations bind to the real ones whatever their layout.
 * When the build kernel's vmlinux.h has the types, the build defines
 * TIERFS_VMLINUX_HAS_FUSE_IOMAP (bpf/meson.build greps vmlinux.h) and the
 * kernel's own declarations win.
 *
 * Only the pieces tierfs uses are declared: fuse_bpf_iomap_upsert_mappings and
 * fuse_bpf_iomap_inval_mappings are not called (the program answers every
 * iomap_begin itself and keeps no mapping cache in the kernel).
 */
#ifndef TIERFS_KERNEL_FUSE_IOMAP_BPF_H
#define TIERFS_KERNEL_FUSE_IOMAP_BPF_H

#include "vmlinux_features.h"

#ifndef TIERFS_VMLINUX_HAS_FUSE_IOMAP
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* Opaque to the program: read only through the kfuncs below. */
struct fuse_bpf_inode;
struct fuse_iomap_ioend_out;

struct fuse_iomap_io {
	__u64 offset; /* file offset of the mapping */
	__u64 length; /* bytes mapped */
	__u64 addr;   /* byte offset on the device, FUSE_IOMAP_NULL_ADDR for holes */
	__u16 type;   /* FUSE_IOMAP_TYPE_* */
	__u16 flags;
	__u32 dev;    /* cookie of FUSE_DEV_IOC_BACKING_OPEN(FUSE_BACKING_TYPE_IOMAP) */
};

struct fuse_iomap_begin_out {
	struct fuse_iomap_io read;
	struct fuse_iomap_io write;
};

struct fuse_iomap_bpf_ops {
	int (*iomap_begin)(struct fuse_bpf_inode *fi, __u64 pos, __u64 count, __u32 opflags,
			   struct fuse_iomap_begin_out *out);
	int (*iomap_end)(struct fuse_bpf_inode *fi, __u64 pos, __u64 count, __s64 written,
			 __u32 opflags);
	int (*iomap_ioend)(struct fuse_bpf_inode *fi, __u64 pos, __s64 written, __u32 ioendflags,
			   int error, __u32 dev, __u64 new_addr, struct fuse_iomap_ioend_out *out);
	int fuse_fd;
	char name[16];
};

#pragma clang attribute pop

enum fuse_iomap_bpf_result {
	FIB_FALLBACK = 0, /* do the normal FUSE upcall */
	FIB_HANDLED = 1,  /* the program filled the out struct */
};
#endif /* !TIERFS_VMLINUX_HAS_FUSE_IOMAP */

/*
 * Kfuncs. Weak, so that an object that references them still opens on a
 * kernel without them; tierfs only loads the program where the type exists.
 */
extern __u64 fuse_bpf_inode_nodeid(struct fuse_bpf_inode *fi) __ksym __weak;
extern __u64 fuse_bpf_inode_orig_ino(struct fuse_bpf_inode *fi) __ksym __weak;

#endif /* TIERFS_KERNEL_FUSE_IOMAP_BPF_H */
