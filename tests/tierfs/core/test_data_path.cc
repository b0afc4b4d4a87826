// The data path decision (tierfs/core/data_path.h): which tiers qualify for
// the kernel path and why not, from hand-built kernel facts so that the
// answers do not depend on the machine; that auto takes the kernel path
// wherever the tier qualifies and this server may hand files to the kernel;
// and that the configuration refuses data_path = "kernel" with the reason it
// cannot have it (kernel path not built, no CAP_SYS_ADMIN).
#include "tierfs/core/data_path.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/tierfs/core/config_fixture.h"
#include "tierfs/core/config.h"

namespace {

using tierfs::DataPath;
using tierfs::KernelFacts;
using tierfs::parse_config;
using tierfs::testing::fake_topology;

// A 6.12-like kernel: shmem THP available (PMD 2MiB by inherit), mTHP sizes
// off, weighted interleave present, passthrough; the kernel path is built
// and the process holds CAP_SYS_ADMIN in the initial user namespace.
KernelFacts stock_kernel() {
  KernelFacts f;
  f.shmem_thp = "never";
  f.shmem_mthp = {{16 << 10, "never"}, {64 << 10, "never"}, {2 << 20, "inherit"}};
  f.weighted_interleave = true;
  f.kernel_passthrough = true;
  f.kernel_passthrough_mmap = true;
  f.kernel_path_built = true;
  f.handover_privilege = true;
  return f;
}

tierfs::Config parse(const std::string& text, const KernelFacts& facts) {
  return parse_config(text, "t.toml", fake_topology(), facts);
}

std::string refusal(const std::string& text, const KernelFacts& facts) {
  try {
    parse(text, facts);
  } catch (const tierfs::ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

const char* kTwoNodes = R"([[tier]]
name = "dram"
regions = ["numa:0", "numa:1"]
size = "1GiB"
)";

TEST(DataPath, GranularitiesFollowShmemControls) {
  KernelFacts f = stock_kernel();
  EXPECT_EQ(tierfs::kernel_granularities(f), (std::vector<uint64_t>{4096, 2 << 20}));
  f.shmem_thp = "deny";  // no huge folios at all
  EXPECT_EQ(tierfs::kernel_granularities(f), (std::vector<uint64_t>{4096}));
  f.shmem_thp = "force";  // every folio huge: 4KiB runs are not a layout
  EXPECT_EQ(tierfs::kernel_granularities(f), (std::vector<uint64_t>{2 << 20}));
  // An mTHP size counts only when no larger size would be chosen first.
  f = stock_kernel();
  f.shmem_mthp[64 << 10] = "always";
  EXPECT_EQ(tierfs::kernel_granularities(f), (std::vector<uint64_t>{4096, 2 << 20}));
  f.shmem_mthp[2 << 20] = "never";
  EXPECT_EQ(tierfs::kernel_granularities(f), (std::vector<uint64_t>{4096, 64 << 10}));
}

TEST(DataPath, KernelIsTakenWhereTheTierQualifies) {
  const tierfs::Config c =
      parse(std::string(kTwoNodes) + "data_path = \"kernel\"\n", stock_kernel());
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::kernel);
  EXPECT_TRUE(c.tiers[0].data_path_choice.qualifies);
  EXPECT_EQ(c.tiers[0].data_path_choice.reason, "interleave at 2MiB by the kernel");
}

// The default: auto takes the kernel path wherever the tier qualifies, with
// the same reason as data_path = "kernel".
TEST(DataPath, AutoTakesTheKernelPathWhereTheTierQualifies) {
  const tierfs::Config c = parse(kTwoNodes, stock_kernel());
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::kernel);
  EXPECT_TRUE(c.tiers[0].data_path_choice.qualifies);
  EXPECT_EQ(c.tiers[0].data_path_choice.reason, "interleave at 2MiB by the kernel");
}

