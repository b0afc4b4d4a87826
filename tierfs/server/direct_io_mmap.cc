// See direct_io_mmap.h. The hooks read and write /dev/fuse exactly as libfuse
// does (read(2), writev(2)); the read hook remembers the unique id of the
// kernel's FUSE_INIT and what it offers, and the writev hook sets the flags
// libfuse left out in that one reply. Every other request passes
// through untouched (one compare per request). The read hook is also where
// the request gate (request_gate.h) picks the worker that reads.
#include "tierfs/server/direct_io_mmap.h"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "tierfs/server/request_gate.h"

namespace tierfs {

namespace {

// The kernel's value (include/uapi/linux/fuse.h, 7.39); Debian 12's headers
// (Linux 6.1) predate it.
constexpr uint64_t kDirectIoAllowMmap = 1ULL << 36;
constexpr uint32_t kDirectIoAllowMmapFlags2 = static_cast<uint32_t>(kDirectIoAllowMmap >> 32);

std::atomic<uint64_t> init_unique{0};  // 0: no INIT seen yet, or answered
std::atomic<bool> init_seen{false};
std::atomic<bool> offers_mmap{false};
std::atomic<bool> offers_killpriv{false};
std::atomic<bool> wants_killpriv{false};
std::atomic<bool> granted{false};

ssize_t read_request(int fd, void* buf, size_t len, void* /*userdata*/) {
  gate_before_read(fd);
  ssize_t res = read(fd, buf, len);
  gate_after_read(fd, buf, res);
  if (init_seen.load(std::memory_order_relaxed) ||
      res < static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(fuse_init_in)))
    return res;
  const auto* in = static_cast<const fuse_in_header*>(buf);
  if (in->opcode != FUSE_INIT) return res;
  const auto* init = reinterpret_cast<const fuse_init_in*>(in + 1);
  offers_mmap.store((init->flags & FUSE_INIT_EXT) && (init->flags2 & kDirectIoAllowMmapFlags2),
                    std::memory_order_relaxed);
  offers_killpriv.store((init->flags & FUSE_HANDLE_KILLPRIV) != 0, std::memory_order_relaxed);
  init_unique.store(in->unique, std::memory_order_relaxed);
  init_seen.store(true, std::memory_order_relaxed);
  return res;
}

ssize_t write_reply(int fd, iovec* iov, int count, void* /*userdata*/) {
  uint64_t unique = init_unique.load(std::memory_order_relaxed);
  if (unique != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
      static_cast<const fuse_out_header*>(iov[0].iov_base)->unique == unique &&
      iov[1].iov_len >= sizeof(fuse_init_out)) {
    auto* out = static_cast<fuse_init_out*>(iov[1].iov_base);
    // libfuse sets FUSE_INIT_EXT in its reply exactly when the kernel sent it.
    if (!libfuse_has_direct_io_allow_mmap && offers_mmap.load(std::memory_order_relaxed) &&
        (out->flags & FUSE_INIT_EXT)) {
      out->flags2 |= kDirectIoAllowMmapFlags2;
      granted.store(true, std::memory_order_relaxed);
    }
    // libfuse 3.14 takes FUSE_CAP_HANDLE_KILLPRIV into `want` but never into its reply.
    if (wants_killpriv.load(std::memory_order_relaxed) &&
        offers_killpriv.load(std::memory_order_relaxed))
      out->flags |= FUSE_HANDLE_KILLPRIV;
    init_unique.store(0, std::memory_order_relaxed);
  }
  return writev(fd, iov, count);
}

}  // namespace

const char* ask_direct_io_allow_mmap(fuse_session* session) {
  // Installed with every libfuse: the request gate runs in the read hook. A
  // libfuse that asks for the flag itself (3.16+) leaves the INIT reply alone.
  static const fuse_custom_io io = {write_reply, read_request, nullptr, nullptr};
  // Same fd as the mount's: libfuse now reads and replies through the hooks.
  if (fuse_session_custom_io(session, &io, fuse_session_fd(session)) != 0)
    return libfuse_has_direct_io_allow_mmap
               ? "libfuse refused the I/O hooks; requests are read without the request gate"
               : "libfuse refused the I/O hooks; shared mmap needs cache = \"kernel\"";
  return "";
}

bool direct_io_allow_mmap_granted() {
  return granted.load(std::memory_order_relaxed);
}
void note_direct_io_allow_mmap_granted() {
  granted.store(true, std::memory_order_relaxed);
}

void ask_handle_killpriv() {
  wants_killpriv.store(true, std::memory_order_relaxed);
}

}  // namespace tierfs
