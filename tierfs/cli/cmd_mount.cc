// `tierfs mount [--config FILE] [-f] [--log-file FILE] [-o opt] MOUNTPOINT`: validates the
// configuration and the mount point, then serves the mount, in the foreground
// with -f or else as a daemon whose parent exits only once the mount is live
// (or prints the one line that says why it is not).
#include <fcntl.h>
#include <linux/magic.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/cli/mount_guard.h"
#include "tierfs/cli/mount_helper.h"
#include "tierfs/core/config.h"
#include "tierfs/server/fs_session.h"

namespace tierfs {

namespace {

struct MountArgs {
  std::string config_file;
  std::string mountpoint;
  std::vector<std::string> options;
  std::string log_file;  // also log here (appended), besides stderr or syslog
  bool foreground = false;
  bool debug = false;
  bool fresh = false;
};

// The file systems through which the kernel and its services are driven
// (/proc, /sys, cgroups, BPF objects, ...): a directory there is no place for
// scratch, and covering one hides what every process on the node relies on.
const char* kernel_file_system(const char* directory) {
  struct statfs fs {};
  if (statfs(directory, &fs) != 0) return nullptr;
  switch (static_cast<uint64_t>(fs.f_type)) {
    case PROC_SUPER_MAGIC:
      return "proc";
    case SYSFS_MAGIC:
      return "sysfs";
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
      return "cgroupfs";
    case DEBUGFS_MAGIC:
      return "debugfs";
    case TRACEFS_MAGIC:
      return "tracefs";
    case SECURITYFS_MAGIC:
      return "securityfs";
    case BPF_FS_MAGIC:
      return "bpffs";
    case DEVPTS_SUPER_MAGIC:
      return "devpts";
    case EFIVARFS_MAGIC:
      return "efivarfs";
    case PSTOREFS_MAGIC:
      return "pstore";
    default:
      return nullptr;
  }
}

std::string checked_mountpoint(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw std::runtime_error(fmt::format("mount point {}: {}", path, strerror(errno)));
  if (!S_ISDIR(st.st_mode))
    throw std::runtime_error(fmt::format("mount point {}: not a directory", path));
  char resolved[PATH_MAX];
  if (!realpath(path.c_str(), resolved))
    throw std::runtime_error(fmt::format("mount point {}: {}", path, strerror(errno)));
  if (std::string_view(resolved) == "/")
    throw std::runtime_error(fmt::format("mount point {}: the root directory", path));
  if (const char* kind = kernel_file_system(resolved))
    throw std::runtime_error(fmt::format(
        "mount point {}: on {}, the kernel's own interface; a mount there would hide it", path,
        kind));
  return resolved;
}

std::vector<std::string> split_options(const std::vector<std::string>& raw) {
  std::vector<std::string> out;
  for (const auto& group : raw) {
    size_t start = 0;
    while (start <= group.size()) {
      size_t comma = group.find(',', start);
      if (comma == std::string::npos) comma = group.size();
      if (comma > start) out.push_back(group.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return out;
}

void use_logger(std::shared_ptr<spdlog::logger> logger, bool debug) {
  logger->set_level(debug ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

// The server's logger: stderr (foreground) or syslog (daemon), and the log file if any.
void use_logger(spdlog::sink_ptr main_sink, const std::string& log_file, bool debug) {
  std::vector<spdlog::sink_ptr> sinks = {std::move(main_sink)};
  if (!log_file.empty())
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file));
  auto logger = std::make_shared<spdlog::logger>("tierfs", sinks.begin(), sinks.end());
  if (!log_file.empty()) logger->flush_on(spdlog::level::info);
  use_logger(std::move(logger), debug);
}

int run_foreground(Config config, const SessionOptions& session) {
  use_logger(std::make_shared<spdlog::sinks::stderr_sink_mt>(), session.log_file, session.debug);
  StartupReport report{
      [](const std::string& line) { fmt::print(stderr, "tierfs: {}\n", line); },
      [] {},
  };
  return serve_mount(std::move(config), session, report);
}

// Sends the parent one message: "O" when mounted, "E<line>" on failure.
void tell_parent(int fd, const std::string& message) {
  size_t done = 0;
  while (done < message.size()) {
    ssize_t n = write(fd, message.data() + done, message.size() - done);
    if (n <= 0 && errno != EINTR) return;
    if (n > 0) done += static_cast<size_t>(n);
  }
}

void detach_stdio() {
  int null_fd = open("/dev/null", O_RDWR);
  if (null_fd < 0) return;
  dup2(null_fd, STDIN_FILENO);
  dup2(null_fd, STDOUT_FILENO);
  dup2(null_fd, STDERR_FILENO);
  if (null_fd > STDERR_FILENO) close(null_fd);
}

// Forks before any region is opened: the child mounts and serves, the parent
// waits for its verdict so that errors still reach the terminal.
int run_daemon(Config config, const SessionOptions& session) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw std::runtime_error(fmt::format("cannot create a pipe: {}", strerror(errno)));
  pid_t child = fork();
  if (child < 0) throw std::runtime_error(fmt::format("cannot fork: {}", strerror(errno)));
  if (child > 0) {
    close(pipe_fds[1]);
    std::string verdict;
    char chunk[512];
    ssize_t n;
    while ((n = read(pipe_fds[0], chunk, sizeof chunk)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      verdict.append(chunk, static_cast<size_t>(n));
    }
    close(pipe_fds[0]);
    if (verdict == "O") return 0;
    int child_status = 0;
    waitpid(child, &child_status, 0);
    if (!verdict.empty() && verdict[0] == 'E')
      fmt::print(stderr, "tierfs: {}\n", verdict.substr(1));
    else
      fmt::print(stderr, "tierfs: the server exited during start-up\n");
    return 1;
  }
  close(pipe_fds[0]);
  setsid();
  use_logger(std::make_shared<spdlog::sinks::syslog_sink_mt>("tierfs", LOG_PID, LOG_DAEMON, true),
             session.log_file, session.debug);
  int report_fd = pipe_fds[1];
  StartupReport report{
      [report_fd](const std::string& line) {
        spdlog::error("{}", line);
        tell_parent(report_fd, "E" + line);
        close(report_fd);
      },
      [report_fd] {
        if (chdir("/") != 0) spdlog::warn("cannot chdir to /: {}", strerror(errno));
        detach_stdio();
        tell_parent(report_fd, "O");
        close(report_fd);
      },
  };
  return serve_mount(std::move(config), session, report);
}

// `mount -o remount,...` runs the helper on a live mount: the kernel switches
// ro/rw in place and the server stays; what tierfs itself reads at start-up
// cannot change without a new server.
void remount_mount(const std::string& mountpoint, const std::vector<std::string>& options,
                   const TierfsMountOptions& own, const std::string& config_file) {
  if (!config_file.empty() || !own.config_file.empty() || own.root_uid || own.root_gid ||
      own.root_mode || !own.log_file.empty() || own.fresh)
    throw std::runtime_error(
        "remount changes only ro and rw; config=, uid=, gid=, mode=, log_file= and fresh take "
        "a new mount (unmount, then mount)");
  bool read_only = false;
  for (const std::string& option : options)
    if (option == "ro" || option == "rw") read_only = option == "ro";
  remount_served(mountpoint, read_only);
}

}  // namespace

void add_mount_command(CLI::App& app, int& status) {
  auto args = std::make_shared<MountArgs>();
  auto* cmd = app.add_subcommand("mount", "Mount a tierfs file system");
  cmd->add_option("--config,-c", args->config_file,
                  "TOML configuration (default: the built-in DRAM tier over every NUMA node)");
  cmd->add_flag("--foreground,-f", args->foreground, "stay in the foreground, log to stderr");
  cmd->add_flag("--debug,-d", args->debug, "log every FUSE request (implies nothing else)");
  cmd->add_flag("--fresh", args->fresh,
                "discard what a previous server of this mount left (shared memory, metadata) "
                "instead of adopting it");
  cmd->add_option("--log-file", args->log_file,
                  "also log to FILE (appended), besides stderr or syslog");
  cmd->add_option("-o", args->options,
                  "mount options, comma-separated: config=FILE, uid=, gid=, mode= of the root "
                  "directory, log_file=FILE, fresh (as --fresh), and FUSE's (e.g. ro)");
  cmd->add_option("MOUNTPOINT", args->mountpoint, "directory to mount on")->required();
  cmd->callback([args, &status] {
    std::vector<std::string> options = split_options(args->options);
    const TierfsMountOptions own = take_tierfs_options(options);
    if (std::find(options.begin(), options.end(), "remount") != options.end()) {
      remount_mount(args->mountpoint, options, own, args->config_file);
      return;
    }
    std::string config_file = args->config_file.empty() ? own.config_file : args->config_file;
    numa::Topology topology = numa::discover_topology();
    Config config =
        config_file.empty() ? default_config(topology) : load_config(config_file, topology);
    SessionOptions session;
    refuse_served_mountpoint(args->mountpoint);
    session.mountpoint = checked_mountpoint(args->mountpoint);
    session.extra_options = std::move(options);
    session.debug = args->debug;
    session.fresh = args->fresh || own.fresh;
    session.root_uid = own.root_uid;
    session.root_gid = own.root_gid;
    session.root_mode = own.root_mode;
    session.log_file = args->log_file.empty() ? own.log_file : args->log_file;
    if (!session.log_file.empty()) {
      // Refused here, while the terminal still shows it, not in the daemon.
      const int fd =
          open(session.log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
      if (fd < 0)
        throw std::runtime_error(fmt::format("log file {}: {}", session.log_file, strerror(errno)));
      close(fd);
      char resolved[PATH_MAX];
      if (realpath(session.log_file.c_str(), resolved))
        session.log_file = resolved;  // the daemon chdirs to /
    }
    status = args->foreground ? run_foreground(std::move(config), session)
                              : run_daemon(std::move(config), session);
  });
}

}  // namespace tierfs
