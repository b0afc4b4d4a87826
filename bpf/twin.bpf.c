/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The stock-kernel twin of iomap.bpf.c: a SEC("syscall") program that runs
 * the same iomap_begin body over the same maps for a batch of requests, under
 * BPF_PROG_TEST_RUN. Every kernel with BPF loads it, so the real verifier and
 * JIT check the mapping code on machines without the fuse-iomap series.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "iomap_maps.bpf.h"
#include "twin.h"

struct tierfs_twin_request requests[TIERFS_TWIN_BATCH];
struct tierfs_twin_answer answers[TIERFS_TWIN_BATCH];

static long map_one_request(__u64 index, __u32 *handled)
{
	struct tierfs_twin_request *req = &requests[index & (TIERFS_TWIN_BATCH - 1)];
	struct tierfs_twin_answer *ans = &answers[index & (TIERFS_TWIN_BATCH - 1)];
	struct tierfs_iomap_pair out = {};

	ans->verdict =
		tierfs_bpf_iomap_begin(req->nodeid, req->pos, req->count, req->opflags, &out);
	ans->reserved = 0;
	if (ans->verdict == TIERFS_IOMAP_HANDLED)
		*handled += 1;
	ans->out = out;
	return 0;
}

SEC("syscall")
int map_batch(struct tierfs_twin_ctx *ctx)
{
	__u32 count = ctx->count;
	__u32 handled = 0;

	if (count > TIERFS_TWIN_BATCH)
		return -1;
	/* bpf_loop: the verifier checks the body once, not once per request. */
	bpf_loop(count, map_one_request, &handled, 0);
	ctx->handled = handled;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
