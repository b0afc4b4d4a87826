// libFuzzer target: arbitrary bytes as a configuration file. The loader must
// answer every input with a Config or a ConfigError, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/tierfs/core/config_fixture.h"
#include "tierfs/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tierfs::numa::Topology topology = tierfs::testing::fake_topology();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const tierfs::Config config = tierfs::parse_config(text, "fuzz.toml", topology);
    // What was accepted must print and read back.
    (void)tierfs::parse_config(tierfs::to_toml(config), "effective.toml", topology);
  } catch (const tierfs::ConfigError&) {
  }
  return 0;
}
