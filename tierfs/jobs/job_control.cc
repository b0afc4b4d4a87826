// start/stop/env of per-job scratch mounts (see job_control.h). The server is
// `tierfs mount -f` in its own session, its output in the job's log file in
// the state directory; its pid and the names of its shared-memory objects are
// recorded before it maps anything, so a stop after any crash finds them.
#include "tierfs/jobs/job_control.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <fstream>
#include <thread>

#include "tierfs/core/units.h"
#include "tierfs/jobs/mount_cleanup.h"
#include "tierfs/jobs/shared_scratch.h"

namespace tierfs::jobs {

namespace {

using std::chrono::steady_clock;

constexpr auto kMountTimeout = std::chrono::seconds(60);
constexpr auto kPoll = std::chrono::milliseconds(10);

std::string canonical_base(const NodeConfig& node) {
  if (mkdir(node.base.c_str(), 0755) != 0 && errno != EEXIST)
    throw JobError(JobExit::failed,
                   fmt::format("cannot create {}: {}", node.base, strerror(errno)));
  char resolved[PATH_MAX];
  if (!realpath(node.base.c_str(), resolved))
    throw JobError(JobExit::failed, fmt::format("{}: {}", node.base, strerror(errno)));
  return resolved;
}

// The job's mount configuration: the node's (or the built-in) tiers, the
// first one sized to the request, allow_other so the job's user may enter.
Config job_mount_config(const NodeConfig& node, const numa::Topology& topology,
                        uint64_t size_bytes) {
  try {
    Config config = node.mount_config.empty() ? default_config(topology)
                                              : load_config(node.mount_config, topology);
    config.tiers.front().size_bytes = size_bytes;
    config.mount.allow_other = true;
    // Validated again, so the size is checked against the regions and rounded to rows.
    return parse_config(to_toml(config), "<job mount configuration>", topology);
  } catch (const std::exception& e) {
    throw JobError(JobExit::bad_config, e.what());
  }
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

std::map<std::string, uint64_t> usage_of(const Config& config) {
  std::map<std::string, uint64_t> usage;
  for (const TierConfig& tier : config.tiers)
    for (const RegionGeometry& region : tier.geometry.regions) {
      const std::string key = admission_key(region.spec);
      if (!key.empty()) usage[key] += region.bytes;
    }
  return usage;
}

// Under the state lock: refuses the job when any limited region would hold
// more than its allowance together with every recorded job mount.
void admit(const NodeConfig& node, const std::string& job_id,
           const std::map<std::string, uint64_t>& usage) {
  const std::vector<JobState> others = list_job_states(node.state_dir);
  for (const AdmissionLimit& limit : node.limits) {
    auto asked = usage.find(limit.region);
    if (asked == usage.end()) continue;
    uint64_t in_use = 0;
    size_t holders = 0;
    for (const JobState& other : others) {
      if (other.job_id == job_id) continue;
      auto it = other.usage.find(limit.region);
      if (it == other.usage.end()) continue;
      in_use += it->second;
      ++holders;
    }
    if (in_use + asked->second > limit.bytes)
      throw JobError(
          JobExit::refused,
          fmt::format("job {} refused on node {}: {} allows {} for tierfs jobs, {} in "
                      "use by {} job(s), this job asks {}",
                      job_id, host_name(), limit.region, format_size_approx(limit.bytes),
                      format_size_approx(in_use), holders, format_size_approx(asked->second)));
  }
}

std::string last_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

bool server_alive(const JobState& state) {
  return state.server_pid > 0 && state.server_start_ticks != 0 &&
         process_start_ticks(state.server_pid) == state.server_start_ticks;
}

// Runs `tierfs mount -f --config CONFIG MOUNTPOINT` in a session of its own
// with stdout and stderr in log_file. Returns its pid.
pid_t spawn_server(const std::string& exe, const std::string& config_file,
                   const std::string& mountpoint, const std::string& log_file) {
  const int log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0)
    throw JobError(JobExit::failed, fmt::format("cannot create {}: {}", log_file, strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    throw JobError(JobExit::failed, fmt::format("cannot fork: {}", strerror(errno)));
  }
  if (pid == 0) {
    setsid();
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    if (chdir("/") != 0) _exit(127);
    execl(exe.c_str(), "tierfs", "mount", "-f", "--config", config_file.c_str(), mountpoint.c_str(),
          static_cast<char*>(nullptr));
    dprintf(STDERR_FILENO, "tierfs: cannot run %s: %s\n", exe.c_str(), strerror(errno));
    _exit(127);
  }
  close(log_fd);
  return pid;
}

// Waits until the mount is live or the server exits (reaping it then).
void wait_for_mount(pid_t pid, const std::string& mountpoint, const std::string& log_file) {
  const auto deadline = steady_clock::now() + kMountTimeout;
  while (steady_clock::now() < deadline) {
    auto type = mount_type(mountpoint);
    if (type && type->rfind("fuse", 0) == 0) return;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      std::string why = last_line_of(log_file);
      if (why.rfind("tierfs: ", 0) == 0) why = why.substr(8);
      throw JobError(JobExit::mount_failed,
                     fmt::format("the server did not mount: {}",
                                 why.empty() ? "it exited without a word" : why));
    }
    std::this_thread::sleep_for(kPoll);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  throw JobError(JobExit::mount_failed, "the server did not mount within 60 s");
}

bool wait_for_exit(const JobState& state, std::chrono::milliseconds timeout) {
  const auto deadline = steady_clock::now() + timeout;
  while (server_alive(state)) {
    if (steady_clock::now() >= deadline) return false;
    // The server is our child only when start failed in this process.
    waitpid(state.server_pid, nullptr, WNOHANG);
    std::this_thread::sleep_for(kPoll);
  }
  return true;
}

// Everything stop does, in order; what cannot be removed is named in the error.
// Once the server is gone, `tierfs cleanup`'s code removes what it left (the
// shared memory named in its state directory, the state directory); the
// mount point and the job records are stop's own.
void remove_traces(const NodeConfig& node, const JobState& state) {
  const std::string& mp = state.mountpoint;
  if (mount_type(mp)) {
    // A crashed server's mount fails with ENOTCONN and a busy one with EBUSY:
    // both are detached lazily; the kernel drops the connection when the last user goes.
    if (umount2(mp.c_str(), UMOUNT_NOFOLLOW) != 0)
      umount2(mp.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  }
  if (server_alive(state) && !wait_for_exit(state, std::chrono::seconds(node.stop_timeout_s))) {
    // A straggler keeps the detached connection open; the data is discarded anyway.
    kill(state.server_pid, SIGTERM);
    if (!wait_for_exit(state, std::chrono::seconds(2))) {
      kill(state.server_pid, SIGKILL);
      wait_for_exit(state, std::chrono::seconds(5));
    }
  }
  std::string left;
  if (server_alive(state)) left += fmt::format(" server pid {} still runs;", state.server_pid);
  if (!server_alive(state)) {
    try {
      // Job mounts keep their state in the default place: a default Config
      // says where. What it removed needs no report; what it could not does.
      cleanup_mount(mp, Config{});
    } catch (const std::exception& e) {
      left += fmt::format(" {};", e.what());
    }
  }
  if (mount_type(mp)) left += fmt::format(" {} is still mounted;", mp);
  if (rmdir(mp.c_str()) != 0 && errno != ENOENT)
    left += fmt::format(" {}: {};", mp, strerror(errno));
  if (!left.empty()) {
    left.pop_back();
    throw JobError(JobExit::cleanup_left, fmt::format("job {}:{}", state.job_id, left));
  }
  for (const char* suffix : {"toml", "log", "failed"})
    unlink(job_file(node.state_dir, state.job_id, suffix).c_str());
  // The record goes last: until here the job's capacity still counts as used.
  unlink(job_file(node.state_dir, state.job_id, "json").c_str());
}

JobState mount_locked(const NodeConfig& node, const numa::Topology& topology,
                      const JobRequest& request, const std::string& exe) {
  const uint64_t size = request.size_bytes.value_or(node.default_size_bytes);
  const std::string mp = canonical_base(node) + "/" + request.job_id;
  const Config config = job_mount_config(node, topology, size);
  JobState state;
  state.job_id = request.job_id;
  state.uid = request.uid;
  state.gid = request.gid;
  state.mountpoint = mp;
  state.size_bytes = config.tiers.front().size_bytes;
  state.usage = usage_of(config);
  admit(node, request.job_id, state.usage);

  if (mkdir(mp.c_str(), 0700) != 0) {
    if (errno != EEXIST)
      throw JobError(JobExit::failed, fmt::format("cannot create {}: {}", mp, strerror(errno)));
    if (rmdir(mp.c_str()) != 0 || mkdir(mp.c_str(), 0700) != 0)
      throw JobError(JobExit::failed, fmt::format("{} exists and is not an empty directory", mp));
  }
  // Recorded before anything is mounted, so that every failure below is undone by stop.
  write_job_state(node.state_dir, state);
  try {
    const std::string config_file = job_file(node.state_dir, request.job_id, "toml");
    const std::string log_file = job_file(node.state_dir, request.job_id, "log");
    write_file_atomically(config_file, to_toml(config));
    const pid_t pid = spawn_server(exe, config_file, mp, log_file);
    state.server_pid = pid;
    state.server_start_ticks = process_start_ticks(pid);
    write_job_state(node.state_dir, state);
    wait_for_mount(pid, mp, log_file);
    // The root of the mount belongs to the job, and only to it.
    if (chown(mp.c_str(), request.uid, request.gid) != 0 || chmod(mp.c_str(), 0700) != 0)
      throw JobError(JobExit::mount_failed, fmt::format("cannot give {} to {}:{}: {}", mp,
                                                        request.uid, request.gid, strerror(errno)));
  } catch (const JobError& e) {
    try {
      remove_traces(node, state);
    } catch (const JobError& cleanup) {
      throw JobError(e.status(), fmt::format("{} (and {})", e.what(), cleanup.what()));
    }
    throw;
  }
  return state;
}

// Under the state lock: the job's scratch and, when it wants it, this node's
// part of the job-wide scratch; a failure of either leaves neither.
StartOutcome start_locked(const NodeConfig& node, const numa::Topology& topology,
                          const JobRequest& request, const std::string& exe) {
  if (request.size_bytes && *request.size_bytes == 0)
    throw JobError(JobExit::bad_request, "the size of a job's scratch must not be 0");
  if (request.shared.value_or(false) && request.nodes.empty())
    throw JobError(JobExit::bad_request,
                   "--shared needs the job's nodes (--nodes), the first of which runs the master");
  const bool shared = request.nodes.size() > 1 && request.shared.value_or(node.shared.by_default);
  const SharedRequest shared_request{request.job_id, request.uid, request.gid, request.nodes};
  if (shared) check_shared_request(shared_request);
  if (auto existing = read_job_state(node.state_dir, request.job_id)) {
    auto type = mount_type(existing->mountpoint);
    if (type && type->rfind("fuse", 0) == 0 && server_alive(*existing)) {
      StartOutcome outcome{*existing, true, std::nullopt};
      if (shared)
        outcome.shared_mountpoint = start_shared(node, shared_request, existing->mountpoint);
      return outcome;
    }
    // A crashed or half-started earlier attempt. This node's chunkserver of
    // the job-wide scratch served chunks from the dead mount: it starts
    // again on the new one below; the master and the job-wide mount live
    // outside tierfs and keep running.
    stop_chunkserver(node, request.job_id);
    remove_traces(node, *existing);
  }
  StartOutcome outcome{mount_locked(node, topology, request, exe), false, std::nullopt};
  if (!shared) return outcome;
  try {
    outcome.shared_mountpoint = start_shared(node, shared_request, outcome.state.mountpoint);
  } catch (const JobError& e) {
    try {
      remove_traces(node, outcome.state);
    } catch (const JobError& cleanup) {
      throw JobError(e.status(), fmt::format("{} (and {})", e.what(), cleanup.what()));
    }
    throw;
  }
  return outcome;
}

}  // namespace

void check_job_id(const std::string& job_id) {
  bool ok = !job_id.empty() && job_id.size() <= 64 && job_id.front() != '.';
  for (char c : job_id)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-');
  if (!ok)
    throw JobError(JobExit::bad_request,
                   fmt::format("job id \"{}\" is not 1-64 of A-Z a-z 0-9 _ . - (not "
                               "starting with .)",
                               job_id));
}

StartOutcome start_job(const NodeConfig& node, const numa::Topology& topology,
                       const JobRequest& request, const std::string& tierfs_exe) {
  check_job_id(request.job_id);
  StateLock lock(node.state_dir);
  unlink(job_file(node.state_dir, request.job_id, "failed").c_str());
  try {
    return start_locked(node, topology, request, tierfs_exe);
  } catch (const JobError& e) {
    // The status and reason stay for `job env`, which the TaskProlog turns into the job's output.
    try {
      write_file_atomically(job_file(node.state_dir, request.job_id, "failed"),
                            fmt::format("{} {}\n", static_cast<int>(e.status()), e.what()));
    } catch (const std::exception&) {
    }
    throw;
  }
}

bool stop_job(const NodeConfig& node, const std::string& job_id) {
  check_job_id(job_id);
  StateLock lock(node.state_dir);
  // The job-wide scratch first: its chunkserver keeps files open on the job's scratch.
  bool shared = false;
  std::string shared_left;
  try {
    shared = stop_shared(node, job_id);
  } catch (const JobError& e) {
    shared = true;
    shared_left = e.what();
  }
  auto state = read_job_state(node.state_dir, job_id);
  bool stopped = shared;
  if (!state) {
    stopped = unlink(job_file(node.state_dir, job_id, "failed").c_str()) == 0 || stopped;
  } else {
    try {
      remove_traces(node, *state);
    } catch (const JobError& e) {
      if (!shared_left.empty()) shared_left += "; ";
      shared_left += e.what();
    }
    stopped = true;
  }
  if (!shared_left.empty()) throw JobError(JobExit::cleanup_left, shared_left);
  return stopped;
}

std::string job_env(const NodeConfig& node, const std::string& job_id) {
  check_job_id(job_id);
  std::ifstream failed(job_file(node.state_dir, job_id, "failed"));
  int status = 0;
  std::string reason;
  if (failed >> status && std::getline(failed >> std::ws, reason))
    throw JobError(static_cast<JobExit>(status), reason);
  auto state = read_job_state(node.state_dir, job_id);
  if (!state || !mount_type(state->mountpoint))
    throw JobError(JobExit::not_started,
                   fmt::format("job {} has no tierfs scratch (did the prolog run `tierfs job "
                               "start`?)",
                               job_id));
  // What the epilog copies back: the manifest the job writes, or the directory it fills.
  std::string lines = fmt::format(
      "export TIERFS_SCRATCH={0}\nexport TIERFS_STAGE_OUT={0}/.stage-out.toml\n"
      "export TIERFS_STAGE_OUT_DIR={0}/stage-out\n",
      state->mountpoint);
  if (auto shared = shared_mountpoint(node, job_id))
    lines += fmt::format("export TIERFS_SHARED={}\n", *shared);
  return lines;
}

}  // namespace tierfs::jobs
