// libFuzzer target: arbitrary bytes as a configuration file. The loader must
// answer every input with a Config or a ConfigError, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/tierfs/core/config_fixture.h"
#include "tierfs/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tierfs::numa::Topology topology = tierfs::testing::fake_topology();
  // Fixed kernel facts, with the kernel path possible, so that the data path
  // decision is exercised and every run sees the same machine.
  static const tierfs::KernelFacts facts = [] {
    tierfs::KernelFacts f;
    f.shmem_thp = "never";
    f.weighted_interleave = true;
    f.kernel_passthrough = true;
    f.kernel_path_built = true;
    f.handover_privilege = true;
    return f;
  }();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const tierfs::Config config = tierfs::parse_config(text, "fuzz.toml", topology, facts);
    // What was accepted must print and read back.
    (void)tierfs::parse_config(tierfs::to_toml(config), "effective.toml", topology, facts);
  } catch (const tierfs::ConfigError&) {
  }
  return 0;
}
