// Shared mmap on direct-I/O files (cache = "none"): the kernel (6.6+) allows
// MAP_SHARED on a FOPEN_DIRECT_IO file only when the server answered FUSE_INIT
// with FUSE_DIRECT_IO_ALLOW_MMAP. libfuse 3.16+ has a capability bit for it;
// libfuse 3.14 (Debian 12) has none, so this module adds the flag to the INIT
// reply through libfuse's custom-I/O hooks (and HANDLE_KILLPRIV, below).
#pragma once

#include <fuse_lowlevel.h>

namespace tierfs {

// Whether the built libfuse can ask for FUSE_DIRECT_IO_ALLOW_MMAP in fs_init.
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
inline constexpr bool libfuse_has_direct_io_allow_mmap = true;
#else
inline constexpr bool libfuse_has_direct_io_allow_mmap = false;
#endif

// Installs the I/O hooks on a mounted session: the request gate
// (request_gate.h) with every libfuse, the INIT flag with libfuse < 3.16.
// Returns an empty string or one line saying why it could not.
const char* ask_direct_io_allow_mmap(fuse_session* session);

// True once the kernel offered FUSE_DIRECT_IO_ALLOW_MMAP and the INIT reply
// carried it (either through libfuse or through the hooks).
bool direct_io_allow_mmap_granted();
void note_direct_io_allow_mmap_granted();

// The INIT reply carries FUSE_HANDLE_KILLPRIV when the kernel offered it
// (setid_rules.h): libfuse 3.14 never puts it there, whatever `want` says.
// With libfuse 3.18 (no hooks) libfuse's own reply carries it.
void ask_handle_killpriv();

}  // namespace tierfs
