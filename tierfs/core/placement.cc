// Placement rules: first match wins. Path rules apply when a file is created;
// rules with a size threshold apply when fallocate gives a size hint.
#include "tierfs/core/placement.h"

#include <fnmatch.h>

namespace tierfs {

Placement::Placement(const Config& config) {
  for (const auto& tier : config.tiers) tier_names_.push_back(tier.name);
  int default_index = config.default_tier.empty() ? 0 : config.tier_index(config.default_tier);
  default_tier_ = default_index < 0 ? 0 : static_cast<uint32_t>(default_index);
  for (const auto& rule : config.placement) {
    int index = config.tier_index(rule.tier);
    if (index < 0) continue;  // the config loader refuses these; never place on a missing tier
    rules_.push_back(
        Rule{rule.path_glob, rule.min_size_bytes, static_cast<uint32_t>(index), rule.pin});
  }
}

// Globs may be written with or without the leading slash of the mount root.
bool Placement::glob_matches(const std::string& glob, const std::string& path) {
  if (glob.empty()) return true;
  if (glob.front() == '/') return fnmatch(glob.c_str(), ("/" + path).c_str(), 0) == 0;
  return fnmatch(glob.c_str(), path.c_str(), 0) == 0;
}

uint32_t Placement::for_new_file(const std::string& path, std::optional<uint32_t> inherited) const {
  for (const auto& rule : rules_) {
    if (rule.min_size_bytes) continue;  // needs a size hint, which a new file lacks
    if (glob_matches(rule.glob, path)) return rule.tier;
  }
  return inherited.value_or(default_tier_);
}

std::optional<uint32_t> Placement::for_size_hint(const std::string& path,
                                                 uint64_t size_hint_bytes) const {
  for (const auto& rule : rules_) {
    if (!rule.min_size_bytes || size_hint_bytes < *rule.min_size_bytes) continue;
    if (glob_matches(rule.glob, path)) return rule.tier;
  }
  return std::nullopt;
}

bool Placement::pinned(const std::string& path) const {
  for (const auto& rule : rules_)
    if (rule.pin && !rule.glob.empty() && glob_matches(rule.glob, path)) return true;
  return false;
}

std::optional<uint32_t> Placement::tier_named(std::string_view name) const {
  for (uint32_t i = 0; i < tier_names_.size(); ++i)
    if (tier_names_[i] == name) return i;
  return std::nullopt;
}

}  // namespace tierfs
