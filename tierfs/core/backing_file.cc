// The backing file of a kernel-path file (see backing_file.h).
#include "tierfs/core/backing_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <string>
#include <utility>

namespace tierfs {

BackingFile::BackingFile(int fd, int dir_fd, std::string name, uint32_t tier)
    : fd_(fd), dir_fd_(dir_fd), name_(std::move(name)), tier_(tier) {}

BackingFile::~BackingFile() {
  if (fd_ >= 0) close(fd_);
}

BackingFile::Facts BackingFile::facts() const {
  struct stat st {};
  Facts out;
  if (fstat(fd_, &st) != 0) return out;
  out.size = static_cast<uint64_t>(st.st_size);
  out.allocated_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  out.atime_ns = st.st_atim.tv_sec * 1000000000LL + st.st_atim.tv_nsec;
  out.mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  out.ctime_ns = st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
  return out;
}

int64_t BackingFile::read(uint64_t off, uint64_t size, std::vector<char>& out) const {
  out.resize(size);
  const ssize_t n = pread(fd_, out.data(), size, static_cast<off_t>(off));
  if (n < 0) return -errno;
  out.resize(static_cast<size_t>(n));
  return n;
}

int64_t BackingFile::write(uint64_t off, std::span<const iovec> in) const {
  if (in.size() > IOV_MAX) return -EINVAL;
  const ssize_t n = pwritev(fd_, in.data(), static_cast<int>(in.size()), static_cast<off_t>(off));
  return n < 0 ? -errno : n;
}

int BackingFile::allocate(uint64_t off, uint64_t len) const {
  return fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), static_cast<off_t>(len)) == 0
             ? 0
             : -errno;
}

int BackingFile::punch_hole(uint64_t off, uint64_t len) const {
  return fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                   static_cast<off_t>(len)) == 0
             ? 0
             : -errno;
}

int BackingFile::zero_range(uint64_t off, uint64_t len) const {
  if (int err = punch_hole(off, len)) return err;
  return allocate(off, len);
}

int BackingFile::set_size(uint64_t size) const {
  return ftruncate(fd_, static_cast<off_t>(size)) == 0 ? 0 : -errno;
}

int64_t BackingFile::seek(uint64_t off, int whence) const {
  const off_t at = lseek(fd_, static_cast<off_t>(off), whence);
  return at < 0 ? -errno : at;
}

int BackingFile::set_mtime(int64_t ns) const {
  const timespec times[2] = {{0, UTIME_OMIT}, {ns / 1000000000, ns % 1000000000}};
  return futimens(fd_, times) == 0 ? 0 : -errno;
}

int BackingFile::set_atime(int64_t ns) const {
  const timespec times[2] = {{ns / 1000000000, ns % 1000000000}, {0, UTIME_OMIT}};
  return futimens(fd_, times) == 0 ? 0 : -errno;
}

int BackingFile::link(std::string name) {
  // The file was made with O_TMPFILE: a crash before this leaves nothing.
  const std::string self = "/proc/self/fd/" + std::to_string(fd_);
  if (linkat(AT_FDCWD, self.c_str(), dir_fd_, name.c_str(), AT_SYMLINK_FOLLOW) != 0) return -errno;
  name_ = std::move(name);
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
  if (!name_.empty()) unlinkat(dir_fd_, name_.c_str(), 0);
  // Its pages go back to the system now, not when the last descriptor closes.
  ftruncate(fd_, 0);
}

}  // namespace tierfs
