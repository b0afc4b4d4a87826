// The backing file of a kernel-path file (see backing_file.h).
#include "tierfs/core/backing_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

namespace tierfs {

namespace {

constexpr uint64_t kPieceBytes = uint64_t{1} << 20;  // one read of a copy
// The unit read_data leaves out when it is all zeros: a page, and a block
// of the server path, whose discard (a copy's re-copy of a changed range)
// drops only the whole blocks inside the range and keeps its edges.
constexpr uint64_t kPageBytes = 4096;

// Whether SEEK_DATA may report pages never written as data: a huge-page
// tmpfs answers whole folios, and says so in st_blksize.
bool coarse_data(const struct stat& st) {
  return static_cast<uint64_t>(st.st_blksize) > kPageBytes;
}

// Calls run(a, b) for each run [a, b) of [off, end) that holds data in the
// file open on `fd`. 0, run's error or -errno.
template <typename Run>
int each_data_run(int fd, uint64_t off, uint64_t end, Run&& run) {
  for (uint64_t pos = off; pos < end;) {
    const off_t data = lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) return errno == ENXIO ? 0 : -errno;  // ENXIO: no data from pos on
    if (static_cast<uint64_t>(data) >= end) return 0;
    const off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return -errno;
    const uint64_t stop = std::min(static_cast<uint64_t>(hole), end);
    if (int err = run(static_cast<uint64_t>(data), stop)) return err;
    pos = stop;
  }
  return 0;
}

bool all_zeros(std::span<const char> bytes) {
  return bytes.empty() ||
         (bytes[0] == 0 && std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0);
}

// put() for each run of `bytes` (at file offset `at`) that is not a whole
// page of zeros at a page boundary of the file.
int put_nonzero(uint64_t at, std::span<const char> bytes, const BackingFile::PutData& put) {
  size_t start = 0;  // the run gathered so far: [start, i)
  size_t i = 0;
  while (i < bytes.size()) {
    const uint64_t to_boundary = kPageBytes - (at + i) % kPageBytes;
    const size_t n = std::min<size_t>(to_boundary, bytes.size() - i);
    if (n == kPageBytes && all_zeros(bytes.subspan(i, n))) {
      if (i > start)
        if (int err = put(at + start, bytes.subspan(start, i - start))) return err;
      start = i + n;
    }
    i += n;
  }
  return i > start ? put(at + start, bytes.subspan(start, i - start)) : 0;
}

// read_data on a descriptor whose stat is `st`.
int read_data_of(int fd, const struct stat& st, uint64_t off, uint64_t end,
                 std::vector<char>& buffer, const BackingFile::PutData& put) {
  const bool skip_zeros = coarse_data(st);
  buffer.resize(kPieceBytes);
  return each_data_run(fd, off, end, [&](uint64_t a, uint64_t b) {
    for (uint64_t pos = a; pos < b;) {
      // Pieces end at page boundaries, so a page of zeros is never cut in two.
      const uint64_t want = std::min(b, (pos + kPieceBytes) / kPageBytes * kPageBytes) - pos;
      const ssize_t got = pread(fd, buffer.data(), want, static_cast<off_t>(pos));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return -errno;
      if (got == 0) return 0;  // the file ends here (a truncate raced: recorded)
      const std::span<const char> piece(buffer.data(), static_cast<size_t>(got));
      if (int err = skip_zeros ? put_nonzero(pos, piece, put) : put(pos, piece)) return err;
      pos += static_cast<uint64_t>(got);
    }
    return 0;
  });
}

int pwrite_all(int fd, uint64_t at, std::span<const char> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return -ENOSPC;
    at += static_cast<uint64_t>(n);
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return 0;
}

}  // namespace

