// FUSE over io_uring: whether a mount asks libfuse for it, from
// `[mount] io_uring`, what the libfuse tierfs was built against offers, and
// whether the kernel enables it (the fuse module's enable_uring parameter,
// off by default). Requests then arrive through per-core rings instead of
// read(2) on /dev/fuse: about 3x the 4 KiB IOPS of one job here
// (docs/benchmarks.md).
#pragma once

#include <string>

#include "tierfs/core/config.h"

namespace tierfs {

struct UringChoice {
  bool use = false;
  // Why not, in one line: for the log when the mode is "auto", the mount's
  // error when it is "required". Empty when use is true or the mode is "off".
  std::string why_not;
};

UringChoice choose_io_uring(FeatureMode mode);

// libfuse starts the rings after FUSE_INIT's reply is built and falls back to
// /dev/fuse when that fails, saying so only in its log: the session's log
// hook hands such lines here, and the server reads the outcome afterwards.
void note_uring_log_line(const std::string& line);
// The libfuse line that reported the rings' failure; empty when none did.
const std::string& uring_start_failure();

}  // namespace tierfs
