// Running the helper programs of job-wide scratch (the MooseFS daemons and
// tools): argv without a shell, output captured, a time limit.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace tierfs::jobs {

struct ProgramResult {
  int exit_status = -1;    // -1: killed by a signal or at the time limit
  bool not_found = false;  // argv[0] could not be run (not installed)
  bool timed_out = false;
  std::string output;  // stdout and stderr together
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null and waits for it
// to exit, at most `limit` (then SIGKILL). Daemons that fork into the
// background are waited for only until their first process exits: output
// that the background process writes later is not read.
ProgramResult run_program(const std::vector<std::string>& argv, std::chrono::milliseconds limit);

}  // namespace tierfs::jobs
