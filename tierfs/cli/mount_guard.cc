// Reads /proc/self/mountinfo: field 5 is the mount point (octal escapes for
// space, tab, newline and backslash), the field after " - " the type.
#include "tierfs/cli/mount_guard.h"

#include <fmt/core.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace tierfs {
namespace {

std::string unescaped(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string digits = field.substr(i + 1, 3);
      if (digits.size() == 3 && digits.find_first_not_of("01234567") == std::string::npos) {
        out.push_back(static_cast<char>(std::stoi(digits, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

}  // namespace

std::vector<std::string> tierfs_mount_points() {
  std::vector<std::string> points;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    std::string type;
    rest >> type;
    if (type == "fuse.tierfs") points.push_back(unescaped(mount_point));
  }
  return points;
}

void refuse_served_mountpoint(const std::string& path) {
  std::error_code error;
  // Lexically first: a stale mount (its server gone) cannot be resolved.
  std::vector<std::string> candidates{
      std::filesystem::absolute(path, error).lexically_normal().string()};
  const auto resolved = std::filesystem::canonical(path, error);
  if (!error) candidates.push_back(resolved.string());
  const std::vector<std::string> served = tierfs_mount_points();
  for (std::string point : candidates) {
    if (point.size() > 1 && point.back() == '/') point.pop_back();
    if (std::ranges::find(served, point) != served.end())
      throw std::runtime_error(fmt::format(
          "mount point {} is already served by tierfs; unmount it first with fusermount3 -u {} "
          "(if its server died, the next mount adopts what it left; tierfs cleanup {} discards "
          "it)",
          point, point, point));
  }
}

void remount_served(const std::string& path, bool read_only) {
  std::error_code error;
  std::string point = std::filesystem::absolute(path, error).lexically_normal().string();
  if (point.size() > 1 && point.back() == '/') point.pop_back();
  const std::vector<std::string> served = tierfs_mount_points();
  if (std::ranges::find(served, point) == served.end())
    throw std::runtime_error(
        fmt::format("remount: {} is not a tierfs mount point; mount it first", point));
  struct statvfs st {};
  if (statvfs(point.c_str(), &st) != 0)
    throw std::runtime_error(fmt::format("remount: {}: {}", point, std::strerror(errno)));
  // MS_REMOUNT sets every per-mount flag from this call: carry the current ones over.
  unsigned long flags = MS_REMOUNT;
  if (read_only) flags |= MS_RDONLY;
  const std::pair<unsigned long, unsigned long> kept[] = {
      {ST_NOSUID, MS_NOSUID},          {ST_NODEV, MS_NODEV},           {ST_NOEXEC, MS_NOEXEC},
      {ST_NOATIME, MS_NOATIME},        {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
      {ST_SYNCHRONOUS, MS_SYNCHRONOUS}};
  for (const auto& [have, keep] : kept)
    if (st.f_flag & have) flags |= keep;
  if (mount(nullptr, point.c_str(), nullptr, flags, nullptr) != 0) {
    const int err = errno;
    throw std::runtime_error(
        fmt::format("remount {} {}: {}{}", read_only ? "ro" : "rw", point, std::strerror(err),
                    err == EBUSY && read_only ? " (a file is open for writing)" : ""));
  }
}

}  // namespace tierfs
