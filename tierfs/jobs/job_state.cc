// Job state files (JSON with nlohmann_json), the state directory's lock and
// the /proc readers behind them.
#include "tierfs/jobs/job_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace tierfs::jobs {

namespace {

nlohmann::json to_json(const JobState& s) {
  return nlohmann::json{{"job_id", s.job_id},
                        {"uid", s.uid},
                        {"gid", s.gid},
                        {"mountpoint", s.mountpoint},
                        {"size_bytes", s.size_bytes},
                        {"server_pid", s.server_pid},
                        {"server_start_ticks", s.server_start_ticks},
                        {"usage", s.usage}};
}

JobState from_json(const nlohmann::json& j) {
  JobState s;
  s.job_id = j.at("job_id").get<std::string>();
  s.uid = j.at("uid").get<uid_t>();
  s.gid = j.at("gid").get<gid_t>();
  s.mountpoint = j.at("mountpoint").get<std::string>();
  s.size_bytes = j.at("size_bytes").get<uint64_t>();
  s.server_pid = j.at("server_pid").get<pid_t>();
  s.server_start_ticks = j.at("server_start_ticks").get<uint64_t>();
  s.usage = j.at("usage").get<std::map<std::string, uint64_t>>();
  return s;
}

std::optional<JobState> read_state_file(const std::string& path) {
  // Not "no scratch" when the record is there but unreadable: a job's user is told why.
  if (access(path.c_str(), R_OK) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw std::runtime_error(fmt::format(
        "cannot read {}: {} (the job records' directory must be readable by the jobs' users)", path,
        strerror(errno)));
  }
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("{}: not a job state file: {}", path, e.what()));
  }
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_path(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      out.push_back(static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

}  // namespace

std::string job_file(const std::string& state_dir, const std::string& job_id,
                     const std::string& suffix) {
  return fmt::format("{}/job-{}.{}", state_dir, job_id, suffix);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot write {}: {}", tmp, strerror(errno)));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      unlink(tmp.c_str());
      throw std::runtime_error(fmt::format("cannot write {}: {}", tmp, strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  fsync(fd);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot rename {} to {}: {}", tmp, path, strerror(err)));
  }
}

void write_job_state(const std::string& state_dir, const JobState& state) {
  write_file_atomically(job_file(state_dir, state.job_id, "json"), to_json(state).dump(2) + "\n");
}

std::optional<JobState> read_job_state(const std::string& state_dir, const std::string& job_id) {
  return read_state_file(job_file(state_dir, job_id, "json"));
}

std::vector<JobState> list_job_states(const std::string& state_dir) {
  std::vector<JobState> out;
  DIR* dir = opendir(state_dir.c_str());
  if (!dir) return out;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("job-", 0) != 0 || name.size() < 10 ||
        name.compare(name.size() - 5, 5, ".json") != 0)
      continue;
    if (auto s = read_state_file(fmt::format("{}/{}", state_dir, name)))
      out.push_back(std::move(*s));
  }
  closedir(dir);
  return out;
}

StateLock::StateLock(const std::string& state_dir) {
  if (mkdir(state_dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error(fmt::format("cannot create {}: {}", state_dir, strerror(errno)));
  struct stat st {};
  if (lstat(state_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
      (st.st_mode & 022) != 0)
    throw std::runtime_error(fmt::format(
        "{}: the state directory must be a directory of this user, not writable by others",
        state_dir));
  const std::string path = state_dir + "/lock";
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path, strerror(errno)));
  while (flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    close(fd_);
    throw std::runtime_error(fmt::format("cannot lock {}: {}", path, strerror(err)));
  }
}

StateLock::~StateLock() {
  if (fd_ >= 0) close(fd_);  // closing releases the flock
}

std::optional<std::string> mount_type(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<std::string> found;
  while (std::getline(in, line)) {
    // id parent major:minor root MOUNTPOINT options [optional...] - TYPE source super
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint;
    fields >> id >> parent >> dev >> root >> mountpoint;
    if (unescape_mount_path(mountpoint) != path) continue;
    std::string field;
    while (fields >> field && field != "-") {
    }
    std::string type;
    fields >> type;
    found = type;  // the last mount on a path is the one on top
  }
  return found;
}

uint64_t process_start_ticks(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text;
  if (!std::getline(in, text)) return 0;
  // The command name (field 2) may hold spaces and parentheses: fields 3.. follow the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string state;
  fields >> state;
  if (state == "Z" || state == "X") return 0;
  std::string skip;
  for (int field = 4; field < 22; ++field) fields >> skip;
  uint64_t ticks = 0;
  fields >> ticks;
  return ticks;
}

}  // namespace tierfs::jobs
