// The SIGBUS guard around data copies and zeroing: a thread-local jump buffer per copy
// and one handler. See copy_guard.h for why.
#include "tierfs/core/copy_guard.h"

#include <csetjmp>
#include <csignal>
#include <cstring>

#include <atomic>
#include <mutex>

namespace tierfs {
namespace {

// initial-exec: the handler reads these without the lazy TLS resolution
// that is not async-signal-safe.
[[gnu::tls_model("initial-exec")]] thread_local sigjmp_buf* armed = nullptr;
[[gnu::tls_model("initial-exec")]] thread_local const void* fault_address = nullptr;

void on_sigbus(int signal, siginfo_t* info, void* /*context*/) {
  sigjmp_buf* jump = armed;
  // si_code > 0: raised by the kernel for this thread's access, not sent by kill(2).
  if (jump != nullptr && info->si_code > 0) {
    armed = nullptr;
    fault_address = info->si_addr;
    siglongjmp(*jump, 1);
  }
  // Not inside a guarded copy: the default action, as without the guard.
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

}  // namespace

void install_copy_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    // SA_NODEFER: SIGBUS stays unblocked after the jump, so sigsetjmp need not
    // save and restore the signal mask (a system call per copy).
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, nullptr);
  });
}

namespace {

// One armed window around Access::run, instantiated per access so that the
// memcpy or memset is inlined into it (a function that calls sigsetjmp is
// never inlined itself). Returns the faulting address or nullptr.
template <typename Access>
const void* run_guarded(void* dst, const void* src, size_t n) {
  sigjmp_buf jump;
  if (sigsetjmp(jump, 0) != 0) return fault_address;
  armed = &jump;
  // The compiler must not move the access outside the armed window.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  Access::run(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  armed = nullptr;
  return nullptr;
}

struct Copy {
  static void run(void* dst, const void* src, size_t n) { std::memcpy(dst, src, n); }
};
struct Zero {
  static void run(void* dst, const void* /*src*/, size_t n) { std::memset(dst, 0, n); }
};

}  // namespace

const void* guarded_copy(void* dst, const void* src, size_t n) {
  return run_guarded<Copy>(dst, src, n);
}

const void* guarded_zero(void* dst, size_t n) {
  return run_guarded<Zero>(dst, nullptr, n);
}

}  // namespace tierfs