BackingFile::BackingFile(int fd, int dir_fd, std::string name, uint32_t tier)
    : fd_(fd), dir_fd_(dir_fd), name_(std::move(name)), tier_(tier) {
  if (!name_.empty() && fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

BackingFile::~BackingFile() {
  if (fd_ >= 0) close(fd_);
  if (created_fd_ >= 0) close(created_fd_);
}

void BackingFile::keep_created(int fd) {
  if (created_fd_ >= 0) close(created_fd_);
  created_fd_ = fd;
}

BackingFile::Fd BackingFile::take_created() {
  Fd fd(std::exchange(created_fd_, -1));
  if (removed_) fd = Fd(-1);
  return fd;
}

BackingFile::Fd::~Fd() {
  if (fd_ >= 0) close(fd_);
}

BackingFile::Fd& BackingFile::Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

BackingFile::Fd BackingFile::open() const {
  return open_as(O_RDWR);
}

BackingFile::Fd BackingFile::open_as(int access) const {
  if (fd_ >= 0) {
    // A file without a name: a descriptor of its own through /proc (the
    // seccomp filter has openat, not dup), so the caller may close it.
    const std::string self = "/proc/self/fd/" + std::to_string(fd_);
    return Fd(::open(self.c_str(), access | O_CLOEXEC));
  }
  if (removed_ || name_.empty()) {
    errno = ENOENT;
    return Fd(-1);
  }
  return Fd(openat(dir_fd_, name_.c_str(), access | O_CLOEXEC | O_NOFOLLOW));
}

// A lease taken and dropped at once: whether the kernel refused it because
// of another open file. A lease breaks when someone opens the file meanwhile,
// and the kernel then signals the holder (SIGIO), which the server ignores
// (Fs::open_backing_store).
std::optional<bool> BackingFile::lease_refused(int access, int lease) const {
  const Fd fd = open_as(access);
  if (fd.get() < 0) return errno == ENOENT ? std::optional(false) : std::nullopt;
  if (fcntl(fd.get(), F_SETLEASE, lease) == 0) {
    fcntl(fd.get(), F_SETLEASE, F_UNLCK);
    return false;
  }
  if (errno == EAGAIN) return true;
  return std::nullopt;
}

std::optional<bool> BackingFile::open_elsewhere() const {
  // Our descriptor is read-write: the lease wants it to be the only writer.
  return lease_refused(O_RDWR, F_WRLCK);
}

std::optional<bool> BackingFile::written_elsewhere() const {
  // A read lease is granted on a read-only descriptor while nobody writes.
  return lease_refused(O_RDONLY, F_RDLCK);
}

BackingFile::Facts BackingFile::facts() const {
  struct stat st {};
  Facts out;
  const int rc = fd_ >= 0   ? fstat(fd_, &st)
                 : removed_ ? -1
                            : fstatat(dir_fd_, name_.c_str(), &st, AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return out;
  out.size = static_cast<uint64_t>(st.st_size);
  out.allocated_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  out.atime_ns = st.st_atim.tv_sec * 1000000000LL + st.st_atim.tv_nsec;
  out.mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  out.ctime_ns = st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
  return out;
}

int64_t BackingFile::read(uint64_t off, uint64_t size, std::vector<char>& out) const {
  const Fd fd = open();
  if (fd.get() < 0) return -errno;
  out.resize(size);
  const ssize_t n = pread(fd.get(), out.data(), size, static_cast<off_t>(off));
  if (n < 0) return -errno;
  out.resize(static_cast<size_t>(n));
  return n;
}

int64_t BackingFile::write(uint64_t off, std::span<const iovec> in) const {
  if (in.size() > IOV_MAX) return -EINVAL;
  const Fd fd = open();
  if (fd.get() < 0) return -errno;
  const ssize_t n =
      pwritev(fd.get(), in.data(), static_cast<int>(in.size()), static_cast<off_t>(off));
  return n < 0 ? -errno : n;
}

int BackingFile::fallocate_range(int mode, uint64_t off, uint64_t len) const {
  const Fd fd = open();
  if (fd.get() < 0) return -errno;
  return fallocate(fd.get(), mode, static_cast<off_t>(off), static_cast<off_t>(len)) == 0 ? 0
                                                                                          : -errno;
}

int BackingFile::allocate(uint64_t off, uint64_t len) const {
  return fallocate_range(FALLOC_FL_KEEP_SIZE, off, len);
}

int BackingFile::punch_hole(uint64_t off, uint64_t len) const {
  return fallocate_range(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
}

int BackingFile::zero_range(uint64_t off, uint64_t len) const {
  if (int err = punch_hole(off, len)) return err;
  return allocate(off, len);
}

int BackingFile::set_size(uint64_t size) const {
  const Fd fd = open();
  if (fd.get() < 0) return -errno;
  return ftruncate(fd.get(), static_cast<off_t>(size)) == 0 ? 0 : -errno;
}

int64_t BackingFile::seek(uint64_t off, int whence) const {
  // SEEK_DATA and SEEK_HOLE answer from the file, not the descriptor.
  const Fd fd = open();
  if (fd.get() < 0) return -errno;
  const off_t at = lseek(fd.get(), static_cast<off_t>(off), whence);
  return at < 0 ? -errno : at;
}

int BackingFile::set_times(const timespec (&times)[2]) const {
  const Fd fd = open();
  if (fd.get() < 0) return -errno;
  return futimens(fd.get(), times) == 0 ? 0 : -errno;
}

int BackingFile::set_mtime(int64_t ns) const {
  return set_times({{0, UTIME_OMIT}, {ns / 1000000000, ns % 1000000000}});
}

int BackingFile::stamp_now(bool data) const {
  // Read-only: a writer's open would refuse the read lease that
  // written_elsewhere asks meanwhile. The owner may stamp through any descriptor.
  const Fd fd = open_as(O_RDONLY);
  if (fd.get() < 0) return -errno;
  // chown(-1, -1) changes nothing but ctime; utimes with both times omitted
  // would not even do that.
  if (!data)
    return fchown(fd.get(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)) == 0 ? 0 : -errno;
  const timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  return futimens(fd.get(), times) == 0 ? 0 : -errno;
}

int BackingFile::set_atime(int64_t ns) const {
  return set_times({{ns / 1000000000, ns % 1000000000}, {0, UTIME_OMIT}});
}

int BackingFile::grow_to(uint64_t size) {
  if (size <= grown_to_) return 0;
  // Never shorter: the copy may already hold more (a server-path file's
  // preallocation past its size); the switch sets the final size.
  if (facts().size < size)
    if (int err = set_size(size)) return err;
  grown_to_ = size;
  return 0;
}

int BackingFile::read_data(uint64_t off, uint64_t end, std::vector<char>& buffer,
                           const PutData& put) const {
  // One descriptor for the whole range: not one open per seek and read.
  const Fd fd = open();
  if (fd.get() < 0) return -errno;
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return -errno;
  return read_data_of(fd.get(), st, off, end, buffer, put);
}

int BackingFile::copy_data_from(const BackingFile& source, uint64_t off, uint64_t end) {
  // sendfile writes at the target's position: only a migration's copy,
  // which nothing else uses yet, is written this way.
  if (fd_ < 0) return -EBADF;  // a named file: not a copy being made
  const Fd from = source.open();
  if (from.get() < 0) return -errno;
  struct stat st {};
  if (fstat(from.get(), &st) != 0) return -errno;
  if (int err = grow_to(static_cast<uint64_t>(st.st_size))) return err;
  if (coarse_data(st)) {
    std::vector<char> buffer;
    return read_data_of(
        from.get(), st, off, end, buffer,
        [this](uint64_t at, std::span<const char> bytes) { return pwrite_all(fd_, at, bytes); });
  }
  return each_data_run(from.get(), off, end, [&](uint64_t a, uint64_t b) {
    if (lseek(fd_, static_cast<off_t>(a), SEEK_SET) < 0) return -errno;
    auto in = static_cast<off_t>(a);
    while (static_cast<uint64_t>(in) < b) {
      const ssize_t n = sendfile(fd_, from.get(), &in, b - static_cast<uint64_t>(in));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -errno;
      if (n == 0) break;  // the source ends here
    }
    return 0;
  });
}

int BackingFile::link(std::string name) {
  // The file was made with O_TMPFILE: a crash before this leaves nothing.
  const std::string self = "/proc/self/fd/" + std::to_string(fd_);
  if (linkat(AT_FDCWD, self.c_str(), dir_fd_, name.c_str(), AT_SYMLINK_FOLLOW) != 0) return -errno;
  name_ = std::move(name);
  // Found by its name from now on (see backing_file.h).
  close(fd_);
  fd_ = -1;
  return 0;
}

int BackingFile::rename(std::string name, uint32_t tier) {
  if (removed_ || name_.empty()) return -ENOENT;
  if (name != name_ && renameat(dir_fd_, name_.c_str(), dir_fd_, name.c_str()) != 0) return -errno;
  name_ = std::move(name);
  tier_ = tier;
  return 0;
}

void BackingFile::remove() {
  if (removed_) return;
  removed_ = true;
  // Unlinked, not emptied: its pages go back to the system with the last
  // reference, as a tmpfs file's do. What may still hold it is what must
  // still see its bytes: a mapping whose descriptor was closed (it sent its
  // RELEASE at the close), an open handle of a mount that is going away, a
  // read-only mapping after a move. Emptied, the first read 0 bytes and the
  // other two took SIGBUS.
  if (!name_.empty()) unlinkat(dir_fd_, name_.c_str(), 0);
}

}  // namespace tierfs
