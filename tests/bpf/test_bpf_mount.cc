// The BPF path of a real mount: after random file operations (write, append,
// truncate, punch, fallocate, unlink, spill into a second tier) the kernel's
// BPF inode map holds exactly the server's extents, keyed by the inode number
// (= FUSE nodeid); on a kernel without fuse_iomap_bpf_ops the server logs one
// line and serves; mount.bpf = "off" loads nothing and "required" fails the
// mount with one line; `tierfs bpf check` agrees on every case.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bpf/iomap.h"
#include "kernel/probe.h"
#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"
#include "tierfs/core/inspect_schema.h"

namespace tierfs::testing {
namespace {

using nlohmann::json;

inspect::Stats stats_of(const std::string& dir) {
  return json::parse(getxattr_string(dir, "user.tierfs.stats")).get<inspect::Stats>();
}

// Two tiers: a small two-way "fast" one that fills up, a "slow" one it spills into.
TestConfig spill_config() {
  TestConfig config;
  config.tiers.push_back({"fast", {"file:@WORK@/r0", "file:@WORK@/r1"}, "2MiB", "4KiB", true});
  config.tiers.push_back({"slow", {"numa:0"}, "64MiB", "64KiB"});
  return config;
}

// The server's extents of a file, from user.tierfs.map (every page).
std::vector<tierfs_extent> server_extents(const std::string& path) {
  std::vector<tierfs_extent> out;
  std::string name = "user.tierfs.map";
  for (int page = 0; page < 1000; ++page) {
    const auto doc = json::parse(getxattr_string(path, name)).get<inspect::MapPage>();
    for (const auto& e : doc.extents)
      out.push_back({e.file_offset, e.length, e.tier_address, e.tier_index,
                     e.unwritten ? TIERFS_EXTENT_UNWRITTEN : 0u});
    if (!doc.next_extent) break;
    name = "user.tierfs.map@" + std::to_string(*doc.next_extent);
  }
  return out;
}

// The kernel's BPF inode map, read by id like any other process could.
std::map<uint64_t, std::vector<tierfs_extent>> kernel_extents(uint32_t map_id) {
  std::map<uint64_t, std::vector<tierfs_extent>> out;
  const int fd = bpf_map_get_fd_by_id(map_id);
  EXPECT_GE(fd, 0) << "map id " << map_id << ": " << strerror(errno);
  if (fd < 0) return out;
  uint64_t key = 0;
  const uint64_t* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &key) == 0) {
    tierfs_inode_value value{};
    if (bpf_map_lookup_elem(fd, &key, &value) == 0) {
      EXPECT_LE(value.count, static_cast<uint32_t>(TIERFS_MAX_INODE_EXTENTS));
      out[key].assign(value.extents, value.extents + std::min<uint32_t>(value.count, 16));
    }
    previous = &key;
  }
  close(fd);
  return out;
}

std::string describe(const std::vector<tierfs_extent>& extents) {
  std::string s;
  for (const auto& e : extents)
    s += "{" + std::to_string(e.file_offset) + "+" + std::to_string(e.length) + " tier " +
         std::to_string(e.tier) + " address " + std::to_string(e.tier_address) + "} ";
  return s.empty() ? "(none)" : s;
}

bool same(const std::vector<tierfs_extent>& a, const std::vector<tierfs_extent>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](auto& x, auto& y) {
           return x.file_offset == y.file_offset && x.length == y.length &&
                  x.tier_address == y.tier_address && x.tier == y.tier && x.flags == y.flags;
         });
}

