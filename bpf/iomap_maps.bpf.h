/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The BPF maps the server keeps current (tier layouts, per-inode extents) and
 * the one iomap_begin body that reads them, included by the struct_ops
 * program (iomap.bpf.c) and its syscall twin (twin.bpf.c) so that both run
 * the same code over the same maps. The loader shares the maps between the
 * two objects (bpf_map__reuse_fd), so the twin checks what the program reads.
 */
#ifndef TIERFS_BPF_IOMAP_MAPS_BPF_H
#define TIERFS_BPF_IOMAP_MAPS_BPF_H

#include <bpf/bpf_helpers.h>

#include "iomap.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TIERFS_MAX_TIERS);
	__type(key, __u32);
	__type(value, struct tierfs_tier_value);
} tierfs_tiers SEC(".maps");

/*
 * Not preallocated: a mount rarely holds 65536 files with data, and a
 * preallocated map would pin about 40 MiB of kernel memory per mount.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TIERFS_MAX_MAPPED_INODES);
	__type(key, __u64);
	__type(value, struct tierfs_inode_value);
} tierfs_inodes SEC(".maps");

struct tierfs_fill_args {
	__u64 pos;
	__u64 count;
	__u64 hole_start;
	__u64 hole_end;
	__u32 index;
	__u32 opflags;
};

/*
 * A global function, so the verifier checks it once on its own instead of
 * once for every way tierfs_find_extent can end: inlined, the product of the
 * two loops' exits takes the verifier past its 10^6-instruction limit. Its
 * pointer arguments may be NULL as far as the verifier knows.
 */
__noinline int tierfs_bpf_fill(const struct tierfs_inode_value *inode,
			       const struct tierfs_tier_value *tier,
			       const struct tierfs_fill_args *args, struct tierfs_iomap_pair *out)
{
	struct tierfs_extent_hit hit;

	if (!inode || !args || !out)
		return TIERFS_IOMAP_FALLBACK;
	hit.index = args->index;
	hit.reserved = 0;
	hit.hole_start = args->hole_start;
	hit.hole_end = args->hole_end;
	return tierfs_iomap_fill(inode, hit, tier, args->pos, args->count, args->opflags, out);
}

/*
 * Looks the inode and its extent's tier up and fills *out. An array map
 * returns a zeroed value for a tier never set: its ways = 0 makes
 * tierfs_map_extent refuse it, so that too falls back.
 */
static __always_inline int tierfs_bpf_iomap_begin(__u64 nodeid, __u64 pos, __u64 count,
						  __u32 opflags, struct tierfs_iomap_pair *out)
{
	const struct tierfs_inode_value *inode;
	const struct tierfs_tier_value *tier = NULL;
	struct tierfs_fill_args args = {};
	struct tierfs_extent_hit hit;
	__u32 tier_key;

	inode = bpf_map_lookup_elem(&tierfs_inodes, &nodeid);
	if (!inode)
		return TIERFS_IOMAP_FALLBACK;
	hit = tierfs_find_extent(inode, pos);
	if (hit.index < TIERFS_MAX_INODE_EXTENTS) {
		tier_key = inode->extents[hit.index & (TIERFS_MAX_INODE_EXTENTS - 1)].tier;
		tier = bpf_map_lookup_elem(&tierfs_tiers, &tier_key);
	}
	args.pos = pos;
	args.count = count;
	args.hole_start = hit.hole_start;
	args.hole_end = hit.hole_end;
	args.index = hit.index;
	args.opflags = opflags;
	return tierfs_bpf_fill(inode, tier, &args, out);
}

#endif /* TIERFS_BPF_IOMAP_MAPS_BPF_H */
