// The staging copier (see stage_copy.h): plan the entries into directories,
// files and symlinks, copy the files from a shared queue in worker threads,
// then give directories their modes and times (deepest first, so that
// writing into them does not change their mtime again).
#include "tierfs/jobs/stage_copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace tierfs::jobs {

namespace {

namespace fs = std::filesystem;

constexpr size_t kChunk = 1 << 20;  // FUSE's largest request: one chunk, one round trip
constexpr const char* kPartSuffix = ".tierfs-part";
constexpr const char* kPartTag = "user.tierfs.stage";

struct FileTask {
  size_t entry = 0;
  std::string source;
  std::string destination;
  struct stat st {};
};

struct Plan {
  std::vector<FileTask> files;
  struct Dir {
    size_t entry;
    std::string destination;
    struct stat st;
  };
  struct Link {
    size_t entry;
    std::string source, destination;
  };
  std::vector<Dir> dirs;
  std::vector<Link> links;
};

std::string errno_text(const std::string& what, int err) {
  return fmt::format("{}: {}", what, strerror(err));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string part_tag(const struct stat& st) {
  return fmt::format("{}:{}.{:09}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

// Feeds [begin, end) of fd into state, zeros for holes; writes the data to out_fd when >= 0.
// Returns the bytes written, or -errno; stops early (returning -EINTR) when asked.
int64_t pump(int fd, int out_fd, uint64_t begin, uint64_t end, XXH3_state_t* state,
             std::vector<char>& buffer, std::atomic<uint64_t>& progress,
             const std::function<bool()>& should_stop) {
  static const std::vector<char> zeros(kChunk, 0);
  int64_t written = 0;
  uint64_t off = begin;
  while (off < end) {
    if (should_stop && should_stop()) return -EINTR;
    off_t data = lseek(fd, static_cast<off_t>(off), SEEK_DATA);
    uint64_t data_at = data < 0 ? end : std::min<uint64_t>(static_cast<uint64_t>(data), end);
    if (data < 0 && errno != ENXIO) data_at = off;  // no SEEK_DATA here: all data
    while (off < data_at) {                         // a hole: zeros for the hash, nothing to write
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, data_at - off));
      XXH3_64bits_update(state, zeros.data(), n);
      off += n;
      progress += n;
    }
    if (off >= end) break;
    off_t hole = lseek(fd, static_cast<off_t>(off), SEEK_HOLE);
    const uint64_t hole_at = hole < 0 ? end : std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    while (off < hole_at) {
      if (should_stop && should_stop()) return -EINTR;
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, hole_at - off));
      const ssize_t n = pread(fd, buffer.data(), want, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -errno;
      if (n == 0) return -EIO;  // the source shrank under us
      XXH3_64bits_update(state, buffer.data(), static_cast<size_t>(n));
      if (out_fd >= 0) {
        size_t done = 0;
        while (done < static_cast<size_t>(n)) {
          const ssize_t w = pwrite(out_fd, buffer.data() + done, static_cast<size_t>(n) - done,
                                   static_cast<off_t>(off + done));
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return -errno;
          done += static_cast<size_t>(w);
        }
        written += n;
      }
      off += static_cast<uint64_t>(n);
      progress += static_cast<uint64_t>(n);
    }
  }
  return written;
}

void plan_entry(size_t index, const StageEntry& entry, Plan& plan, StageEntryResult& result) {
  struct stat st {};
  if (lstat(entry.source.c_str(), &st) != 0) {
    result.errors.push_back(errno_text(entry.source, errno));
    return;
  }
  auto add = [&](const std::string& src, const std::string& dst, const struct stat& s) {
    if (S_ISREG(s.st_mode)) {
      plan.files.push_back(FileTask{index, src, dst, s});
      result.files++;
      result.bytes += static_cast<uint64_t>(s.st_size);
    } else if (S_ISDIR(s.st_mode)) {
      plan.dirs.push_back(Plan::Dir{index, dst, s});
    } else if (S_ISLNK(s.st_mode)) {
      plan.links.push_back(Plan::Link{index, src, dst});
    } else {
      result.errors.push_back(fmt::format("{}: not a file, directory or symlink: left out", src));
    }
  };
  // Like mkdir -p for the destination's parent: stage-out targets often do not exist yet.
  std::error_code mk;
  const fs::path parent = fs::path(entry.destination).parent_path();
  if (!parent.empty()) fs::create_directories(parent, mk);
  if (mk) {
    result.errors.push_back(fmt::format("{}: {}", entry.destination, mk.message()));
    return;
  }
  add(entry.source, entry.destination, st);
  if (!S_ISDIR(st.st_mode)) return;
  if (entry.xxh3)
    result.errors.push_back(fmt::format("{}: xxh3 is for files, not directories", entry.source));
  std::error_code ec;
  for (fs::recursive_directory_iterator it(entry.source, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string src = it->path().string();
    struct stat s {};
    if (lstat(src.c_str(), &s) != 0) {
      result.errors.push_back(errno_text(src, errno));
      continue;
    }
    add(src, entry.destination + src.substr(entry.source.size()), s);
  }
  if (ec) result.errors.push_back(fmt::format("{}: {}", entry.source, ec.message()));
}

void set_attributes(int fd, const std::string& path, const struct stat& st) {
  if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)
    throw std::runtime_error(errno_text(path + ": chown", errno));
  if (fchmod(fd, st.st_mode & 07777) != 0)
    throw std::runtime_error(errno_text(path + ": chmod", errno));
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (futimens(fd, times) != 0) throw std::runtime_error(errno_text(path + ": utimes", errno));
}

enum class FileOutcome { copied, resumed, skipped, stopped };

// Copies one file through DEST.tierfs-part. Throws std::runtime_error with one line.
FileOutcome copy_file(const FileTask& task, const StageEntry& entry, const StageOptions& options,
                      std::vector<char>& buffer, std::atomic<uint64_t>& progress,
                      uint64_t& bytes_written, uint64_t& hash_out) {
  const uint64_t size = static_cast<uint64_t>(task.st.st_size);
  struct stat dst {};
  if (!entry.xxh3 && stat(task.destination.c_str(), &dst) == 0 && S_ISREG(dst.st_mode) &&
      static_cast<uint64_t>(dst.st_size) == size && dst.st_mtim.tv_sec == task.st.st_mtim.tv_sec &&
      dst.st_mtim.tv_nsec == task.st.st_mtim.tv_nsec) {
    progress += size;
    return FileOutcome::skipped;
  }
  Fd in(open(task.source.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (in.get() < 0) throw std::runtime_error(errno_text(task.source, errno));
  const std::string part = task.destination + kPartSuffix;
  Fd out(open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out.get() < 0) throw std::runtime_error(errno_text(part, errno));

  // Continue a part of an interrupted run only when it was made from this very source.
  const std::string tag = part_tag(task.st);
  char found[128] = {};
  const ssize_t tag_len = fgetxattr(out.get(), kPartTag, found, sizeof found - 1);
  struct stat part_st {};
  fstat(out.get(), &part_st);
  uint64_t resume_at = 0;
  if (tag_len > 0 && std::string(found, static_cast<size_t>(tag_len)) == tag)
    resume_at = std::min<uint64_t>(static_cast<uint64_t>(part_st.st_size), size) / kChunk * kChunk;
  if (resume_at == 0) {
    if (ftruncate(out.get(), 0) != 0) throw std::runtime_error(errno_text(part, errno));
    // Without user xattrs on the destination, an interrupted file starts over next time.
    fsetxattr(out.get(), kPartTag, tag.data(), tag.size(), 0);
  }

  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  // The kept prefix is hashed from the source, so the hash covers every byte.
  int64_t rc = pump(in.get(), -1, 0, resume_at, state, buffer, progress, options.should_stop);
  if (rc >= 0)
    rc = pump(in.get(), out.get(), resume_at, size, state, buffer, progress, options.should_stop);
  const uint64_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  if (rc == -EINTR) return FileOutcome::stopped;
  if (rc < 0)
    throw std::runtime_error(errno_text(task.source + " -> " + part, static_cast<int>(-rc)));
  bytes_written += static_cast<uint64_t>(rc);
  if (ftruncate(out.get(), static_cast<off_t>(size)) != 0)  // a trailing hole stays a hole
    throw std::runtime_error(errno_text(part, errno));
  hash_out = hash;
  if (entry.xxh3 && *entry.xxh3 != hash) {
    unlink(part.c_str());
    throw std::runtime_error(fmt::format("{}: xxh3 is {}, the manifest says {}", task.source,
                                         xxh3_hex(hash), xxh3_hex(*entry.xxh3)));
  }
  if (options.verify) {
    const uint64_t copied = file_xxh3(part);
    if (copied != hash) {
      unlink(part.c_str());
      throw std::runtime_error(fmt::format("{}: the copy's xxh3 {} differs from the source's {}",
                                           task.destination, xxh3_hex(copied), xxh3_hex(hash)));
    }
  }
  fremovexattr(out.get(), kPartTag);
  set_attributes(out.get(), task.destination, task.st);
  if (rename(part.c_str(), task.destination.c_str()) != 0)
    throw std::runtime_error(errno_text(part + " -> " + task.destination, errno));
  return resume_at > 0 ? FileOutcome::resumed : FileOutcome::copied;
}

void copy_link(const std::string& src, const std::string& dst) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(src, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: {}", src, ec.message()));
  unlink(dst.c_str());
  if (symlink(target.c_str(), dst.c_str()) != 0) throw std::runtime_error(errno_text(dst, errno));
  struct stat st {};
  if (lstat(src.c_str(), &st) == 0) {
    if (geteuid() == 0) lchown(dst.c_str(), st.st_uid, st.st_gid);
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    utimensat(AT_FDCWD, dst.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
}

}  // namespace

uint64_t file_xxh3(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw std::runtime_error(errno_text(path, errno));
  struct stat st {};
  fstat(fd.get(), &st);
  std::vector<char> buffer(kChunk);
  std::atomic<uint64_t> ignored{0};
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  const int64_t rc =
      pump(fd.get(), -1, 0, static_cast<uint64_t>(st.st_size), state, buffer, ignored, nullptr);
  const uint64_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  if (rc < 0) throw std::runtime_error(errno_text(path, static_cast<int>(-rc)));
  return hash;
}

bool StageReport::ok() const {
  if (interrupted) return false;
  for (const StageEntryResult& e : entries)
    if (!e.errors.empty()) return false;
  return true;
}

nlohmann::json StageReport::to_json() const {
  nlohmann::json j{{"direction", direction},     {"ok", ok()},
                   {"interrupted", interrupted}, {"threads", threads},
                   {"seconds", seconds},         {"entries", nlohmann::json::array()}};
  uint64_t bytes = 0, written = 0;
  for (const StageEntryResult& e : entries) {
    nlohmann::json ej{{"source", e.source},
                      {"destination", e.destination},
                      {"files", e.files},
                      {"bytes", e.bytes},
                      {"files_copied", e.files_copied},
                      {"files_resumed", e.files_resumed},
                      {"files_skipped", e.files_skipped},
                      {"bytes_written", e.bytes_written},
                      {"errors", e.errors}};
    if (!e.xxh3.empty()) ej["xxh3"] = e.xxh3;
    j["entries"].push_back(std::move(ej));
    bytes += e.bytes;
    written += e.bytes_written;
  }
  j["bytes"] = bytes;
  j["bytes_written"] = written;
  j["bytes_per_second"] =
      seconds > 0 ? static_cast<uint64_t>(static_cast<double>(bytes) / seconds) : 0;
  return j;
}

StageReport run_stage(const std::vector<StageEntry>& entries, const std::string& direction,
                      const StageOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  StageReport report;
  report.direction = direction;
  report.threads =
      options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  Plan plan;
  for (size_t i = 0; i < entries.size(); ++i) {
    report.entries.push_back(StageEntryResult{entries[i].source, entries[i].destination});
    plan_entry(i, entries[i], plan, report.entries.back());
  }
  std::mutex mutex;  // guards report.entries from the workers
  auto fail = [&](size_t entry, const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex);
    report.entries[entry].errors.push_back(line);
  };
  // Directories exist, writable by us, before any file goes in; modes come last.
  for (const Plan::Dir& d : plan.dirs)
    if (mkdir(d.destination.c_str(), 0700) != 0 && errno != EEXIST)
      fail(d.entry, errno_text(d.destination, errno));

  uint64_t total = 0;
  for (const FileTask& f : plan.files) total += static_cast<uint64_t>(f.st.st_size);
  std::atomic<uint64_t> progress{0};
  std::atomic<size_t> next{0};
  std::atomic<bool> stopped{false};
  std::vector<std::thread> workers;
  const unsigned n_workers =
      std::min<size_t>(report.threads, std::max<size_t>(1, plan.files.size()));
  for (unsigned w = 0; w < n_workers; ++w)
    workers.emplace_back([&] {
      std::vector<char> buffer(kChunk);
      for (size_t i = next++; i < plan.files.size() && !stopped; i = next++) {
        const FileTask& task = plan.files[i];
        uint64_t written = 0, hash = 0;
        try {
          const FileOutcome outcome =
              copy_file(task, entries[task.entry], options, buffer, progress, written, hash);
          std::lock_guard<std::mutex> lock(mutex);
          StageEntryResult& r = report.entries[task.entry];
          r.bytes_written += written;
          if (outcome == FileOutcome::stopped) stopped = true;
          if (outcome == FileOutcome::copied) r.files_copied++;
          if (outcome == FileOutcome::resumed) r.files_resumed++;
          if (outcome == FileOutcome::skipped) r.files_skipped++;
          if (task.source == entries[task.entry].source && outcome != FileOutcome::skipped &&
              outcome != FileOutcome::stopped)
            r.xxh3 = xxh3_hex(hash);
        } catch (const std::exception& e) {
          fail(task.entry, e.what());
        }
      }
    });
  std::mutex tick_mutex;
  std::condition_variable tick;
  bool done = false;
  std::thread ticker;
  if (options.progress)
    ticker = std::thread([&] {
      std::unique_lock<std::mutex> lock(tick_mutex);
      while (!tick.wait_for(lock, std::chrono::milliseconds(200), [&] { return done; }))
        options.progress(progress.load(), total);
    });
  for (std::thread& t : workers) t.join();
  {
    std::lock_guard<std::mutex> lock(tick_mutex);
    done = true;
  }
  tick.notify_all();
  if (ticker.joinable()) ticker.join();
  if (options.progress) options.progress(progress.load(), total);
  report.interrupted = stopped;

  if (!stopped) {
    for (const Plan::Link& l : plan.links) {
      try {
        copy_link(l.source, l.destination);
      } catch (const std::exception& e) {
        fail(l.entry, e.what());
      }
    }
    // Deepest first: setting a parent's mtime before its children are done would not stick.
    for (auto it = plan.dirs.rbegin(); it != plan.dirs.rend(); ++it) {
      Fd fd(open(it->destination.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      try {
        if (fd.get() < 0) throw std::runtime_error(errno_text(it->destination, errno));
        set_attributes(fd.get(), it->destination, it->st);
      } catch (const std::exception& e) {
        fail(it->entry, e.what());
      }
    }
  }
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace tierfs::jobs
