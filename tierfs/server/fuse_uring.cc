#include "tierfs/server/fuse_uring.h"

#include <fuse_lowlevel.h>

#include <fstream>

namespace tierfs {
namespace {

constexpr const char* kEnableUring = "/sys/module/fuse/parameters/enable_uring";

std::string start_failure;

}  // namespace

UringChoice choose_io_uring(FeatureMode mode) {
  if (mode == FeatureMode::off) return {};
#ifndef FUSE_CAP_OVER_IO_URING
  return {.use = false,
          .why_not = "FUSE over io_uring: off, tierfs was built against libfuse " +
                     std::to_string(FUSE_MAJOR_VERSION) + "." + std::to_string(FUSE_MINOR_VERSION) +
                     ", which has none (build against 3.18: scripts/build_libfuse.sh)"};
#else
  std::ifstream parameter(kEnableUring);
  char enabled = 0;
  if (!(parameter >> enabled))
    return {.use = false,
            .why_not = "FUSE over io_uring: off, this kernel has none (no " +
                       std::string(kEnableUring) + ")"};
  if (enabled != 'Y')
    return {.use = false,
            .why_not =
                "FUSE over io_uring: off, the kernel's fuse.enable_uring is N (an "
                "administrator enables it: echo Y > " +
                std::string(kEnableUring) + ")"};
  return {.use = true, .why_not = {}};
#endif
}

void note_uring_log_line(const std::string& line) {
  // "fuse: failed to start io-uring: ...", "qid=N io_uring init failed",
  // "Failed to create eventfd for qid N: ..." (libfuse 3.18's fuse_uring.c).
  const bool about_rings = line.find("io-uring") != std::string::npos ||
                           line.find("io_uring") != std::string::npos ||
                           line.find("qid") != std::string::npos;
  if (about_rings && line.find("ail") != std::string::npos) start_failure = line;
}

const std::string& uring_start_failure() {
  return start_failure;
}

}  // namespace tierfs
