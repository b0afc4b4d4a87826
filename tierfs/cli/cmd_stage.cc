// `tierfs stage in|out (--manifest FILE | SOURCE DESTINATION)`: parallel,
// verified, resumable copies into and out of job scratch (tierfs/jobs/stage_*).
// A progress bar on stderr when it is a terminal; a JSON report on request.
// Exit status: 0 all copied and verified, 1 some entry failed (the report and
// one line per failure say which), 2 bad manifest or arguments, 3 interrupted.
#include <unistd.h>

#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>

#include "tierfs/cli/commands.h"
#include "tierfs/core/units.h"
#include "tierfs/jobs/stage_copy.h"

namespace tierfs {

namespace {

struct StageArgs {
  std::string manifest;
  std::vector<std::string> paths;  // SOURCE DESTINATION
  unsigned threads = 0;
  std::string report;
  bool json = false;
  bool no_verify = false;
  bool no_progress = false;
};

std::atomic<bool> g_interrupted{false};

void on_signal(int) {
  g_interrupted = true;
}

// One line redrawn in place: "[#######-------------]  35%  1.20GiB of 3.40GiB  850.00MiB/s".
void draw_progress(uint64_t done, uint64_t total, double seconds) {
  constexpr int kWidth = 30;
  const double share = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int filled = static_cast<int>(share * kWidth);
  const uint64_t rate =
      seconds > 0 ? static_cast<uint64_t>(static_cast<double>(done) / seconds) : 0;
  fmt::print(stderr, "\r[{}{}] {:3d}%  {} of {}  {}/s   ", std::string(filled, '#'),
             std::string(kWidth - filled, '-'), static_cast<int>(share * 100),
             format_size_approx(done), format_size_approx(total), format_size_approx(rate));
}

int run_stage_command(const std::string& direction, const StageArgs& args) {
  std::vector<jobs::StageEntry> entries;
  unsigned threads = args.threads;
  std::string report_file = args.report;
  try {
    if (!args.manifest.empty()) {
      if (!args.paths.empty())
        throw std::runtime_error("give --manifest or SOURCE DESTINATION, not both");
      jobs::StageManifest manifest = jobs::load_stage_manifest(args.manifest);
      entries = std::move(manifest.entries);
      if (!threads) threads = manifest.threads;
      if (report_file.empty()) report_file = manifest.report;
    } else {
      if (args.paths.size() != 2)
        throw std::runtime_error("give --manifest FILE or SOURCE DESTINATION");
      entries.push_back(jobs::StageEntry{args.paths[0], args.paths[1], std::nullopt, {}});
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "tierfs stage {}: {}\n", direction, e.what());
    return 2;
  }
  jobs::StageOptions options;
  options.threads = threads;
  options.verify = !args.no_verify;
  options.should_stop = [] { return g_interrupted.load(); };
  const auto started = std::chrono::steady_clock::now();
  const bool bar = !args.no_progress && isatty(STDERR_FILENO);
  if (bar)
    options.progress = [started](uint64_t done, uint64_t total) {
      draw_progress(
          done, total,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    };
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  const jobs::StageReport report = jobs::run_stage(entries, direction, options);
  if (bar) fmt::print(stderr, "\n");

  const std::string json = report.to_json().dump(2) + "\n";
  if (args.json) fmt::print("{}", json);
  if (!report_file.empty()) {
    std::ofstream out(report_file);
    out << json;
    if (!out)
      fmt::print(stderr, "tierfs stage {}: cannot write the report {}\n", direction, report_file);
  }
  uint64_t bytes = 0, files = 0, skipped = 0, resumed = 0;
  for (const jobs::StageEntryResult& e : report.entries) {
    for (const std::string& line : e.errors)
      fmt::print(stderr, "tierfs stage {}: {}\n", direction, line);
    bytes += e.bytes;
    files += e.files;
    skipped += e.files_skipped;
    resumed += e.files_resumed;
  }
  if (report.interrupted) {
    fmt::print(stderr, "tierfs stage {}: interrupted; run it again to resume\n", direction);
    return 3;
  }
  if (!args.json)
    fmt::print("tierfs stage {}: {} files, {} in {:.2f} s ({} skipped as complete, {} resumed){}\n",
               direction, files, format_size_approx(bytes), report.seconds, skipped, resumed,
               report.ok() ? "" : "; with errors");
  return report.ok() ? 0 : 1;
}

}  // namespace

void add_stage_command(CLI::App& app, int& status) {
  auto* stage = app.add_subcommand("stage", "Copy data into or out of job scratch, verified");
  stage->require_subcommand(1);
  for (const char* direction : {"in", "out"}) {
    auto args = std::make_shared<StageArgs>();
    auto* cmd = stage->add_subcommand(direction, std::string(direction) == "in"
                                                     ? "Stage data in (before the job)"
                                                     : "Stage results out (at the end of the job)");
    cmd->add_option("--manifest,-m", args->manifest, "TOML manifest of [[copy]] entries");
    cmd->add_option("--threads,-j", args->threads, "copy threads (default: the CPUs)");
    cmd->add_option("--report", args->report, "write the JSON report to this file");
    cmd->add_flag("--json", args->json, "print the JSON report on stdout");
    cmd->add_flag("--no-verify", args->no_verify, "do not re-read copies to compare checksums");
    cmd->add_flag("--no-progress", args->no_progress, "no progress bar, even on a terminal");
    cmd->add_option("PATHS", args->paths, "SOURCE DESTINATION (instead of --manifest)");
    const std::string dir = direction;
    cmd->callback([args, dir, &status] { status = run_stage_command(dir, *args); });
  }
}

}  // namespace tierfs
