/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The fuse-iomap BPF interface of the Feb 2026 generation (struct_ops
 * fuse_iomap_bpf_ops, its argument types and kfuncs), for BPF programs built
 * against a vmlinux.h that lacks it, as every stock kernel's does. Read from
 * the kernel tree (fs/fuse/fuse_iomap_bpf.{c,h}, include/uapi/linux/fuse.h),
 * member for member: CO-RE (preserve_access_index) and libbpf's struct_ops
 * registration resolve types and members by name against the running
 * kernel's BTF (vmlinux, or /sys/kernel/btf/fuse when fuse is a module).
 * When the build kernel's vmlinux.h has the types, the build defines
 * TIERFS_VMLINUX_HAS_FUSE_IOMAP (bpf/meson.build greps vmlinux.h) and the
 * kernel's own declarations win. The numbers are in fuse_iomap_abi.h.
 *
 * Only the pieces tierfs uses are declared: fuse_bpf_iomap_upsert_mappings and
 * fuse_bpf_iomap_inval_mappings are not called (the program answers every
 * iomap_begin itself and keeps no mapping cache in the kernel).
 */
#ifndef TIERFS_KERNEL_FUSE_IOMAP_BPF_H
#define TIERFS_KERNEL_FUSE_IOMAP_BPF_H

#include "fuse_iomap_abi.h"
#include "vmlinux_features.h"

#ifndef TIERFS_VMLINUX_HAS_FUSE_IOMAP
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/*
 * A real, empty struct, as the kernel declares it (it hides struct
 * fuse_inode from programs). Declared only forward, libbpf finds the kfunc
 * prototypes below incompatible with the kernel's and refuses the object.
 */
struct fuse_bpf_inode {
};

struct fuse_iomap_io {
	__u64 offset; /* file offset of the mapping */
	__u64 length; /* bytes mapped */
	__u64 addr;   /* byte offset on the device, FUSE_IOMAP_NULL_ADDR for holes */
	__u16 type;   /* FUSE_IOMAP_TYPE_* */
	__u16 flags;  /* FUSE_IOMAP_F_* */
	__u32 dev;    /* cookie of FUSE_DEV_IOC_BACKING_OPEN(FUSE_BACKING_TYPE_IOMAP) */
};

struct fuse_iomap_begin_out {
	struct fuse_iomap_io read;
	struct fuse_iomap_io write;
};

struct fuse_iomap_ioend_out {
	__u64 newsize; /* new ondisk size */
};

enum fuse_iomap_bpf_ret {
	FIB_FALLBACK = TIERFS_IOMAP_FALLBACK, /* do the normal FUSE upcall */
	FIB_HANDLED = TIERFS_IOMAP_HANDLED,   /* the program filled the out struct */
};

/* The public members; the kernel's private ones (fc, users) follow and are never set. */
struct fuse_iomap_bpf_ops {
	enum fuse_iomap_bpf_ret (*iomap_begin)(struct fuse_bpf_inode *fbi, __u64 pos, __u64 count,
					       __u32 opflags, struct fuse_iomap_begin_out *outarg);
	enum fuse_iomap_bpf_ret (*iomap_end)(struct fuse_bpf_inode *fbi, __u64 pos, __u64 count,
					     __s64 written, __u32 opflags);
	enum fuse_iomap_bpf_ret (*iomap_ioend)(struct fuse_bpf_inode *fbi, __u64 pos, __s64 written,
					       __u32 ioendflags, int error, __u32 dev,
					       __u64 new_addr, struct fuse_iomap_ioend_out *outarg);
	int fuse_fd;	      /* the server's /dev/fuse descriptor, copied at registration */
	unsigned int zeropad; /* explicit padding, zero */
	char name[16];
};

#pragma clang attribute pop
#endif /* !TIERFS_VMLINUX_HAS_FUSE_IOMAP */

/*
 * Kfuncs (KF_TRUSTED_ARGS: pass the fbi argument as the kernel gave it).
 * Weak, so that an object that references them still opens on a kernel
 * without them; tierfs loads the program only where the type exists.
 */
extern __u64 fuse_bpf_inode_nodeid(const struct fuse_bpf_inode *fbi) __ksym __weak;
extern __u64 fuse_bpf_inode_orig_ino(const struct fuse_bpf_inode *fbi) __ksym __weak;

#endif /* TIERFS_KERNEL_FUSE_IOMAP_BPF_H */
