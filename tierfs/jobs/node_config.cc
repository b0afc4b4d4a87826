// Loading of the node configuration with toml++; every error is one
// "FILE:LINE:COLUMN: what" line (ConfigError, as for mount configurations).
#include "tierfs/jobs/node_config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include "tierfs/core/units.h"

namespace tierfs::jobs {

namespace {

SourcePos pos_of(const toml::node& node) {
  const auto& begin = node.source().begin;
  return SourcePos{static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

SourcePos pos_of(const toml::key& key) {
  const auto& begin = key.source().begin;
  return SourcePos{static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

class NodeConfigReader {
 public:
  NodeConfigReader(std::string source, const numa::Topology& topology)
      : source_(std::move(source)), topology_(topology) {}

  [[noreturn]] void fail(SourcePos pos, const std::string& what) const {
    throw ConfigError(source_, pos, what);
  }

  std::string string(const toml::node& node, std::string_view key) const {
    if (!node.is_string()) fail(pos_of(node), fmt::format("{} must be a string", key));
    return std::string(*node.value<std::string>());
  }

  std::string absolute_path(const toml::node& node, std::string_view key) const {
    std::string path = string(node, key);
    if (path.empty() || path.front() != '/')
      fail(pos_of(node), fmt::format("{} must be an absolute path, not \"{}\"", key, path));
    return path;
  }

  uint64_t size(const toml::node& node, std::string_view key) const {
    const std::string text = string(node, key);
    auto bytes = parse_size(text);
    if (!bytes || *bytes == 0)
      fail(pos_of(node), fmt::format("{}: \"{}\" is not a size such as \"8GiB\"", key, text));
    return *bytes;
  }

  // "8GiB", or "N%" of the region's capacity on this machine.
  uint64_t limit(const toml::node& node, const std::string& region) const {
    const std::string text = string(node, fmt::format("the limit of \"{}\"", region));
    if (text.empty() || text.back() != '%') return size(node, fmt::format("\"{}\"", region));
    unsigned percent = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, percent);
    if (ec != std::errc() || end != text.data() + text.size() - 1 || percent == 0 || percent > 100)
      fail(pos_of(node),
           fmt::format("\"{}\": \"{}\" is not a share from 1% to 100%", region, text));
    uint64_t capacity = 0;
    const numa::RegionSpec spec = numa::parse_region_spec(region);
    if (spec.kind == numa::RegionKind::numa) {
      const numa::NumaNode* n = topology_.node(spec.node);
      if (!n)
        fail(pos_of(node),
             fmt::format("\"{}\": this machine has no NUMA node {}", region, spec.node));
      capacity = n->total_bytes;
    } else {
      const numa::DaxDevice* dax = topology_.dax(spec.path);
      if (!dax)
        fail(pos_of(node), fmt::format("\"{}\": no such DAX device on this machine", region));
      capacity = dax->size_bytes;
    }
    return static_cast<uint64_t>(static_cast<unsigned __int128>(capacity) * percent / 100);
  }

  void job_table(const toml::table& table, NodeConfig& config) const {
    for (auto&& [key, node] : table) {
      const std::string_view k = key.str();
      if (k == "base") {
        config.base = absolute_path(node, "job.base");
      } else if (k == "state_dir") {
        config.state_dir = absolute_path(node, "job.state_dir");
      } else if (k == "config") {
        config.mount_config = absolute_path(node, "job.config");
      } else if (k == "default_size") {
        config.default_size_bytes = size(node, "job.default_size");
      } else if (k == "stop_timeout") {
        auto v = node.value<int64_t>();
        if (!node.is_integer() || !v || *v < 1 || *v > 3600)
          fail(pos_of(node), "job.stop_timeout must be whole seconds from 1 to 3600");
        config.stop_timeout_s = static_cast<unsigned>(*v);
      } else {
        fail(pos_of(key),
             fmt::format("unknown key \"{}\" in [job] (known: base, state_dir, config, "
                         "default_size, stop_timeout)",
                         k));
      }
    }
  }

  unsigned whole(const toml::node& node, std::string_view key, int64_t low, int64_t high) const {
    auto v = node.value<int64_t>();
    if (!node.is_integer() || !v || *v < low || *v > high)
      fail(pos_of(node), fmt::format("{} must be a whole number from {} to {}", key, low, high));
    return static_cast<unsigned>(*v);
  }

  void shared_table(const toml::table& table, SharedConfig& shared) const {
    for (auto&& [key, node] : table) {
      const std::string_view k = key.str();
      if (k == "default") {
        if (!node.is_boolean()) fail(pos_of(node), "shared.default must be true or false");
        shared.by_default = *node.value<bool>();
      } else if (k == "base") {
        shared.base = absolute_path(node, "shared.base");
      } else if (k == "state_dir") {
        shared.state_dir = absolute_path(node, "shared.state_dir");
      } else if (k == "port_base") {
        shared.port_base = whole(node, "shared.port_base", 1024, 65535 - 399);
      } else if (k == "goal") {
        shared.goal = whole(node, "shared.goal", 1, 9);
      } else if (k == "metadata") {
        shared.empty_metadata = absolute_path(node, "shared.metadata");
      } else if (k == "mount_timeout") {
        shared.mount_timeout_s = whole(node, "shared.mount_timeout", 1, 600);
      } else if (k == "io_retries") {
        shared.io_retries = whole(node, "shared.io_retries", 1, 1000);
      } else {
        fail(pos_of(key),
             fmt::format("unknown key \"{}\" in [shared] (known: default, base, state_dir, "
                         "port_base, goal, metadata, mount_timeout, io_retries)",
                         k));
      }
    }
  }

  void admission_table(const toml::table& table, NodeConfig& config) const {
    for (auto&& [key, node] : table) {
      const std::string region(key.str());
      const SourcePos pos{static_cast<int>(key.source().begin.line),
                          static_cast<int>(key.source().begin.column)};
      numa::RegionSpec spec;
      try {
        spec = numa::parse_region_spec(region);
      } catch (const std::invalid_argument& e) {
        fail(pos, fmt::format("[admission] \"{}\": {}", region, e.what()));
      }
      if (admission_key(spec).empty())
        fail(pos,
             fmt::format("[admission] \"{}\": only numa: and dax: regions take a limit", region));
      config.limits.push_back(AdmissionLimit{admission_key(spec), limit(node, region), pos});
    }
  }

 private:
  std::string source_;
  const numa::Topology& topology_;
};

}  // namespace

std::string admission_key(const numa::RegionSpec& spec) {
  switch (spec.kind) {
    case numa::RegionKind::numa:
      return fmt::format("numa:{}", spec.node);
    case numa::RegionKind::dax:
      return "dax:" + spec.path;
    case numa::RegionKind::file:
      return "";
  }
  return "";
}

NodeConfig parse_node_config(std::string_view text, const std::string& source_name,
                             const numa::Topology& topology) {
  NodeConfigReader reader(source_name, topology);
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    throw ConfigError(source_name,
                      SourcePos{static_cast<int>(begin.line), static_cast<int>(begin.column)},
                      std::string(e.description()));
  }
  NodeConfig config;
  config.source = source_name;
  for (auto&& [key, node] : root) {
    const SourcePos pos{static_cast<int>(key.source().begin.line),
                        static_cast<int>(key.source().begin.column)};
    if (!node.is_table())
      reader.fail(
          pos, fmt::format("\"{}\" must be a table ([job], [admission] or [shared])", key.str()));
    if (key.str() == "job")
      reader.job_table(*node.as_table(), config);
    else if (key.str() == "admission")
      reader.admission_table(*node.as_table(), config);
    else if (key.str() == "shared")
      reader.shared_table(*node.as_table(), config.shared);
    else
      reader.fail(
          pos, fmt::format("unknown table [{}] (known: [job], [admission], [shared])", key.str()));
  }
  return config;
}

NodeConfig load_node_config(const std::string& path, const numa::Topology& topology) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path, SourcePos{}, "cannot read the node configuration");
  std::stringstream text;
  text << in.rdbuf();
  return parse_node_config(text.str(), path, topology);
}

}  // namespace tierfs::jobs