// Built against a libfuse without passthrough (CI's system-libfuse pass):
// auto serves the tier and says why in one line; "kernel" is refused.
TEST(DataPath, AutoServesWhereTheKernelPathIsNotBuilt) {
  KernelFacts old_libfuse = stock_kernel();
  old_libfuse.kernel_path_built = false;
  const tierfs::Config c = parse(kTwoNodes, old_libfuse);
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::server);
  EXPECT_TRUE(c.tiers[0].data_path_choice.qualifies);
  EXPECT_EQ(c.tiers[0].data_path_choice.reason,
            "the tier qualifies (interleave at 2MiB) but the kernel path is not built: this "
            "libfuse has no FUSE passthrough (3.16+; scripts/setup.sh builds 3.18)");
  // A kernel without passthrough: the tier does not qualify at all.
  KernelFacts old_kernel = stock_kernel();
  old_kernel.kernel_passthrough = false;
  const tierfs::Config k = parse(kTwoNodes, old_kernel);
  EXPECT_EQ(k.tiers[0].data_path_choice.path, DataPath::server);
  EXPECT_FALSE(k.tiers[0].data_path_choice.qualifies);
  EXPECT_EQ(k.tiers[0].data_path_choice.reason, "this kernel has no FUSE passthrough (Linux 6.9+)");
}

// A user's mount (fusermount3, no capabilities) or root in a container's own
// user namespace: auto serves the tier and says why; "kernel" is refused
// with the same reason, in one line naming where.
TEST(DataPath, WithoutCapSysAdminAutoServesAndKernelIsRefused) {
  KernelFacts user = stock_kernel();
  user.handover_privilege = false;
  const tierfs::Config c = parse(kTwoNodes, user);
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::server);
  EXPECT_TRUE(c.tiers[0].data_path_choice.qualifies);
  EXPECT_EQ(c.tiers[0].data_path_choice.reason,
            "the tier qualifies (interleave at 2MiB) but this process lacks CAP_SYS_ADMIN in the "
            "initial user namespace, which handing files to the kernel needs "
            "(FUSE_DEV_IOC_BACKING_OPEN); a mount by root takes the kernel path");
  EXPECT_EQ(refusal(std::string(kTwoNodes) + "data_path = \"kernel\"\n", user),
            "t.toml:5:13: tier \"dram\" cannot have data_path \"kernel\": the tier qualifies "
            "(interleave at 2MiB) but this process lacks CAP_SYS_ADMIN in the initial user "
            "namespace, which handing files to the kernel needs (FUSE_DEV_IOC_BACKING_OPEN); a "
            "mount by root takes the kernel path");
  // A tier that does not qualify says so, not the missing privilege.
  EXPECT_EQ(parse(std::string(kTwoNodes) + "granularity = \"64KiB\"\n", user)
                .tiers[0]
                .data_path_choice.reason,
            "granularity 64KiB is not a folio size this kernel gives tmpfs (4KiB, 2MiB)");
}

TEST(DataPath, ServerIsKeptWhenConfigured) {
  const tierfs::Config c =
      parse(std::string(kTwoNodes) + "data_path = \"server\"\n", stock_kernel());
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::server);
  EXPECT_EQ(c.tiers[0].data_path_choice.reason, "data_path = \"server\"");
}

TEST(DataPath, GranularityTheKernelCannotPlaceIsRefused) {
  const std::string text = std::string(kTwoNodes) + "granularity = \"64KiB\"\n";
  const tierfs::Config c = parse(text, stock_kernel());
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::server);
  EXPECT_EQ(c.tiers[0].data_path_choice.reason,
            "granularity 64KiB is not a folio size this kernel gives tmpfs (4KiB, 2MiB)");
  EXPECT_EQ(refusal(text + "data_path = \"kernel\"\n", stock_kernel()),
            "t.toml:6:13: tier \"dram\" cannot have data_path \"kernel\": granularity 64KiB is "
            "not a folio size this kernel gives tmpfs (4KiB, 2MiB)");
}

