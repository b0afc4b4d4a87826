/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The batch the syscall twin maps per BPF_PROG_TEST_RUN: requests in, the
 * iomap_begin answers out, both in the program's .bss (memory-mapped by the
 * skeleton, so filling a batch costs no syscall). Shared by twin.bpf.c and
 * the C++ loader.
 */
#ifndef TIERFS_BPF_TWIN_H
#define TIERFS_BPF_TWIN_H

#include "iomap.h"

#define TIERFS_TWIN_BATCH 256

struct tierfs_twin_request {
	__u64 nodeid;
	__u64 pos;
	__u64 count;
	__u32 opflags;
	__u32 reserved;
};

struct tierfs_twin_answer {
	__s32 verdict; /* TIERFS_IOMAP_FALLBACK or TIERFS_IOMAP_HANDLED */
	__u32 reserved;
	struct tierfs_iomap_pair out; /* zeroed when the verdict is FALLBACK */
};

/* The context of one run: how many requests of the batch to map. */
struct tierfs_twin_ctx {
	__u32 count;
	__u32 handled; /* out: answers with TIERFS_IOMAP_HANDLED */
};

#endif /* TIERFS_BPF_TWIN_H */
