// The SIGBUS guard around data copies: a thread-local jump buffer per copy
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

const void* guarded_copy(void* dst, const void* src, size_t n) {
  sigjmp_buf jump;
  if (sigsetjmp(jump, 0) != 0) return fault_address;
  armed = &jump;
  // The compiler must not move the copy outside the armed window.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  armed = nullptr;
  return nullptr;
}

}  // namespace tierfs
