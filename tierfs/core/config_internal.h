// Shared between config.cc (TOML reading) and config_validate.cc (machine
// checks, size resolution, output). Not for use outside the config code.
#pragma once

#include <toml++/toml.h>

#include <string>

#include "tierfs/core/config.h"

namespace tierfs::config_detail {

struct Reader {
  std::string source;
  [[noreturn]] void fail(SourcePos pos, const std::string& what) const;
  uint64_t size_value(const toml::node& node, std::string_view key, const std::string& where) const;
};

SourcePos pos_of(const toml::source_region& source);

// Checks regions against the machine, refuses overlaps and resolves every
// tier's size to a whole number of rows.
void validate_against_machine(const Reader& reader, Config& config, const numa::Topology& topology);

// Resolves every tier's data path; a tier configured "kernel" that cannot have
// it is refused with the reason.
void resolve_data_paths(const Reader& reader, Config& config, const KernelFacts& facts);

}  // namespace tierfs::config_detail
