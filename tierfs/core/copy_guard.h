// Data copies and zeroing of region memory that survive a SIGBUS. The kernel delivers
// SIGBUS for a load or store that hits a hardware memory error (poison on a
// DAX or CXL device) or backing storage that is gone (a region file cut
// short under the server). Without a guard that kills the server and every
// file on the mount; with it, the one request that copied fails with EIO.
//
// How: each copy runs with a thread-local jump buffer armed; the SIGBUS
// handler (SA_SIGINFO, for si_addr) jumps back out of the copy when one is
// armed on the faulting thread and otherwise restores the default action, so
// a SIGBUS anywhere else still ends the process as it would have. The copy is
// a plain memcpy (the zeroing a plain memset): it holds no lock and allocates
// nothing, so leaving it half-way leaves nothing inconsistent but the
// destination bytes.
#pragma once

#include <cstddef>

namespace tierfs {

// Installs the process-wide SIGBUS handler (idempotent). The server calls it
// once before it serves.
void install_copy_fault_handler();

// memcpy(dst, src, n). Returns nullptr, or the address that faulted (in dst
// or src) when the copy took a SIGBUS; then only part of dst was written.
// Without the handler installed a SIGBUS kills the process as before.
const void* guarded_copy(void* dst, const void* src, size_t n);

// memset(dst, 0, n), guarded the same way: nullptr, or the address that
// faulted (bytes before it are zero, bytes from it on untouched).
const void* guarded_zero(void* dst, size_t n);

}  // namespace tierfs