ino_t ino_of(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class BpfMountTest : public MountTest {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    TIERFS_REQUIRE(missing_bpf());
    ASSERT_TRUE(mount_.start(spill_config())) << mount_.failure();
  }

  // Every live file with extents the map can hold is in the map with exactly
  // those extents; nothing else is (unlinked files, files past 16 extents).
  // The kernel sends RELEASE after close() returns, so a just-closed unlinked
  // file may leave the map a moment later: the comparison is retried briefly.
  void expect_maps_match(const std::set<std::string>& names, const std::string& when) {
    std::vector<std::string> problems;
    for (int attempt = 0; attempt < 40; ++attempt) {
      problems = compare_maps(names);
      if (problems.empty()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    for (const std::string& p : problems) ADD_FAILURE() << when << ": " << p;
  }

  std::vector<std::string> compare_maps(const std::set<std::string>& names) {
    std::vector<std::string> problems;
    const inspect::BpfState bpf = stats_of(mount_.dir()).bpf;
    if (!bpf.maps_loaded) return {"maps not loaded: " + json(bpf).dump()};
    if (bpf.map_update_errors != 0) problems.push_back(json(bpf).dump());
    auto in_kernel = kernel_extents(bpf.inodes_map_id);
    for (const std::string& name : names) {
      const std::string path = mount_.path(name);
      const uint64_t ino = ino_of(path);
      const std::vector<tierfs_extent> server = server_extents(path);
      auto it = in_kernel.find(ino);
      if (server.size() > TIERFS_MAX_INODE_EXTENTS) {
        if (it != in_kernel.end())
          problems.push_back(name + " has " + std::to_string(server.size()) +
                             " extents, more than the map holds, yet is in it");
      } else if (it == in_kernel.end()) {
        if (!server.empty())
          problems.push_back(name + " (ino " + std::to_string(ino) +
                             ") missing from the map; server " + describe(server));
      } else if (!same(it->second, server)) {
        problems.push_back(name + " kernel " + describe(it->second) + " server " +
                           describe(server));
      } else if (!server.empty()) {
        ++files_matched_;
      }
      if (it != in_kernel.end()) in_kernel.erase(it);
    }
    for (const auto& [ino, extents] : in_kernel)
      problems.push_back("stale map entry for inode " + std::to_string(ino) + ": " +
                         describe(extents));
    return problems;
  }

  size_t files_matched_ = 0;  // comparisons of a file with extents that agreed
};

TEST_F(BpfMountTest, MapsHoldTheServersExtentsAfterRandomFileOperations) {
  std::mt19937_64 rng(static_cast<uint64_t>(getpid()));
  std::set<std::string> live;
  std::set<uint32_t> tiers_seen;
  const char* ops[] = {"write",     "append", "truncate",   "punch",
                       "fallocate", "unlink", "unlink_open"};
  std::map<std::string, int> done;
  for (int step = 0; step < 240; ++step) {
    const std::string name = "f" + std::to_string(rng() % 8);
    const std::string path = mount_.path(name);
    const std::string op = ops[rng() % std::size(ops)];
    int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
    live.insert(name);
    const uint64_t off = (rng() % 512) * 4096 + (rng() % 2 ? rng() % 4096 : 0);
    const uint64_t len = 1 + rng() % (256 * 1024);
    if (op == "write" || op == "append") {
      const std::string data = pattern(len, static_cast<unsigned>(step));
      const off_t at = op == "append" ? lseek(fd, 0, SEEK_END) : static_cast<off_t>(off);
      // The tiers may be full: ENOSPC is an answer, not a failure of the maps.
      const ssize_t n = pwrite(fd, data.data(), data.size(), at);
      EXPECT_TRUE(n > 0 || errno == ENOSPC) << strerror(errno);
    } else if (op == "truncate") {
      EXPECT_EQ(ftruncate(fd, static_cast<off_t>(off / 2)), 0) << strerror(errno);
    } else if (op == "punch") {
      EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                          static_cast<off_t>(len)),
                0)
          << strerror(errno);
    } else if (op == "fallocate") {
      const int r = fallocate(fd, 0, static_cast<off_t>(off), static_cast<off_t>(len));
      EXPECT_TRUE(r == 0 || errno == ENOSPC) << strerror(errno);
    } else if (op == "unlink") {
      close(fd);
      fd = -1;
      EXPECT_EQ(unlink(path.c_str()), 0);
      live.erase(name);
    } else {  // unlink while open: the rows go back at the last close
      EXPECT_EQ(unlink(path.c_str()), 0);
      live.erase(name);
    }
    if (fd >= 0) close(fd);
    ++done[op];
    // Random operations alone may never fill the 2 MiB fast tier: one file surely spills.
    if (step == 120) {
      write_all(mount_.path("spill"), pattern(3 << 20, 99));
      live.insert("spill");
    } else if (step == 200) {
      EXPECT_EQ(unlink(mount_.path("spill").c_str()), 0);
      live.erase("spill");
    }
    if (step % 12 == 11) expect_maps_match(live, "after step " + std::to_string(step));
    if (HasFailure()) return;
    for (const std::string& n : live)
      for (const tierfs_extent& e : server_extents(mount_.path(n))) tiers_seen.insert(e.tier);
  }
  expect_maps_match(live, "at the end");
  EXPECT_GT(files_matched_, 20u) << "the comparison must see files with extents";
  for (const char* op : ops) EXPECT_GT(done[op], 0) << op;
  EXPECT_EQ(tiers_seen, (std::set<uint32_t>{0, 1})) << "no file spilled into the second tier";

  // The tier map holds both layouts, with no device registered on a stock kernel.
  const inspect::BpfState bpf = stats_of(mount_.dir()).bpf;
  const int fd = bpf_map_get_fd_by_id(bpf.tiers_map_id);
  ASSERT_GE(fd, 0);
  for (uint32_t tier = 0; tier < 2; ++tier) {
    tierfs_tier_value value{};
    ASSERT_EQ(bpf_map_lookup_elem(fd, &tier, &value), 0);
    EXPECT_EQ(value.layout.ways, tier == 0 ? 2u : 1u);
    EXPECT_EQ(value.layout.granularity_shift, tier == 0 ? 12u : 16u);
    EXPECT_EQ(value.device_cookie[0], 0u);
  }
  close(fd);
}

