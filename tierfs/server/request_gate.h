// Which of libfuse's worker threads reads the next request from /dev/fuse.
//
// libfuse's multithreaded loop has every idle worker blocked in read(2) of
// /dev/fuse, and the kernel wakes them in turn (first come, first woken). One
// process doing synchronous I/O therefore gets each reply from a different
// worker, often one that last ran on another CPU: such a request pays a
// cross-CPU wake-up (an IPI, costly in a VM) and a cold thread. The gate lets
// one worker read at a time and lets it keep reading while its requests are
// quick and nobody else is queued, so a lone synchronous client is served by
// one hot thread on its own CPU (measured: docs/benchmarks.md, issue 16,
// target 4). Requests that may take long (fsync, ioctl, xattrs, fallocate,
// large reads and writes, ...) and a busy queue (poll(2) says more requests are
// waiting) hand the reading over to the next worker first, so concurrent
// clients still get as many workers as libfuse starts; so does a quick
// request that is about to wait for its file's lock (gate_hand_over). It runs
// in the read hook that direct_io_mmap.cc installs, with every libfuse; with
// FUSE over io_uring (libfuse 3.18) requests come through the rings instead
// and the gated workers only see what the kernel still sends through /dev/fuse.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace tierfs {

// Before read(2) of /dev/fuse: returns once this thread may read.
void gate_before_read(int fuse_fd);
// After read(2) returned `res` bytes of request in `buf` (or an error):
// passes the reading on unless this thread keeps serving.
void gate_after_read(int fuse_fd, const void* buf, ssize_t res);

// A request this thread kept the reading for is about to wait (a lock that
// another request holds): another worker reads meanwhile.
void gate_hand_over();
// The calling thread reads no more requests (the thread that answered FUSE_INIT).
void gate_leave();

// Whether a request of this opcode and data size is served without handing
// the reading over (exposed for tests).
bool gate_keeps_request(unsigned opcode, size_t data_bytes);

}  // namespace tierfs
