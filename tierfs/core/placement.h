// Which tier a new file's data goes to: the first placement rule of the
// configuration that matches (path glob, size hint), else the file's or its
// directory's user.tierfs.tier, else the configured default. Spilling to the
// next tier when this one is full is the data layer's job, not placement's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tierfs/core/config.h"

namespace tierfs {

// Name of the xattr that asks for a tier on a file or, inherited, a directory.
inline constexpr std::string_view tier_xattr_name = "user.tierfs.tier";

class Placement {
 public:
  explicit Placement(const Config& config);

  // Tier for a file created at `path` (relative to the mount root, no leading
  // slash); `inherited` is the tier its directory asks for, if any.
  uint32_t for_new_file(const std::string& path, std::optional<uint32_t> inherited) const;
  // Tier that a size-hint rule (min_size) picks for `path` once fallocate
  // announces `size_hint_bytes`; nullopt when no such rule matches.
  std::optional<uint32_t> for_size_hint(const std::string& path, uint64_t size_hint_bytes) const;
  // Whether a path rule with pin = true matches `path`: the mover leaves it alone.
  bool pinned(const std::string& path) const;
  // Index of a tier by name, nullopt when the configuration has none.
  std::optional<uint32_t> tier_named(std::string_view name) const;

 private:
  struct Rule {
    std::string glob;
    std::optional<uint64_t> min_size_bytes;
    uint32_t tier = 0;
    bool pin = false;
  };
  static bool glob_matches(const std::string& glob, const std::string& path);
  std::vector<Rule> rules_;
  std::vector<std::string> tier_names_;
  uint32_t default_tier_ = 0;
};

}  // namespace tierfs
