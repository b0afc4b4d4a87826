// Reading the virtual xattrs of a mounted tierfs from outside (tierfs map,
// tierfs stats, tests): the value is generated on each call, so the buffer
// is sized by asking first and retried when it grew in between.
#pragma once

#include <sys/xattr.h>

#include <fmt/core.h>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "tierfs/core/inspect_schema.h"

namespace tierfs {

inline std::string read_virtual_xattr(const std::string& path, const char* name,
                                      const char* what_for) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    ssize_t size = getxattr(path.c_str(), name, nullptr, 0);
    if (size < 0) break;
    std::string value(static_cast<size_t>(size) + 4096, '\0');
    ssize_t got = getxattr(path.c_str(), name, value.data(), value.size());
    if (got >= 0) {
      value.resize(static_cast<size_t>(got));
      return value;
    }
    if (errno != ERANGE) break;
  }
  if (errno == ENODATA || errno == ENOTSUP)
    throw std::runtime_error(fmt::format("{}: not {}", path, what_for));
  throw std::runtime_error(fmt::format("{}: {}", path, strerror(errno)));
}

// The whole extent map of `path`: the pages of user.tierfs.map joined into
// one (see extent_map_json in tierfs/server/operations.h).
inline inspect::MapPage read_extent_map(const std::string& path) {
  const char* what_for = "a regular file on a tierfs mount";
  auto map = nlohmann::json::parse(read_virtual_xattr(path, "user.tierfs.map", what_for))
                 .get<inspect::MapPage>();
  // Bounded by the extent count: each page holds at least one extent.
  while (map.next_extent) {
    const std::string name = fmt::format("user.tierfs.map@{}", *map.next_extent);
    auto page = nlohmann::json::parse(read_virtual_xattr(path, name.c_str(), what_for))
                    .get<inspect::MapPage>();
    for (auto& extent : page.extents) map.extents.push_back(std::move(extent));
    map.next_extent = page.next_extent;
  }
  map.first_extent.reset();
  return map;
}

inline inspect::Stats read_stats(const std::string& mountpoint) {
  return nlohmann::json::parse(
             read_virtual_xattr(mountpoint, "user.tierfs.stats", "a tierfs mount point"))
      .get<inspect::Stats>();
}

}  // namespace tierfs
