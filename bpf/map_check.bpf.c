/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Compiles the shared mapping header for BPF on every build, so a change
 * that the BPF compiler or verifier would refuse is caught at once. The
 * program maps one (layout, extent, offset) passed in its context.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "tierfs_map.h"

struct map_check_ctx {
	struct tierfs_layout layout;
	struct tierfs_extent extent;
	__u64 offset;
	struct tierfs_mapping mapping;
	__s32 status;
	__u32 reserved;
};

SEC("syscall")
int map_one(struct map_check_ctx *ctx)
{
	struct tierfs_layout layout = ctx->layout;
	struct tierfs_extent extent = ctx->extent;
	struct tierfs_mapping mapping = {};

	ctx->status = tierfs_map_extent(&layout, &extent, ctx->offset, &mapping);
	ctx->mapping = mapping;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
