// `tierfs job start|stop|env`: per-job scratch for batch systems, and with
// `start --shared` this node's part of the job-wide scratch. The job id,
// uid and gid default to Slurm's SLURM_JOB_ID, SLURM_JOB_UID and SLURM_JOB_GID,
// so a Slurm prolog, epilog or TaskProlog calls them without arguments.
// Every failure is one line on stderr and the exit status of its kind (JobExit).
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <unistd.h>
#include <cctype>
#include <climits>
#include <cstdlib>

#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/core/units.h"
#include "tierfs/jobs/job_control.h"

namespace tierfs {

namespace {

using jobs::JobError;
using jobs::JobExit;

struct JobArgs {
  std::string node_config = "/etc/tierfs/node.toml";
  std::string job_id;
  std::string uid;
  std::string gid;
  std::string size;
  bool shared = false;
  bool no_shared = false;
  std::vector<std::string> nodes;
};

std::string from_env(const std::string& given, const char* variable, const char* what) {
  if (!given.empty()) return given;
  const char* value = std::getenv(variable);
  if (value && *value) return value;
  throw JobError(JobExit::bad_request,
                 fmt::format("no {} (give --{} or set {})", what,
                             std::string(what) == "job id" ? "job-id" : what, variable));
}

unsigned parse_id(const std::string& text, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || *end != '\0' ||
      errno != 0 || v >= UINT_MAX)
    throw JobError(JobExit::bad_request, fmt::format("{} \"{}\" is not a number", what, text));
  return static_cast<unsigned>(v);
}

// "8GiB" as everywhere in tierfs, or Slurm's spelling of --tmp ("8G", "500M"),
// whose letters are binary units too.
uint64_t parse_job_size(const std::string& text) {
  std::string spelled = text;
  if (!spelled.empty() && std::string("KMGT").find(spelled.back()) != std::string::npos &&
      spelled.size() >= 2 && std::isdigit(static_cast<unsigned char>(spelled[spelled.size() - 2])))
    spelled += "iB";
  auto bytes = parse_size(spelled);
  if (!bytes || *bytes == 0 || text.find_first_not_of("0123456789") == std::string::npos)
    throw JobError(
        JobExit::bad_request,
        fmt::format("size \"{}\" is not a size such as \"8GiB\" or Slurm's \"8G\"", text));
  return *bytes;
}

jobs::NodeConfig node_config(const JobArgs& args, const numa::Topology& topology) {
  try {
    return jobs::load_node_config(args.node_config, topology);
  } catch (const std::exception& e) {
    throw JobError(JobExit::bad_config, e.what());
  }
}

std::string self_exe() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw JobError(JobExit::failed, "cannot find the tierfs binary (/proc/self/exe)");
  return std::string(path, static_cast<size_t>(n));
}

// Runs one job subcommand, turning a JobError into its line and status.
template <typename Body>
void run(const char* name, int& status, Body body) {
  try {
    body();
    status = 0;
  } catch (const JobError& e) {
    fmt::print(stderr, "tierfs job {}: {}\n", name, e.what());
    status = static_cast<int>(e.status());
  } catch (const std::exception& e) {
    fmt::print(stderr, "tierfs job {}: {}\n", name, e.what());
    status = static_cast<int>(JobExit::failed);
  }
}

}  // namespace

void add_job_command(CLI::App& app, int& status) {
  auto args = std::make_shared<JobArgs>();
  auto* job = app.add_subcommand("job", "Per-job scratch mounts for batch systems (Slurm)");
  job->require_subcommand(1);
  job->add_option("--node-config", args->node_config,
                  "node configuration (default /etc/tierfs/node.toml)");
  auto add_id = [args](CLI::App* cmd) {
    cmd->add_option("--job-id", args->job_id, "job id (default $SLURM_JOB_ID)");
  };

  auto* start = job->add_subcommand("start", "Create, admit and mount the job's scratch");
  add_id(start);
  start->add_option("--uid", args->uid, "owner of the scratch root (default $SLURM_JOB_UID)");
  start->add_option("--gid", args->gid, "group of the scratch root (default $SLURM_JOB_GID)");
  start->add_option("--size", args->size,
                    "size of the scratch, \"8GiB\" or Slurm's \"8G\" (default: the node's "
                    "default_size)");
  auto* shared = start->add_flag(
      "--shared", args->shared,
      "also this node's part of the job-wide scratch (MooseFS over the job's nodes)");
  start
      ->add_flag("--no-shared", args->no_shared,
                 "no job-wide scratch, whatever [shared] default says")
      ->excludes(shared);
  start
      ->add_option("--nodes", args->nodes,
                   "the job's nodes as they reach each other, comma-separated; the first runs "
                   "the job-wide scratch's master")
      ->delimiter(',');
  start->callback([args, &status] {
    run("start", status, [&] {
      jobs::JobRequest request;
      request.job_id = from_env(args->job_id, "SLURM_JOB_ID", "job id");
      request.uid = parse_id(from_env(args->uid, "SLURM_JOB_UID", "uid"), "uid");
      request.gid = parse_id(from_env(args->gid, "SLURM_JOB_GID", "gid"), "gid");
      if (!args->size.empty()) request.size_bytes = parse_job_size(args->size);
      if (args->shared) request.shared = true;
      if (args->no_shared) request.shared = false;
      request.nodes = args->nodes;
      const numa::Topology topology = numa::discover_topology();
      const jobs::NodeConfig node = node_config(*args, topology);
      const jobs::StartOutcome outcome = jobs::start_job(node, topology, request, self_exe());
      fmt::print("tierfs job start: job {}: {} {} on {}{}\n", outcome.state.job_id,
                 outcome.already_running ? "already mounted," : "mounted",
                 format_size_approx(outcome.state.size_bytes), outcome.state.mountpoint,
                 outcome.shared_mountpoint
                     ? fmt::format("; job-wide scratch on {}", *outcome.shared_mountpoint)
                     : "");
    });
  });

  auto* stop = job->add_subcommand("stop", "Unmount the job's scratch and remove every trace");
  add_id(stop);
  stop->callback([args, &status] {
    run("stop", status, [&] {
      const std::string id = from_env(args->job_id, "SLURM_JOB_ID", "job id");
      const numa::Topology topology = numa::discover_topology();
      const bool stopped = jobs::stop_job(node_config(*args, topology), id);
      fmt::print("tierfs job stop: job {}: {}\n", id, stopped ? "removed" : "nothing to remove");
    });
  });

  auto* env = job->add_subcommand("env", "Print the TaskProlog's export lines for the job");
  add_id(env);
  env->callback([args, &status] {
    run("env", status, [&] {
      const std::string id = from_env(args->job_id, "SLURM_JOB_ID", "job id");
      const numa::Topology topology = numa::discover_topology();
      fmt::print("{}", jobs::job_env(node_config(*args, topology), id));
    });
  });
}

}  // namespace tierfs
