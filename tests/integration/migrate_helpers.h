// Helpers of the migration and mover tests: a mount with three layouts (two
// carved from one region file), the tiers a file's extents are on, the
// migrate ioctl on an open file, and a bounded wait for a file to arrive.
#pragma once

#include <sys/ioctl.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "tests/integration/mount_fixture.h"
#include "tierfs/cli/virtual_xattr.h"
#include "tierfs/core/migrate_ioctl.h"

namespace tierfs::testing {

// fast: DRAM, 4 KiB units; slow: a file, 64 KiB units; narrow: the same file
// from 64 MiB on and DRAM, 16 KiB units weighted 3:1. Moving between slow and
// narrow re-stripes a file over the same region file.
//
// Every tier on the server path: these suites check the server's extent moves
// (files held open and mapped, re-striping); the kernel path's moves have
// their own tests (kernel_migrate.sh, kernel_move.sh, kernel_full.sh).
inline TestConfig three_layouts() {
  TestConfig config;
  config.tiers.push_back(
      {"fast", {"numa:0"}, "64MiB", "4KiB", false, {}, {}, "data_path = \"server\""});
  config.tiers.push_back({"slow", {"file:@WORK@/shared.img"}, "64MiB", "64KiB", true});
  config.tiers.push_back({"narrow",
                          {"file:@WORK@/shared.img", "numa:0"},
                          "32MiB",
                          "16KiB",
                          true,
                          {"64MiB", ""},
                          {3, 1}});
  return config;
}

inline std::set<std::string> tiers_of(const std::string& path) {
  std::set<std::string> names;
  try {
    for (const auto& extent : read_extent_map(path).extents) names.insert(extent.tier);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  return names;
}

// 0 or errno: what `tierfs migrate` sends, on a descriptor a test holds open.
inline int migrate_fd(int fd, const std::string& tier, uint32_t flags = 0) {
  MigrateRequest request{};
  std::strncpy(request.tier, tier.c_str(), sizeof request.tier - 1);
  request.flags = flags;
  return ioctl(fd, kMigrateIoctl, &request) == 0 ? 0 : errno;
}

// Polls until every extent of `path` is on `tier`; false after `limit`
// (a bound on a background move that never comes, not a timing check).
inline bool wait_for_tier(const std::string& path, const std::string& tier,
                          std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < give_up) {
    if (tiers_of(path) == std::set<std::string>{tier}) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace tierfs::testing
