// The mount kit of the tests and the C++ benchmarks (see tierfs_mount.h).
#include "tests/support/tierfs_mount.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

namespace tierfs::testing {

namespace fs = std::filesystem;

namespace {

// Forks and execs `argv` with stdout and stderr on `out_fd` (which should be
// close-on-exec, so that only 1 and 2 reach the program); -1 when fork fails.
pid_t spawn(const std::vector<std::string>& argv, int out_fd) {
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int exit_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Waits up to `timeout` for the child; true when it exited (status stored).
bool wait_child(pid_t pid, std::chrono::milliseconds timeout, int& status) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || r < 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

dev_t device_of(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_dev : 0;
}

// The daemon `tierfs mount` left behind: the child of ours (we are its
// subreaper) whose command line names our configuration file.
pid_t find_daemon(const std::string& config_path) {
  const std::string parent = std::to_string(getpid());
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat_file(entry.path() / "stat");
    std::string stat_line;
    std::getline(stat_file, stat_line);
    // Fields after the parenthesised command: state, ppid.
    std::istringstream rest(stat_line.substr(stat_line.rfind(')') + 1));
    std::string state, ppid;
    if (!(rest >> state >> ppid) || ppid != parent) continue;
    std::ifstream cmdline_file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)),
                        std::istreambuf_iterator<char>());
    if (cmdline.find(std::string(1, '\0') + config_path + '\0') != std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

}  // namespace

std::string tierfs_bin() {
  const char* bin = std::getenv("TIERFS_BIN");
  return bin != nullptr ? bin : "tierfs";
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
  // Close-on-exec: a daemon the command leaves behind must not hold the pipe open.
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
  const pid_t pid = spawn(argv, pipe_fds[1]);
  close(pipe_fds[1]);
  output.clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(n));
  close(pipe_fds[0]);
  if (pid < 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return exit_status(status);
}

TierfsMount::TierfsMount(std::string name_prefix) : name_prefix_(std::move(name_prefix)) {}

TierfsMount::~TierfsMount() {
  stop();
}

bool TierfsMount::start(const std::string& config_toml, const std::vector<std::string>& extra_args,
                        Mode mode) {
  stop();
  std::string tmpl = (fs::temp_directory_path() / (name_prefix_ + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) return false;
  work_dir_ = tmpl;
  // Other users' tests must reach the mount point.
  fs::permissions(work_dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                 fs::perms::others_read | fs::perms::others_exec);
  mountpoint_ = work_dir_ + "/mnt";
  log_path_ = work_dir_ + "/server.log";
  last_log_.clear();
  fs::create_directory(mountpoint_);
  std::string toml = config_toml;
  for (size_t at; (at = toml.find("@WORK@")) != std::string::npos;) toml.replace(at, 6, work_dir_);
  std::ofstream(config_path()) << toml;

  std::vector<std::string> argv = {tierfs_bin(), "mount", "--config", config_path()};
  if (mode == Mode::foreground) argv.emplace_back("-f");
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(mountpoint_);
  const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) return false;

  if (mode == Mode::foreground) {
    const dev_t before = device_of(mountpoint_);
    pid_ = spawn(argv, log);
    close(log);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
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

  // Daemon mode: `tierfs mount` exits once the mount is live; the server it
  // forked is reparented to this process, which can then wait for it.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const pid_t starter = spawn(argv, log);
  close(log);
  if (starter < 0) return false;
  int status = 0;
  waitpid(starter, &status, 0);
  if (exit_status(status) != 0) return false;
  pid_ = find_daemon(config_path());
  return pid_ > 0;
}

int TierfsMount::stop() {
  int result = 0;
  std::string output;
  if (pid_ > 0 || (!work_dir_.empty() && is_mounted(mountpoint_)))
    run_command({"fusermount3", "-u", mountpoint_}, output);
  if (pid_ > 0) {
    int status = 0;
    if (wait_child(pid_, std::chrono::seconds(20), status)) {
      result = exit_status(status);
    } else {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      result = -1;
    }
    pid_ = -1;
  }
  if (!work_dir_.empty() && is_mounted(mountpoint_))
    run_command({"umount", "-l", mountpoint_}, output);
  remove_work_dir();
  return result;
}

std::string TierfsMount::log() const {
  if (work_dir_.empty()) return last_log_;
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void TierfsMount::remove_work_dir() {
  // Never while mounted: remove_all would descend into the file system.
  if (work_dir_.empty() || is_mounted(mountpoint_)) return;
  last_log_ = log();
  std::error_code ignored;
  fs::remove_all(work_dir_, ignored);
  work_dir_.clear();
}

}  // namespace tierfs::testing
