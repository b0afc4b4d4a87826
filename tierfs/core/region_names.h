// The name of the shared-memory object behind a numa: region. One definition:
// the server creates the objects under it, and `tierfs job stop` finds what a
// crashed server left behind in /dev/shm with it.
#pragma once

#include <sys/types.h>

#include <fmt/format.h>
#include <string>

namespace tierfs {

// "/tierfs.<server pid>.<tier>.<region index>", as shm_open(3) takes it.
inline std::string region_shm_name(pid_t server_pid, const std::string& tier, size_t index) {
  return fmt::format("/tierfs.{}.{}.{}", server_pid, tier, index);
}

}  // namespace tierfs