TEST_F(BpfMountTest, StockKernelLogsOneLineAndTheMountServes) {
  if (kernel::probe_kernel().fuse_iomap_bpf_ops) GTEST_SKIP() << "kernel has fuse_iomap_bpf_ops";
  // In the foreground: a daemon sends its log to syslog, and this test reads it.
  ASSERT_TRUE(mount_.start(spill_config(), {}, TierfsMount::Mode::foreground)) << mount_.failure();
  const std::string data = pattern(300000, 5);
  write_all(mount_.path("x"), data);
  EXPECT_TRUE(read_all(mount_.path("x")) == data);
  const inspect::BpfState bpf = stats_of(mount_.dir()).bpf;
  EXPECT_EQ(bpf.mode, "auto");
  EXPECT_FALSE(bpf.program_attached);
  EXPECT_NE(bpf.server_path_reason.find("has no fuse_iomap_bpf_ops"), std::string::npos);
  const std::string log = mount_.failure();
  size_t lines = 0;
  for (size_t at = 0; (at = log.find("fuse_iomap_bpf_ops", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 1u) << log;
  EXPECT_NE(log.find("iomap BPF program not attached: kernel "), std::string::npos) << log;
}

// A mount of our own, for configurations the fixture's TestConfig cannot say.
class OwnMount {
 public:
  explicit OwnMount(const std::string& bpf_mode)
      : toml_("[mount]\nbpf = \"" + bpf_mode +
              "\"\n\n[[tier]]\nname = \"fast\"\nregions = [\"numa:0\"]\n"
              "size = \"16MiB\"\ngranularity = \"4KiB\"\n") {}
  // True once the mount is live; else what `tierfs mount` printed is in log().
  bool start() { return mount_.start(toml_); }
  std::string log() const { return mount_.log(); }
  const std::string& mnt() const { return mount_.dir(); }

 private:
  std::string toml_;
  TierfsMount mount_{"tierfs-bpf"};
};

TEST(BpfMode, OffLoadsNoMaps) {
  TIERFS_REQUIRE(missing_root());
  TIERFS_REQUIRE(missing_fuse());
  OwnMount m("off");
  ASSERT_TRUE(m.start());
  write_all(m.mnt() + "/a", pattern(10000, 1));
  const inspect::BpfState bpf = stats_of(m.mnt()).bpf;
  EXPECT_EQ(bpf.mode, "off");
  EXPECT_FALSE(bpf.maps_loaded);
  EXPECT_EQ(bpf.inodes_map_id, 0u);
}

TEST(BpfMode, RequiredFailsTheMountWithOneLineOnAStockKernel) {
  TIERFS_REQUIRE(missing_root());
  TIERFS_REQUIRE(missing_fuse());
  if (kernel::probe_kernel().fuse_iomap_bpf_ops) GTEST_SKIP() << "kernel has fuse_iomap_bpf_ops";
  OwnMount m("required");
  EXPECT_FALSE(m.start());
  const std::string output = m.log();
  EXPECT_FALSE(is_mounted(m.mnt())) << "nothing may stay mounted";
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_NE(output.find("tierfs: mount.bpf = \"required\", but kernel "), std::string::npos)
      << output;
  EXPECT_NE(output.find("has no fuse_iomap_bpf_ops"), std::string::npos) << output;
}

TEST(BpfCheck, LoadsTheTwinAndEveryCaseAgrees) {
  TIERFS_REQUIRE(missing_bpf());
  std::string output;
  ASSERT_EQ(run_command({tierfs_bin(), "bpf", "check", "--cases", "20000", "--json"}, output), 0)
      << output;
  const json doc = json::parse(output);
  EXPECT_TRUE(doc.at("twin").at("loaded").get<bool>());
  EXPECT_GT(doc.at("twin").at("verified_insns").get<uint64_t>(), 0u);
  EXPECT_EQ(doc.at("struct_ops").at("type"), "fuse_iomap_bpf_ops");
  const json& eq = doc.at("equivalence");
  EXPECT_GE(eq.at("cases").get<uint64_t>(), 20000u);
  EXPECT_EQ(eq.at("agreed"), eq.at("cases"));

  ASSERT_EQ(run_command({tierfs_bin(), "bpf", "check", "--cases", "5000"}, output), 0) << output;
  EXPECT_NE(output.find("twin (map_batch): verifier accepted"), std::string::npos) << output;
  EXPECT_NE(output.find(" cases agreed"), std::string::npos) << output;
}

TEST(BpfCheck, StatesTheCaseCountItRan) {
  TIERFS_REQUIRE(missing_bpf());
  std::string output;
  ASSERT_EQ(run_command({tierfs_bin(), "bpf", "check", "--cases", "100", "--json"}, output), 0)
      << output;
  const json doc = json::parse(output);
  const json& eq = doc.at("equivalence");
  EXPECT_EQ(eq.at("cases_requested").get<uint64_t>(), 100u);
  const uint64_t ran = eq.at("cases").get<uint64_t>();
  ASSERT_GE(ran, 100u);
  ASSERT_EQ(run_command({tierfs_bin(), "bpf", "check", "--cases", "100"}, output), 0) << output;
  EXPECT_NE(output.find(std::to_string(ran) + " of " + std::to_string(ran) + " cases agreed"),
            std::string::npos)
      << output;
  if (ran != 100) {  // rounded up: the count it ran is said next to the count asked for
    EXPECT_NE(output.find("ran " + std::to_string(ran) + " cases for --cases 100"),
              std::string::npos)
        << output;
  }
}

TEST(BpfCheck, BadCaseCountIsOneLineAndAnError) {
  std::string output;
  EXPECT_NE(run_command({tierfs_bin(), "bpf", "check", "--cases", "0"}, output), 0);
  EXPECT_NE(output.find("--cases"), std::string::npos) << output;
}

}  // namespace
}  // namespace tierfs::testing
