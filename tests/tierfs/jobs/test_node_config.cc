// The node configuration of per-job scratch: defaults, every key, limits as
// sizes and shares, and one-line errors with their position.
#include <gtest/gtest.h>

#include "tierfs/jobs/node_config.h"

namespace tierfs::jobs {
namespace {

numa::Topology one_node() {
  numa::Topology t;
  numa::NumaNode n;
  n.id = 0;
  n.total_bytes = 16ULL << 30;
  t.nodes.push_back(n);
  numa::DaxDevice d;
  d.path = "/dev/dax0.0";
  d.size_bytes = 4ULL << 30;
  t.dax_devices.push_back(d);
  return t;
}

std::string error_of(const std::string& text) {
  try {
    parse_node_config(text, "node.toml", one_node());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(NodeConfig, EmptyGivesTheDefaults) {
  const NodeConfig c = parse_node_config("", "node.toml", one_node());
  EXPECT_EQ(c.base, "/scratch");
  EXPECT_EQ(c.state_dir, "/run/tierfs");
  EXPECT_EQ(c.default_size_bytes, 1ULL << 30);
  EXPECT_TRUE(c.limits.empty());
  EXPECT_FALSE(c.shared.by_default);
  EXPECT_EQ(c.shared.base, "/scratch-shared");
  EXPECT_EQ(c.shared.goal, 2u);
  EXPECT_EQ(c.shared.io_retries, 30u);
}

TEST(NodeConfig, ReadsTheSharedTable) {
  const NodeConfig c = parse_node_config(R"([shared]
default = true
base = "/js"
state_dir = "/run/js"
port_base = 50000
goal = 3
metadata = "/opt/mfs/empty"
mount_timeout = 5
io_retries = 4
)",
                                         "node.toml", one_node());
  EXPECT_TRUE(c.shared.by_default);
  EXPECT_EQ(c.shared.base, "/js");
  EXPECT_EQ(c.shared.state_dir, "/run/js");
  EXPECT_EQ(c.shared.port_base, 50000u);
  EXPECT_EQ(c.shared.goal, 3u);
  EXPECT_EQ(c.shared.empty_metadata, "/opt/mfs/empty");
  EXPECT_EQ(c.shared.mount_timeout_s, 5u);
  EXPECT_EQ(c.shared.io_retries, 4u);
}

TEST(NodeConfig, ReadsEveryKeyAndLimitsAsSizesOrShares) {
  const NodeConfig c = parse_node_config(R"([job]
base = "/local/scratch"
state_dir = "/run/t"
config = "/etc/tierfs/s.toml"
default_size = "2GiB"
stop_timeout = 3
[admission]
"numa:0" = "75%"
"dax:/dev/dax0.0" = "1GiB"
)",
                                         "node.toml", one_node());
  EXPECT_EQ(c.base, "/local/scratch");
  EXPECT_EQ(c.state_dir, "/run/t");
  EXPECT_EQ(c.mount_config, "/etc/tierfs/s.toml");
  EXPECT_EQ(c.default_size_bytes, 2ULL << 30);
  EXPECT_EQ(c.stop_timeout_s, 3u);
  ASSERT_EQ(c.limits.size(), 2u);
  for (const AdmissionLimit& limit : c.limits) {
    if (limit.region == "numa:0")
      EXPECT_EQ(limit.bytes, 12ULL << 30);  // 75% of 16 GiB
    else
      EXPECT_EQ(limit.bytes, 1ULL << 30) << limit.region;
  }
}

TEST(NodeConfig, ErrorsNameFileLineAndWhat) {
  EXPECT_EQ(error_of("[job]\nbase = \"scratch\"\n"),
            "node.toml:2:8: job.base must be an absolute path, not \"scratch\"");
  EXPECT_EQ(error_of("[job]\nsize = \"1GiB\"\n").rfind("node.toml:2:1: unknown key \"size\"", 0),
            0u);
  EXPECT_EQ(error_of("[admission]\n\"numa:7\" = \"50%\"\n"),
            "node.toml:2:12: \"numa:7\": this machine has no NUMA node 7");
  EXPECT_EQ(error_of("[admission]\n\"numa:0\" = \"150%\"\n"),
            "node.toml:2:12: \"numa:0\": \"150%\" is not a share from 1% to 100%");
  EXPECT_EQ(error_of("[admission]\n\"file:/x\" = \"1GiB\"\n"),
            "node.toml:2:1: [admission] \"file:/x\": only numa: and dax: regions take a limit");
  EXPECT_EQ(error_of("[job]\ndefault_size = \"lots\"\n"),
            "node.toml:2:16: job.default_size: \"lots\" is not a size such as \"8GiB\"");
  EXPECT_EQ(error_of("[jobs]\n").rfind("node.toml:1:2: unknown table [jobs]", 0), 0u);
  EXPECT_EQ(error_of("[shared]\ndefault = \"yes\"\n"),
            "node.toml:2:11: shared.default must be true or false");
  EXPECT_EQ(error_of("[shared]\nport_base = 65500\n"),
            "node.toml:2:13: shared.port_base must be a whole number from 1024 to 65136");
  EXPECT_EQ(error_of("[shared]\ngoal = 0\n"),
            "node.toml:2:8: shared.goal must be a whole number from 1 to 9");
  EXPECT_EQ(error_of("[shared]\nbase = \"x\"\n"),
            "node.toml:2:8: shared.base must be an absolute path, not \"x\"");
  EXPECT_EQ(error_of("[shared]\nhosts = 1\n")
                .rfind("node.toml:2:1: unknown key \"hosts\" in [shared]", 0),
            0u);
}

}  // namespace
}  // namespace tierfs::jobs
