// The mount fixture of the integration tests (see mount_fixture.h).
#include "tests/integration/mount_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/privileged.h"

namespace tierfs::testing {

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

dev_t device_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_dev;
}

// Waits up to `timeout` for the child; true when it exited (status stored).
bool wait_child(pid_t pid, std::chrono::milliseconds timeout, int& status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

std::string tierfs_bin() {
  const char* bin = std::getenv("TIERFS_BIN");
  return bin ? bin : "tierfs";
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
  }
  for (const auto& rule : config.placement) {
    out << "\n[[placement]]\n";
    if (!rule.path_glob.empty()) out << "path = \"" << rule.path_glob << "\"\n";
    if (!rule.min_size.empty()) out << "min_size = \"" << rule.min_size << "\"\n";
    out << "tier = \"" << rule.tier << "\"\n";
  }
  if (!config.default_tier.empty())
    out << "\n[defaults]\ntier = \"" << config.default_tier << "\"\n";
  return out.str();
}

TestConfig small_config() {
  TestConfig config;
  config.tiers.push_back({"fast", {"numa:0"}, "64MiB", "4KiB"});
  return config;
}

Mount::~Mount() {
  stop();
}

bool Mount::start(const TestConfig& config, const std::vector<std::string>& extra_args) {
  char tmpl[] = "/tmp/tierfs-it-XXXXXX";
  if (!mkdtemp(tmpl)) return false;
  work_dir_ = tmpl;
  chmod(work_dir_.c_str(), 0755);  // other users' tests must reach the mount point
  mountpoint_ = work_dir_ + "/mnt";
  log_path_ = work_dir_ + "/server.log";
  mkdir(mountpoint_.c_str(), 0755);
  std::string config_path = work_dir_ + "/tierfs.toml";
  std::string toml = config_toml(config);
  for (size_t at; (at = toml.find("@WORK@")) != std::string::npos;) toml.replace(at, 6, work_dir_);
  write_text(config_path, toml);
  dev_t before = device_of(mountpoint_);

  std::vector<std::string> args = {tierfs_bin(), "mount", "-f", "--config", config_path};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  args.push_back(mountpoint_);
  pid_ = fork();
  if (pid_ == 0) {
    int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (device_of(mountpoint_) != before) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int Mount::stop() {
  if (pid_ <= 0) {
    if (!work_dir_.empty() && !is_mounted(mountpoint_)) {
      std::string ignored;
      run_command({"rm", "-rf", work_dir_}, ignored);
      work_dir_.clear();
    }
    return 0;
  }
  std::string output;
  run_command({"fusermount3", "-u", mountpoint_}, output);
  int status = 0;
  if (!wait_child(pid_, std::chrono::seconds(20), status)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    status = -1;
  }
  pid_ = -1;
  if (is_mounted(mountpoint_)) run_command({"umount", "-l", mountpoint_}, output);
  run_command({"rm", "-rf", work_dir_}, output);
  work_dir_.clear();
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Mount::failure() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return "server log:\n" + text.str();
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

bool is_mounted(const std::string& mountpoint) {
  std::ifstream mounts("/proc/mounts");
  std::string device, dir, rest;
  while (mounts >> device >> dir && std::getline(mounts, rest))
    if (dir == mountpoint) return true;
  return false;
}

int run_command(const std::vector<std::string>& argv, std::string& output) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  output.clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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

void tick() {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

}  // namespace tierfs::testing
