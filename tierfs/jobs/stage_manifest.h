// Stage manifests (`tierfs stage in|out --manifest FILE`): what to copy where,
// in TOML, with an optional checksum of each source file:
//
//   threads = 4                          # optional, default: the CPUs
//   report = "/home/u/job-42-stage.json" # optional JSON report
//   [[copy]]
//   source = "results"                   # relative to the manifest's directory
//   destination = "/home/u/runs/42/results"
//   [[copy]]
//   source = "input.dat"
//   destination = "/home/u/input.dat"
//   xxh3 = "5e0a1b2c3d4e5f60"            # 64-bit XXH3 of the source's bytes, hex
//
// Loading throws ConfigError ("FILE:LINE:COLUMN: what").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tierfs/core/config.h"

namespace tierfs::jobs {

struct StageEntry {
  std::string source;            // absolute
  std::string destination;       // absolute
  std::optional<uint64_t> xxh3;  // expected XXH3-64 of the source file's bytes
  SourcePos pos;
};

struct StageManifest {
  std::string source;  // file name, for messages
  std::vector<StageEntry> entries;
  unsigned threads = 0;  // 0 = as many as CPUs
  std::string report;    // where to write the JSON report; empty = none
};

// Relative paths are resolved against base_dir (the manifest's directory).
StageManifest parse_stage_manifest(std::string_view text, const std::string& source_name,
                                   const std::string& base_dir);
StageManifest load_stage_manifest(const std::string& path);

// "5e0a1b2c3d4e5f60" -> value; nullopt unless exactly 16 hex digits.
std::optional<uint64_t> parse_xxh3_hex(std::string_view text);
std::string xxh3_hex(uint64_t value);

}  // namespace tierfs::jobs
