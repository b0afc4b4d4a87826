// Trusted opening and exclusive locking of region backing objects. The path
// is walked one component at a time from "/" with O_PATH|O_NOFOLLOW, so a
// symlink is seen before it is followed and followed only when the rules in
// region_trust.h say nobody else can have put it there.
#include "numa/region_trust.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace tierfs::numa {
namespace {

// Linux's own limit on links followed in one lookup.
constexpr int kMaxSymlinks = 40;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

[[noreturn]] void refuse(const std::string& path, const std::string& rule) {
  throw std::runtime_error(fmt::format("{}: {}", path, rule));
}

bool trusted_owner(uid_t uid) {
  return uid == 0 || uid == geteuid();
}
bool group_or_others_write(const struct stat& st) {
  return (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
}
std::string mode_text(const struct stat& st) {
  return fmt::format("{:04o}", st.st_mode & 07777);
}

std::deque<std::string> components(const std::string& path) {
  std::deque<std::string> out;
  std::stringstream in(path);
  std::string part;
  while (std::getline(in, part, '/'))
    if (!part.empty() && part != ".") out.push_back(part);
  return out;
}

struct Resolved {
  Fd dir;                // O_PATH descriptor of the directory holding the last component
  std::string dir_path;  // that directory as walked, for messages
  std::string name;      // the last component (never a symlink once resolved)
  bool exists = false;
  struct stat st {};  // the last component, when it exists
};

std::string joined(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

// A symlink is safe to follow when nobody but root and the mounter can have
// created or replaced it in its directory.
bool symlink_trusted(int dir_fd, const struct stat& link) {
  struct stat dir {};
  if (fstat(dir_fd, &dir) != 0) return false;
  if (!trusted_owner(dir.st_uid)) return false;
  if (!group_or_others_write(dir)) return true;
  return (dir.st_mode & S_ISVTX) != 0 && trusted_owner(link.st_uid);
}

Resolved resolve(const std::string& path) {
  if (path.empty() || path.front() != '/') refuse(path, "not an absolute path");
  std::deque<std::string> todo = components(path);
  if (todo.empty()) refuse(path, "names a directory");
  Resolved r;
  r.dir = Fd(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  r.dir_path = "/";
  int links = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.front());
    todo.pop_front();
    const std::string here = joined(r.dir_path, name);
    if (name == "..") {
      Fd up(openat(r.dir.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (up.get() < 0) refuse(here, std::strerror(errno));
      r.dir = std::move(up);
      const auto slash = r.dir_path.rfind('/');
      r.dir_path = slash == 0 || slash == std::string::npos ? "/" : r.dir_path.substr(0, slash);
      if (todo.empty()) refuse(path, "names a directory");
      continue;
    }
    struct stat st {};
    if (fstatat(r.dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT && todo.empty()) {
        r.name = std::move(name);
        return r;
      }
      if (errno == ENOENT) refuse(here, "no such directory");
      refuse(here, std::strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      if (!symlink_trusted(r.dir.get(), st))
        refuse(here,
               "is a symlink in a directory that other users can write; tierfs follows no "
               "link another user may have planted (name the target instead)");
      if (++links > kMaxSymlinks) refuse(path, "too many levels of symbolic links");
      std::string target(PATH_MAX, '\0');
      const ssize_t n = readlinkat(r.dir.get(), name.c_str(), target.data(), target.size());
      if (n < 0) refuse(here, fmt::format("cannot read the link: {}", std::strerror(errno)));
      target.resize(static_cast<size_t>(n));
      std::deque<std::string> next = components(target);
      if (next.empty() && todo.empty()) refuse(path, "names a directory");
      for (auto it = next.rbegin(); it != next.rend(); ++it) todo.push_front(*it);
      if (target.front() == '/') {
        r.dir = Fd(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
        r.dir_path = "/";
      }
      continue;
    }
    if (todo.empty()) {
      r.name = std::move(name);
      r.exists = true;
      r.st = st;
      return r;
    }
    if (!S_ISDIR(st.st_mode)) refuse(here, "not a directory");
    Fd next(openat(r.dir.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) refuse(here, std::strerror(errno));
    r.dir = std::move(next);
    r.dir_path = here;
  }
  refuse(path, "names a directory");
}

void check_object(const std::string& path, const struct stat& st, BackingKind kind) {
  if (kind == BackingKind::char_device) {
    if (!S_ISCHR(st.st_mode)) refuse(path, "not a character device");
  } else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    refuse(path, "not a regular file or block device");
  }
  if (!trusted_owner(st.st_uid))
    refuse(path, fmt::format("is owned by uid {}, not by root or the mounting user (uid {}); "
                             "another user could read and change the mount's files through it",
                             st.st_uid, geteuid()));
  if (S_ISREG(st.st_mode) && group_or_others_write(st))
    refuse(path, fmt::format("has mode {}; a region file must not be writable by group or others",
                             mode_text(st)));
  if (!S_ISREG(st.st_mode) && (st.st_mode & S_IWOTH) != 0)
    refuse(path, fmt::format("has mode {}; a region device must not be writable by others",
                             mode_text(st)));
}

void check_create_dir(const Resolved& r) {
  struct stat dir {};
  if (fstat(r.dir.get(), &dir) != 0) refuse(r.dir_path, std::strerror(errno));
  if (!trusted_owner(dir.st_uid))
    refuse(r.dir_path,
           fmt::format("directory is owned by uid {}; tierfs creates region files only in "
                       "directories owned by root or the mounting user",
                       dir.st_uid));
  if (group_or_others_write(dir) && (dir.st_mode & S_ISVTX) == 0)
    refuse(r.dir_path,
           fmt::format("directory has mode {}: writable by group or others and not sticky, so "
                       "another user could replace the region file",
                       mode_text(dir)));
}

// Major:minor in /proc/self/mountinfo's third field, decimal.
std::string mount_point_of(dev_t device) {
  std::ifstream in("/proc/self/mountinfo");
  const std::string wanted = fmt::format("{}:{}", major(device), minor(device));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (dev == wanted) return point;
  }
  return "";
}

std::string busy_reason(dev_t device) {
  const std::string point = mount_point_of(device);
  if (!point.empty())
    return fmt::format(
        "block device is in use: mounted on {}; tierfs would destroy that file system", point);
  return "block device is in use (held exclusively by another mount, a file system, a device "
         "mapper or another program)";
}

// The pid of whoever holds an flock on the inode, from /proc/locks; empty when none is listed.
std::string lock_holder_pid(const struct stat& st) {
  std::ifstream in("/proc/locks");
  const std::string wanted =
      fmt::format("{:02x}:{:02x}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, type, advisory, access, pid, inode;
    fields >> id >> type >> advisory >> access >> pid >> inode;
    if (type == "FLOCK" && inode == wanted) return pid;
  }
  return "";
}

// "pid N (command line)" of whoever holds an flock on the inode.
std::string lock_holder(const struct stat& st) {
  const std::string pid = lock_holder_pid(st);
  if (!pid.empty()) {
    std::ifstream cmdline_file("/proc/" + pid + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)),
                        std::istreambuf_iterator<char>());
    for (char& c : cmdline)
      if (c == '\0') c = ' ';
    while (!cmdline.empty() && cmdline.back() == ' ') cmdline.pop_back();
    if (cmdline.size() > 200) cmdline = cmdline.substr(0, 200) + "...";
    return fmt::format("pid {} ({})", pid, cmdline);
  }
  return "another process";
}

// How long a mount waits for a region's holder to let go: a server that was
// just unmounted keeps its regions until it has written its state (umount
// returns before that), so `umount; mount` would otherwise fail under load.
constexpr auto kHolderWait = std::chrono::seconds(10);

void take_lock(int fd, const std::string& path, bool same_process_ok, bool wait) {
  const auto start = std::chrono::steady_clock::now();
  std::string holder;
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    const int err = errno;
    struct stat st {};
    if (err != EWOULDBLOCK || fstat(fd, &st) != 0)
      refuse(path, fmt::format("cannot lock: {}", std::strerror(err)));
    // Another tier of this mount over the same file or device: validation
    // keeps their byte ranges apart (tiers carved with offsets), no conflict.
    if (same_process_ok && lock_holder_pid(st) == std::to_string(getpid())) return;
    holder = lock_holder(st);
    if (!wait) refuse(path, fmt::format("in use by another mount: held by {}", holder));
    if (std::chrono::steady_clock::now() - start >= kHolderWait)
      refuse(path, fmt::format("in use by another mount: held by {} (waited {} s for it to end)",
                               holder, kHolderWait.count()));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!holder.empty()) {
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    std::fprintf(stderr, "tierfs: %s: waited %.1f s for %s to release it\n", path.c_str(),
                 static_cast<double>(waited.count()) / 1000, holder.c_str());
  }
}

// Whether the file system takes a file of `bytes`, tried on an unnamed file.
// A path that does not exist yet: refused unless it is a file region with
// create = true in a directory where tierfs may create it.
void check_may_create(const Resolved& r, const std::string& path, BackingKind kind, bool create) {
  if (!create || kind != BackingKind::file_or_block)
    refuse(path, kind == BackingKind::char_device
                     ? "no such device"
                     : "no such file (set create = true to create it)");
  check_create_dir(r);
}

void check_file_size_fits(const Resolved& r, const std::string& path, uint64_t bytes) {
  if (bytes > static_cast<uint64_t>(std::numeric_limits<off_t>::max()))
    refuse(path, fmt::format("{} bytes is more than any file can hold", bytes));
  Fd probe(openat(r.dir.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (probe.get() < 0) return;  // no O_TMPFILE here: the mount finds out when it sizes the file
  if (ftruncate(probe.get(), static_cast<off_t>(bytes)) != 0)
    refuse(path, fmt::format("the file system refuses a file of {} bytes: {}", bytes,
                             std::strerror(errno)));
}

}  // namespace

TrustedOpen open_trusted(const std::string& path, BackingKind kind, bool create) {
  Resolved r = resolve(path);
  TrustedOpen out;
  if (!r.exists) {
    check_may_create(r, path, kind, create);
    Fd fd(openat(r.dir.get(), r.name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0600));
    if (fd.get() < 0) refuse(path, fmt::format("cannot create: {}", std::strerror(errno)));
    out.fd = fd.release();
    out.created = true;
    return out;
  }
  check_object(path, r.st, kind);
  out.block = S_ISBLK(r.st.st_mode);
  // O_EXCL on a block device is the kernel's exclusive claim; without O_CREAT
  // it means nothing for other files.
  const int flags = O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | (out.block ? O_EXCL : 0);
  Fd fd(openat(r.dir.get(), r.name.c_str(), flags));
  if (fd.get() < 0) {
    if (errno == EBUSY && out.block) refuse(path, busy_reason(r.st.st_rdev));
    refuse(path, fmt::format("cannot open: {}", std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || st.st_dev != r.st.st_dev || st.st_ino != r.st.st_ino)
    refuse(path, "was replaced while it was being opened");
  out.fd = fd.release();
  return out;
}

TrustedCheck check_trusted(const std::string& path, BackingKind kind, bool create,
                           uint64_t needed_bytes) {
  Resolved r = resolve(path);
  TrustedCheck out;
  if (!r.exists) {
    check_may_create(r, path, kind, create);
    if (needed_bytes != 0) check_file_size_fits(r, path, needed_bytes);
    return out;
  }
  check_object(path, r.st, kind);
  out.exists = true;
  out.block = S_ISBLK(r.st.st_mode);
  Fd fd(openat(r.dir.get(), r.name.c_str(),
               O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | (out.block ? O_EXCL : 0)));
  if (fd.get() < 0) {
    if (errno == EBUSY && out.block) refuse(path, busy_reason(r.st.st_rdev));
    refuse(path, fmt::format("cannot open: {}", std::strerror(errno)));
  }
  if (!out.block) probe_exclusive(fd.get(), path);
  if (out.block) {
    if (ioctl(fd.get(), BLKGETSIZE64, &out.size_bytes) != 0)
      refuse(path, fmt::format("cannot read the block device size: {}", std::strerror(errno)));
  } else {
    out.size_bytes = static_cast<uint64_t>(r.st.st_size);
    if (S_ISREG(r.st.st_mode)) out.signature = read_file_signature(fd.get(), path);
    if (create && S_ISREG(r.st.st_mode) && needed_bytes > out.size_bytes)
      check_file_size_fits(r, path, needed_bytes);
  }
  return out;
}

void lock_exclusive(int fd, const std::string& path) {
  take_lock(fd, path, false, false);
}

void lock_region(int fd, const std::string& path) {
  take_lock(fd, path, true, true);
}

void probe_exclusive(int fd, const std::string& path) {
  take_lock(fd, path, false, true);
  flock(fd, LOCK_UN);
}

TrustedDir open_trusted_dir(const std::string& path, bool create) {
  if (path.empty() || path.front() != '/') refuse(path, "not an absolute path");
  TrustedDir out;
  // Each prefix in turn, so that a missing one is made in a parent already
  // walked under the rules (resolve refuses a missing middle component).
  std::string prefix;
  for (const std::string& part : components(path)) {
    prefix += "/" + part;
    Resolved r = resolve(prefix);
    if (r.exists) continue;
    if (!create) refuse(prefix, "no such directory");
    check_create_dir(r);
    // Only the state directory itself is private. A parent made here is
    // shared: /run/tierfs also holds the job records that `tierfs job env`
    // reads as the job's user, and a parent made 0700 by the node's first
    // mount hid them from every job.
    const bool leaf = prefix.size() >= path.size() - (path.back() == '/' ? 1 : 0);
    if (mkdirat(r.dir.get(), r.name.c_str(), leaf ? 0700 : 0755) != 0 && errno != EEXIST)
      refuse(prefix, fmt::format("cannot create the directory: {}", std::strerror(errno)));
    // A umask such as 077 would make the parent private after all.
    if (!leaf && fchmodat(r.dir.get(), r.name.c_str(), 0755, 0) != 0)
      refuse(prefix, fmt::format("cannot set mode 0755: {}", std::strerror(errno)));
    out.created = leaf;
  }
  Resolved r = resolve(path);
  if (!r.exists) refuse(path, "no such directory");
  Fd fd(openat(r.dir.get(), r.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0)
    refuse(path, fmt::format("cannot open the directory: {}", std::strerror(errno)));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) refuse(path, std::strerror(errno));
  if (st.st_uid != geteuid())
    refuse(path, fmt::format("is owned by uid {}, not by the mounting user (uid {}); a mount's "
                             "state directory must be its own",
                             st.st_uid, geteuid()));
  if ((st.st_mode & 077) != 0)
    refuse(path, fmt::format("has mode {}; a mount's state directory must be 0700 (it names the "
                             "mount's shared memory)",
                             mode_text(st)));
  out.fd = fd.release();
  return out;
}

bool check_trusted_dir(const std::string& path) {
  if (path.empty() || path.front() != '/') refuse(path, "not an absolute path");
  std::string prefix;
  for (const std::string& part : components(path)) {
    prefix += "/" + part;
    Resolved r = resolve(prefix);
    if (r.exists) {
      if (!S_ISDIR(r.st.st_mode)) refuse(prefix, "not a directory");
      continue;
    }
    check_create_dir(r);
    return false;
  }
  close(open_trusted_dir(path, false).fd);
  return true;
}

std::string unpredictable_shm_name() {
  unsigned char random[16];
  size_t done = 0;
  while (done < sizeof random) {
    const ssize_t n = getrandom(random + done, sizeof random - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(fmt::format("getrandom: {}", std::strerror(errno)));
    done += static_cast<size_t>(n);
  }
  std::string name = fmt::format("/tierfs.{}.", geteuid());
  for (unsigned char byte : random) name += fmt::format("{:02x}", byte);
  return name;
}

void check_private_shm(int fd, const std::string& name) {
  struct stat st {};
  if (fstat(fd, &st) != 0) refuse(name, fmt::format("cannot stat: {}", std::strerror(errno)));
  if (st.st_uid != geteuid() || (st.st_mode & 077) != 0)
    refuse(name, fmt::format("shared-memory object is owned by uid {} with mode {}, not by uid {} "
                             "with 0600 (private)",
                             st.st_uid, mode_text(st), geteuid()));
}

bool is_unpredictable_shm_name(const std::string& name) {
  const std::string prefix = fmt::format("/tierfs.{}.", geteuid());
  if (!name.starts_with(prefix) || name.size() != prefix.size() + 32) return false;
  for (size_t i = prefix.size(); i < name.size(); ++i)
    if (std::isxdigit(static_cast<unsigned char>(name[i])) == 0 ||
        std::isupper(static_cast<unsigned char>(name[i])) != 0)
      return false;
  return true;
}

}  // namespace tierfs::numa
