// See bdi_tuning.h. FUSE gives every mount a backing device info with 128 KiB
// of readahead, and FUSE_INIT's max_readahead can only lower it; sysfs can
// raise it. With cache = "kernel" the page cache is a copy of region memory,
// so dirty pages may take a larger share of the dirty limit than FUSE's 1 %
// (strictlimit): writeback is a memory copy in the server, never a disk.
// write(2) dirties no pages on either mode (fs_session.cc: no FUSE writeback
// cache); the dirty pages are those stored through shared writable maps.
#include "tierfs/server/bdi_tuning.h"

#include <fuse_lowlevel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace tierfs {

namespace {

// Readahead of this many requests: the kernel then keeps READs in flight
// while the reader copies the previous window.
constexpr uint64_t readahead_requests = 4;
// Share (percent) of the system's dirty limit this mount's dirty pages may use.
constexpr int dirty_max_ratio_percent = 20;

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      out += static_cast<char>(std::strtol(field.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

// The "MAJOR:MINOR" of the last mount on `path` (the one on top).
std::string device_of_mount(const std::string& path) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line, device;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (fields >> id >> parent >> dev >> root >> point && unescape_mountinfo(point) == path)
      device = dev;
  }
  return device;
}

bool write_sysfs(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

uint64_t readahead_bytes(const MountOptions& mount) {
  return readahead_requests * mount.max_io_bytes;
}

// The most pages the kernel puts in one request: fs.fuse.max_pages_limit
// (256 unless the administrator raised it), and libfuse before 3.17 sizes its
// buffer for 256.
static uint64_t request_page_limit() {
  uint64_t limit = 256;
  std::ifstream sysctl("/proc/sys/fs/fuse/max_pages_limit");
  if (uint64_t value = 0; sysctl >> value && value > 0) limit = value;
  if (FUSE_VERSION < FUSE_MAKE_VERSION(3, 17)) limit = std::min<uint64_t>(limit, 256);
  return limit;
}

uint64_t read_request_bytes(const MountOptions& mount) {
  constexpr uint64_t page_bytes = 4096;
  const uint64_t pages = std::min(mount.max_io_bytes / page_bytes, request_page_limit());
  // One-page requests (max_io 4 KiB) cannot be made smaller.
  if (mount.cache == CacheMode::kernel || pages < 2) return mount.max_io_bytes;
  return (pages - 1) * page_bytes;
}

void tune_bdi(const std::string& mountpoint, const MountOptions& mount) {
  char* resolved = realpath(mountpoint.c_str(), nullptr);
  std::string path = resolved ? resolved : mountpoint;
  free(resolved);
  std::string device = device_of_mount(path);
  if (device.empty()) {
    spdlog::warn("readahead and dirty limit left at the kernel's defaults: {} not in mountinfo",
                 path);
    return;
  }
  std::string bdi = "/sys/class/bdi/" + device + "/";
  bool ok = write_sysfs(bdi + "read_ahead_kb", std::to_string(readahead_bytes(mount) / 1024));
  if (mount.cache == CacheMode::kernel)
    ok = write_sysfs(bdi + "max_ratio", std::to_string(dirty_max_ratio_percent)) && ok;
  if (!ok)
    spdlog::warn("readahead and dirty limit left at the kernel's defaults: cannot write {}", bdi);
}

}  // namespace tierfs
