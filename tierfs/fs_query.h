// Reading the virtual xattrs of a mounted tierfs from outside (tierfs map,
// tierfs stats, tests): the value is generated on each call, so the buffer
// is sized by asking first and retried when it grew in between.
#pragma once

#include <sys/xattr.h>

#include <fmt/core.h>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

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

}  // namespace tierfs
