// See request_gate.h.
#include "tierfs/server/request_gate.h"

#include <linux/fuse.h>
#include <poll.h>
#include <semaphore.h>

#include <atomic>
#include <cerrno>

namespace tierfs {

namespace {

// Reads and writes up to this size keep the reading thread: their copy takes
// a few microseconds. Larger ones let the next worker read meanwhile, so two
// streams of 1 MiB requests copy on both cores.
constexpr size_t kQuickDataBytes = size_t{64} << 10;

// The right to read /dev/fuse. A POSIX semaphore because sem_wait is a
// cancellation point: libfuse ends its loop by cancelling the workers, and a
// worker waiting here must end with them (a futex-based C++ semaphore would
// keep it waiting forever).
struct Token {
  sem_t sem{};
  Token() { sem_init(&sem, 0, 1); }
} token;

// Workers serving a request while others may be served too (all but a
// holder that kept the token), from their read to their next one.
std::atomic<int> processing{0};

// This worker's part: whether it holds the token, and whether it is counted
// in `processing`. A worker that ends while holding the token (libfuse
// retires idle workers; cancellation at unmount) gives it back.
struct Worker {
  bool held = false;
  bool counted = false;
  Worker() = default;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() { leave(); }
  void leave() {
    if (counted) processing.fetch_sub(1, std::memory_order_relaxed);
    if (held) sem_post(&token.sem);
    counted = held = false;
  }
};
thread_local Worker worker;

// Nobody else is queued: poll with no timeout, one system call.
bool queue_empty(int fuse_fd) {
  pollfd p{fuse_fd, POLLIN, 0};
  return poll(&p, 1, 0) == 0;
}

}  // namespace

bool gate_keeps_request(unsigned opcode, size_t data_bytes) {
  switch (opcode) {
    case FUSE_READ:
    case FUSE_WRITE:
      return data_bytes <= kQuickDataBytes;
    case FUSE_LOOKUP:
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_GETATTR:
    case FUSE_OPEN:
    case FUSE_RELEASE:
    case FUSE_FLUSH:
    case FUSE_CREATE:
    case FUSE_UNLINK:
    case FUSE_MKDIR:
    case FUSE_OPENDIR:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
    case FUSE_RELEASEDIR:
    case FUSE_ACCESS:
    case FUSE_STATFS:
    case FUSE_LSEEK:
      return true;
    default:  // may wait on the log's storage, move data, or scan: fsync, ioctl, xattrs, ...
      return false;
  }
}

void gate_leave() {
  worker.leave();
}

void gate_hand_over() {
  if (!worker.held) return;
  worker.held = false;
  if (!worker.counted) {
    worker.counted = true;
    processing.fetch_add(1, std::memory_order_relaxed);
  }
  sem_post(&token.sem);
}

void gate_before_read(int fuse_fd) {
  if (worker.counted) {
    worker.counted = false;
    processing.fetch_sub(1, std::memory_order_relaxed);
  }
  if (worker.held) return;
  if (sem_trywait(&token.sem) == 0) {
    worker.held = true;
    return;
  }
  // Clients are busy (other workers are serving requests, or requests are
  // queued): read as libfuse would, so every worker is fed. Otherwise wait
  // for the token: the holder serves a lone client on its own.
  if (processing.load(std::memory_order_relaxed) > 0 || !queue_empty(fuse_fd)) return;
  while (sem_wait(&token.sem) != 0 && errno == EINTR) {
  }
  worker.held = true;
}

void gate_after_read(int fuse_fd, const void* buf, ssize_t res) {
  if (res <= 0) {
    worker.leave();
    return;
  }
  if (worker.held && processing.load(std::memory_order_relaxed) == 0 &&
      res >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    const auto* in = static_cast<const fuse_in_header*>(buf);
    size_t data_bytes = 0;
    // READ and WRITE carry the size at the same place (fuse_read_in, fuse_write_in).
    if ((in->opcode == FUSE_READ || in->opcode == FUSE_WRITE) &&
        res >= static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(fuse_read_in)))
      data_bytes = reinterpret_cast<const fuse_read_in*>(in + 1)->size;
    // The lone client's request: serve it and read the next one here.
    if (gate_keeps_request(in->opcode, data_bytes) && queue_empty(fuse_fd)) return;
  }
  // Others are served meanwhile: this worker counts as busy until its next read.
  processing.fetch_add(1, std::memory_order_relaxed);
  worker.counted = true;
  if (worker.held) {
    worker.held = false;
    sem_post(&token.sem);
  }
}

}  // namespace tierfs