TEST(DataPath, WeightsNeedPermissionToSetTheSystemWideNodeWeights) {
  const std::string weighted = std::string(kTwoNodes) + "weights = [3, 1]\n";
  const tierfs::Config refused = parse(weighted, stock_kernel());
  EXPECT_EQ(refused.tiers[0].data_path_choice.path, DataPath::server);
  EXPECT_NE(refused.tiers[0].data_path_choice.reason.find("set [mount] set_node_weights = true"),
            std::string::npos);
  const tierfs::Config allowed = parse(
      "[mount]\nset_node_weights = true\n" + weighted + "data_path = \"kernel\"\n", stock_kernel());
  EXPECT_EQ(allowed.tiers[0].data_path_choice.path, DataPath::kernel);
  EXPECT_EQ(allowed.tiers[0].data_path_choice.reason, "weighted interleave at 2MiB by the kernel");
  KernelFacts old = stock_kernel();
  old.weighted_interleave = false;
  EXPECT_NE(parse("[mount]\nset_node_weights = true\n" + weighted, old)
                .tiers[0]
                .data_path_choice.reason.find("need weighted interleave"),
            std::string::npos);
}

TEST(DataPath, TwoWeightedTiersCannotDisagreeOnANodesWeight) {
  const std::string text = R"([mount]
set_node_weights = true
[[tier]]
name = "a"
data_path = "kernel"
regions = ["numa:0", "numa:1"]
weights = [3, 1]
size = "1GiB"
high_watermark = 90
low_watermark = 80
[[tier]]
name = "b"
regions = ["numa:0", "numa:1"]
weights = [2, 1]
size = "1GiB"
)";
  const tierfs::Config c = parse(text, stock_kernel());
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::kernel);
  EXPECT_EQ(c.tiers[1].data_path_choice.path, DataPath::server);
  EXPECT_EQ(c.tiers[1].data_path_choice.reason,
            "node 0 has weight 2 here and 3 in an earlier weighted tier; node weights are "
            "system-wide");
}

TEST(DataPath, OldKernelAndUnbuiltPathKeepTheServer) {
  KernelFacts old = stock_kernel();
  old.kernel_passthrough = false;
  EXPECT_EQ(parse(kTwoNodes, old).tiers[0].data_path_choice.reason,
            "this kernel has no FUSE passthrough (Linux 6.9+)");
  KernelFacts unbuilt = stock_kernel();
  unbuilt.kernel_path_built = false;
  const tierfs::Config c = parse(kTwoNodes, unbuilt);
  EXPECT_EQ(c.tiers[0].data_path_choice.path, DataPath::server);
  EXPECT_TRUE(c.tiers[0].data_path_choice.qualifies);
  EXPECT_NE(refusal(std::string(kTwoNodes) + "data_path = \"kernel\"\n", unbuilt)
                .find("cannot have data_path \"kernel\": the tier qualifies"),
            std::string::npos);
}

TEST(DataPath, ProbeReadsSysfs) {
  namespace fs = std::filesystem;
  char templ[] = "/tmp/tierfs-datapath-XXXXXX";
  const fs::path root = mkdtemp(templ);
  const fs::path thp = root / "kernel/mm/transparent_hugepage";
  fs::create_directories(thp / "hugepages-64kB");
  fs::create_directories(root / "kernel/mm/mempolicy/weighted_interleave");
  std::ofstream(thp / "shmem_enabled") << "always within_size advise [never] deny force\n";
  std::ofstream(thp / "hpage_pmd_size") << "2097152\n";
  std::ofstream(thp / "hugepages-64kB/shmem_enabled")
      << "always inherit [within_size] advise never\n";
  const KernelFacts f = tierfs::probe_kernel_facts(root.string());
  fs::remove_all(root);
  EXPECT_EQ(f.shmem_thp, "never");
  EXPECT_EQ(f.pmd_bytes, uint64_t{2} << 20);
  ASSERT_EQ(f.shmem_mthp.size(), 1u);
  EXPECT_EQ(f.shmem_mthp.at(64 << 10), "within_size");
  EXPECT_TRUE(f.weighted_interleave);
  // Built with a libfuse that has passthrough (meson: TIERFS_KERNEL_PATH).
#ifdef TIERFS_KERNEL_PATH
  EXPECT_TRUE(f.kernel_path_built);
#else
  EXPECT_FALSE(f.kernel_path_built);
#endif
}

}  // namespace
