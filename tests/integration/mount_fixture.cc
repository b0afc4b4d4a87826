// The mount fixture of the integration tests (see mount_fixture.h).
#include "tests/integration/mount_fixture.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/privileged.h"

namespace tierfs::testing {

namespace {

// TIERFS_TEST_DATA_PATH pins the suites to one data path. Unset, every tier
// says nothing and gets data_path = "auto": the kernel path where it
// qualifies and the server runs as root, as a site's mount would. "kernel"
// asks for it on every tier the kernel can place (numa: regions only, page or
// PMD granularity, equal weights, no hugetlbfs), so a run that cannot have it
// fails at mount instead of quietly testing the server; "server" pins every
// tier to the server path (CI's pass with a libfuse without passthrough gets
// it anyway). A tier with a data_path of its own keeps it.
bool kernel_qualifies(const TestTier& tier) {
  if (tier.regions.empty()) return false;
  for (const auto& region : tier.regions)
    if (!region.starts_with("numa:")) return false;
  if (tier.granularity != "4KiB" && tier.granularity != "2MiB") return false;
  for (int weight : tier.weights)
    if (weight != tier.weights.front()) return false;
  return tier.extra.find("hugepages") == std::string::npos;
}

std::string pinned_data_path() {
  const char* mode = getenv("TIERFS_TEST_DATA_PATH");
  return mode == nullptr ? "" : mode;
}

}  // namespace

bool kernel_data_path_run() {
  return pinned_data_path() == "kernel";
}

bool on_kernel_path(const std::string& file) {
  const std::string map = getxattr_string(file, "user.tierfs.map");
  return !map.empty() && nlohmann::json::parse(map).value("data_path", "server") == "kernel";
}

std::string config_toml(const TestConfig& config) {
  std::ostringstream out;
  out << "[mount]\ncache = \"" << config.cache << "\"\n";
  if (config.allow_other) out << "allow_other = true\n";
  for (const auto& tier : config.tiers) {
    out << "\n[[tier]]\nname = \"" << tier.name << "\"\nregions = [";
    for (size_t i = 0; i < tier.regions.size(); ++i) {
      out << (i ? ", " : "");
      if (i < tier.offsets.size() && !tier.offsets[i].empty())
        out << "{ region = \"" << tier.regions[i] << "\", offset = \"" << tier.offsets[i] << "\" }";
      else
        out << '"' << tier.regions[i] << '"';
    }
    out << "]\nsize = \"" << tier.size << "\"\ngranularity = \"" << tier.granularity << "\"\n";
    if (tier.create_files) out << "create = true\n";
    if (!tier.weights.empty()) {
      out << "weights = [";
      for (size_t i = 0; i < tier.weights.size(); ++i) out << (i ? ", " : "") << tier.weights[i];
      out << "]\n";
    }
    if (!tier.extra.empty()) out << tier.extra << "\n";
    const std::string pinned = pinned_data_path();
    if (tier.extra.find("data_path") == std::string::npos &&
        ((pinned == "kernel" && kernel_qualifies(tier)) || pinned == "server"))
      out << "data_path = \"" << pinned << "\"\n";
  }
  for (const auto& rule : config.placement) {
    out << "\n[[placement]]\n";
    if (!rule.path_glob.empty()) out << "path = \"" << rule.path_glob << "\"\n";
    if (!rule.min_size.empty()) out << "min_size = \"" << rule.min_size << "\"\n";
    out << "tier = \"" << rule.tier << "\"\n";
    if (rule.pin) out << "pin = true\n";
  }
  if (!config.default_tier.empty())
    out << "\n[defaults]\ntier = \"" << config.default_tier << "\"\n";
  if (!config.extra.empty()) out << "\n" << config.extra << "\n";
  return out.str();
}

TestConfig small_config() {
  TestConfig config;
  config.tiers.push_back({"fast", {"numa:0"}, "64MiB", "4KiB"});
  return config;
}

std::string read_all(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open failed: " + std::string(strerror(errno)) + ">";
  std::string data;
  char buf[1 << 16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
  close(fd);
  return data;
}

void write_all(const std::string& path, const std::string& data, int flags) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | flags, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    ASSERT_GT(n, 0) << path << ": " << strerror(errno);
    done += static_cast<size_t>(n);
  }
  close(fd);
}

std::string pattern(size_t bytes, unsigned seed) {
  std::string data(bytes, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < bytes; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    data[i] = static_cast<char>(x);
  }
  return data;
}

std::string getxattr_string(const std::string& path, const std::string& name) {
  std::string value(1 << 20, '\0');
  ssize_t n = getxattr(path.c_str(), name.c_str(), value.data(), value.size());
  if (n < 0) return "";
  value.resize(static_cast<size_t>(n));
  return value;
}

void MountTest::SetUp() {
  TIERFS_REQUIRE(missing_root());
  TIERFS_REQUIRE(missing_fuse());
  ASSERT_TRUE(mount_.start(small_config())) << mount_.failure();
}

void MountTest::TearDown() {
  mount_.stop();
}

bool MountTest::remount(const TestConfig& config) {
  mount_.stop();
  return mount_.start(config);
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
  return st;
}

bool later(const timespec& a, const timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

bool same(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

void set_past_times(const std::string& path) {
  const timespec past[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};  // 2001-09-09
  EXPECT_EQ(utimensat(AT_FDCWD, path.c_str(), past, AT_SYMLINK_NOFOLLOW), 0)
      << path << ": " << strerror(errno);
}

bool ReferenceTmpfs::mount(const std::string& size) {
  char tmpl[] = "/tmp/tierfs-reference-tmpfs-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return false;
  dir_ = tmpl;
  const std::string options = "mode=0755,size=" + size;
  if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
    const int error = errno;
    rmdir(dir_.c_str());
    dir_.clear();
    errno = error;
    return false;
  }
  return true;
}

ReferenceTmpfs::~ReferenceTmpfs() {
  if (dir_.empty()) return;
  umount2(dir_.c_str(), MNT_DETACH);
  rmdir(dir_.c_str());
}

}  // namespace tierfs::testing
