// The staging copier behind `tierfs stage in|out`: copies files and trees in
// parallel threads (one file per thread at a time), keeping modes, times,
// owners (when run as root), symlinks and holes, and checks every file with
// XXH3-64 (libxxhash): the hash of the source bytes as read is compared with
// the manifest's, when given, and with a second read of the copy.
//
// Resumable: a file is written to DEST.tierfs-part, tagged with the source's
// size and mtime in the xattr user.tierfs.stage, and renamed into place when
// it is complete and verified. A later run continues a part whose tag still
// matches its source, and skips a destination whose size and mtime equal the
// source's (rsync's quick check).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tierfs/jobs/stage_manifest.h"

namespace tierfs::jobs {

struct StageOptions {
  unsigned threads = 0;  // 0 = as many as CPUs
  bool verify = true;    // re-read every copy and compare its XXH3
  // Called about every 200 ms and once at the end, from a thread of its own.
  std::function<void(uint64_t bytes_done, uint64_t bytes_total)> progress;
  // Polled between chunks; true stops the copy, leaving resumable parts.
  std::function<bool()> should_stop;
};

struct StageEntryResult {
  std::string source;
  std::string destination;
  uint64_t files = 0;  // regular files in the entry
  uint64_t bytes = 0;  // their sizes together
  uint64_t files_copied = 0;
  uint64_t files_resumed = 0;  // continued from a part of an interrupted run
  uint64_t files_skipped = 0;  // destination already complete
  uint64_t bytes_written = 0;  // what this run wrote (holes are not written)
  std::string xxh3;            // of a single-file entry's source, hex
  std::vector<std::string> errors;
};

struct StageReport {
  std::string direction;  // "in" or "out"
  std::vector<StageEntryResult> entries;
  unsigned threads = 0;
  double seconds = 0;
  bool interrupted = false;
  bool ok() const;
  nlohmann::json to_json() const;
};

StageReport run_stage(const std::vector<StageEntry>& entries, const std::string& direction,
                      const StageOptions& options);

// XXH3-64 of a file's bytes (holes read as zeros). Throws std::runtime_error.
uint64_t file_xxh3(const std::string& path);

}  // namespace tierfs::jobs
