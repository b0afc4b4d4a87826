// `tierfs check-config FILE`: validates a configuration against this machine
// and prints the effective configuration, or the one line saying what is
// wrong and where. With --json it prints each tier's resolved geometry
// instead, which is where scripts get row and region sizes (they never
// compute them), and which data path each tier takes and why. --default
// checks the built-in default configuration.
#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/core/config.h"

namespace tierfs {
// The --json document, one struct per object so that the keys are the fields.
// A named namespace, not an anonymous one: the macros also define a from_json
// that nothing here calls, which clang reports when it has internal linkage.
namespace check_config_json {

struct RegionJson {
  std::string spec;
  uint64_t offset_bytes = 0;
  uint64_t bytes = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RegionJson, spec, offset_bytes, bytes)

struct TierJson {
  std::string name;
  uint64_t granularity_bytes = 0;
  uint32_t ways = 0;
  std::vector<uint32_t> weights;  // one per region, 1 for an unweighted tier
  uint64_t row_bytes = 0;
  uint64_t rows = 0;
  uint64_t capacity_bytes = 0;
  std::vector<RegionJson> regions;
  std::string data_path;         // "server" or "kernel", as resolved
  std::string data_path_reason;  // why
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TierJson, name, granularity_bytes, ways, weights, row_bytes,
                                   rows, capacity_bytes, regions, data_path, data_path_reason)

struct CheckConfigJson {
  std::string source;
  std::vector<TierJson> tiers;
  std::string default_tier;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CheckConfigJson, source, tiers, default_tier)

}  // namespace check_config_json

namespace {

using check_config_json::CheckConfigJson;
using check_config_json::RegionJson;
using check_config_json::TierJson;

CheckConfigJson geometry_json(const Config& config) {
  CheckConfigJson doc{config.source, {}, config.default_tier};
  for (const TierConfig& tier : config.tiers) {
    const TierGeometry& g = tier.geometry;
    TierJson t{g.name,
               g.granularity_bytes(),
               g.ways(),
               {},
               g.row_bytes,
               g.rows,
               g.capacity_bytes,
               {},
               data_path_name(tier.data_path_choice.path),
               tier.data_path_choice.reason};
    t.weights.assign(g.layout.weights, g.layout.weights + g.layout.ways);
    for (const RegionGeometry& region : g.regions)
      t.regions.push_back(RegionJson{region.spec.text, region.offset_bytes, region.bytes});
    doc.tiers.push_back(std::move(t));
  }
  return doc;
}

}  // namespace

void add_check_config_command(CLI::App& app, int& status) {
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto builtin = std::make_shared<bool>(false);
  auto* cmd =
      app.add_subcommand("check-config", "Validate a configuration and print its effective form");
  auto* file_option = cmd->add_option("FILE", *file, "the TOML configuration");
  auto* default_flag =
      cmd->add_flag("--default", *builtin, "check the built-in default configuration instead");
  file_option->excludes(default_flag);
  cmd->add_flag("--json", *json, "print each tier's resolved geometry as JSON");
  cmd->callback([file, json, builtin, file_option, &status] {
    if (!*builtin && file_option->count() == 0) throw CLI::RequiredError("FILE (or --default)");
    try {
      const numa::Topology topology = numa::discover_topology();
      const Config config = *builtin ? default_config(topology) : load_config(*file, topology);
      if (*json)
        fmt::print("{}\n", nlohmann::json(geometry_json(config)).dump(2));
      else
        fmt::print("{}", to_toml(config));
      status = 0;
    } catch (const ConfigError& e) {
      // Exactly FILE:LINE:COLUMN: what, with no prefix, so editors can jump to it.
      fmt::print(stderr, "{}\n", e.what());
      status = 1;
    }
  });
}

}  // namespace tierfs
