// fork + execvp with one pipe for stdout and stderr; the parent polls the
// pipe and the child's exit, so a daemon that keeps the pipe open in the
// background cannot hold it up.
#include "tierfs/jobs/run_program.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tierfs::jobs {

namespace {

constexpr int kNotFound = 127;
constexpr char kNotFoundTag[] = "\x01tierfs: exec failed\n";

void read_available(int fd, std::string& out) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // EOF, EAGAIN or an error: nothing more now
  }
}

}  // namespace

ProgramResult run_program(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
  ProgramResult result;
  int pipe_fd[2];
  if (argv.empty() || pipe2(pipe_fd, O_CLOEXEC) != 0) {
    result.output = argv.empty() ? "no program" : strerror(errno);
    return result;
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    result.output = strerror(errno);
    close(pipe_fd[0]);
    close(pipe_fd[1]);
    return result;
  }
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    dup2(pipe_fd[1], STDOUT_FILENO);
    dup2(pipe_fd[1], STDERR_FILENO);
    execvp(args[0], args.data());
    (void)!write(STDERR_FILENO, kNotFoundTag, sizeof kNotFoundTag - 1);
    _exit(kNotFound);
  }
  close(pipe_fd[1]);
  fcntl(pipe_fd[0], F_SETFL, O_NONBLOCK);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    pollfd p{pipe_fd[0], POLLIN, 0};
    poll(&p, 1, 20);
    read_available(pipe_fd[0], result.output);
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.timed_out = true;
      break;
    }
  }
  read_available(pipe_fd[0], result.output);
  close(pipe_fd[0]);
  if (!result.timed_out && WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
  if (result.exit_status == kNotFound && result.output.find(kNotFoundTag) != std::string::npos)
    result.not_found = true;
  return result;
}

}  // namespace tierfs::jobs
