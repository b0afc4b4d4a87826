// The metadata half of bench/server_bench.py: creates COUNT empty files in a
// directory (open O_CREAT|O_EXCL, close), stats each, unlinks each, and
// prints the rate of each phase as one JSON object. The same loop runs on
// tmpfs, the reference FUSE server and tierfs.
//
// Before the stat phase it waits --settle-ms (default 1100): longer than the
// reference server's 1 s entry and attribute timeouts, so its every stat asks
// it (a LOOKUP). tierfs keeps them an hour, a kernel-path file's while it is
// quiescent (a new empty file's from its CREATE): its stats are the kernel's.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  fmt::print(stderr, "server_bench_metadata: {}: {}: {}\n", what, path, strerror(errno));
  std::exit(1);
}

void measure(const std::string& dir, unsigned count, unsigned settle_ms) {
  std::vector<std::string> paths;
  paths.reserve(count);
  for (unsigned i = 0; i < count; ++i) paths.push_back(fmt::format("{}/m{:07}", dir, i));

  auto start = Clock::now();
  for (const std::string& path : paths) {
    int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) fail("create", path);
    if (close(fd) != 0) fail("close", path);
  }
  const double create_s = seconds_since(start);

  std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  start = Clock::now();
  for (const std::string& path : paths) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) fail("stat", path);
  }
  const double stat_s = seconds_since(start);

  start = Clock::now();
  for (const std::string& path : paths)
    if (unlink(path.c_str()) != 0) fail("unlink", path);
  const double unlink_s = seconds_since(start);

  fmt::print(
      "{{\"count\": {}, \"create_per_s\": {:.1f}, \"stat_per_s\": {:.1f}, "
      "\"unlink_per_s\": {:.1f}}}\n",
      count, count / create_s, count / stat_s, count / unlink_s);
}

}  // namespace

static int run_main(int argc, char** argv) {
  CLI::App app{"create/stat/unlink rates of one directory"};
  std::string dir;
  unsigned count = 10000;
  unsigned settle_ms = 1100;
  app.add_option("DIR", dir, "an empty directory on the file system to measure")->required();
  app.add_option("--count", count, "files per phase")->check(CLI::Range(1U, 10000000U));
  app.add_option("--settle-ms", settle_ms, "wait before the stat phase (cache timeouts)");
  try {
    app.parse(argc, argv);
    measure(dir, count, settle_ms);
    return 0;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "server_bench_metadata: {}\n", e.what());
    return 1;
  }
}

// The last line of defence: run_main turns errors into one line itself, and
// anything that still escapes (an error while printing one) ends here.
int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("server_bench_metadata: unexpected error\n", stderr);
    return 1;
  }
}
