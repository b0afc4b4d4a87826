/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * tierfs's fuse_iomap_bpf_ops program: answers FUSE_IOMAP_BEGIN inside the
 * kernel from the tier and inode maps, so large I/O over small interleave
 * units needs no upcall per boundary. Whatever the maps cannot answer exactly
 * (unknown inode or tier, too many extents, allocating writes, errors) falls
 * back to the server. Loaded only where the running kernel's BTF has the
 * type; twin.bpf.c runs the same body on every kernel. The callbacks are not
 * sleepable: nothing here sleeps, and libbpf 1.1 knows no "struct_ops.s/".
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fuse_iomap_bpf.h"
#include "iomap_maps.bpf.h"

static __always_inline void copy_io(struct fuse_iomap_io *dst, const struct tierfs_iomap_io *src)
{
	dst->offset = src->offset;
	dst->length = src->length;
	dst->addr = src->addr;
	dst->type = src->type;
	dst->flags = src->flags;
	dst->dev = src->dev;
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(tierfs_iomap_begin, struct fuse_bpf_inode *fi, __u64 pos, __u64 count, __u32 opflags,
	     struct fuse_iomap_begin_out *out)
{
	struct tierfs_iomap_pair pair = {};

	if (tierfs_bpf_iomap_begin(fuse_bpf_inode_nodeid(fi), pos, count, opflags, &pair) !=
	    TIERFS_IOMAP_HANDLED)
		return FIB_FALLBACK;
	copy_io(&out->read, &pair.read);
	copy_io(&out->write, &pair.write);
	return FIB_HANDLED;
}

/*
 * Reads need no bookkeeping. Writes go to the server: only it knows the file
 * size and times, and it must see every change of them.
 */
SEC("struct_ops/iomap_end")
int BPF_PROG(tierfs_iomap_end, struct fuse_bpf_inode *fi, __u64 pos, __u64 count, __s64 written,
	     __u32 opflags)
{
	return tierfs_iomap_is_write(opflags) ? FIB_FALLBACK : FIB_HANDLED;
}

/* A clean completion of an overwrite changes nothing the server tracks; anything else is its. */
SEC("struct_ops/iomap_ioend")
int BPF_PROG(tierfs_iomap_ioend, struct fuse_bpf_inode *fi, __u64 pos, __s64 written,
	     __u32 ioendflags, int error, __u32 dev, __u64 new_addr,
	     struct fuse_iomap_ioend_out *out)
{
	if (error != 0 || ioendflags != 0)
		return FIB_FALLBACK;
	return FIB_HANDLED;
}

SEC(".struct_ops")
struct fuse_iomap_bpf_ops tierfs_iomap_ops = {
	.iomap_begin = (void *)tierfs_iomap_begin,
	.iomap_end = (void *)tierfs_iomap_end,
	.iomap_ioend = (void *)tierfs_iomap_ioend,
	.fuse_fd = -1, /* set by the loader to the session's /dev/fuse descriptor */
	.name = "tierfs",
};

char LICENSE[] SEC("license") = "GPL";
