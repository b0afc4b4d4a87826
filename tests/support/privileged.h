// Skips a test whose privilege (root, /dev/fuse, BPF) is missing, with the
// reason; fails it instead when TIERFS_REQUIRE_PRIVILEGED=1, so CI cannot skip.
#pragma once

#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tierfs::testing {

inline bool privileged_required() {
  const char* v = std::getenv("TIERFS_REQUIRE_PRIVILEGED");
  return v != nullptr && std::string(v) == "1";
}

// Empty when everything needed is present, else the reason.
inline std::string missing_root() {
  return geteuid() == 0 ? "" : "needs root";
}
inline std::string missing_fuse() {
  if (access("/dev/fuse", R_OK | W_OK) != 0) return "needs /dev/fuse";
  return "";
}

// BPF: this process can create a map (root or CAP_BPF, bpf() not disabled).
inline std::string missing_bpf() {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  const long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
  if (fd >= 0) {
    close(static_cast<int>(fd));
    return "";
  }
  if (errno == EPERM || errno == EACCES) return "needs BPF (root or CAP_BPF)";
  return std::string("needs BPF (bpf() fails: ") + std::strerror(errno) + ")";
}

}  // namespace tierfs::testing

// Use at the top of a test body: TIERFS_REQUIRE(tierfs::testing::missing_fuse());
#define TIERFS_REQUIRE(reason_expr)                                                      \
  do {                                                                                   \
    const std::string tierfs_reason_ = (reason_expr);                                    \
    if (!tierfs_reason_.empty()) {                                                       \
      if (tierfs::testing::privileged_required())                                        \
        FAIL() << tierfs_reason_ << " and TIERFS_REQUIRE_PRIVILEGED=1 forbids skipping"; \
      GTEST_SKIP() << tierfs_reason_;                                                    \
    }                                                                                    \
  } while (0)
