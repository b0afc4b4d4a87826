// BackingFile: the bytes of one kernel-path file (tierfs/core/data_path.h).
// They live in a file of the tier's private tmpfs (tierfs/server/
// backing_store.h), whose shared memory policy places its pages on the tier's
// NUMA nodes; the kernel reads, writes and maps it directly through FUSE
// passthrough, so the size, the blocks and the holes are the backing file's,
// never a copy the server keeps. FileData forwards to it (the one place a
// file's data path shows), so the FUSE operations stay the same for both paths.
// Not thread-safe: the caller holds the inode's lock, as for FileData.
//
// A named backing file holds no descriptor in the server: each step opens
// one by name and closes it (a file system of many files would otherwise
// need a descriptor per file, and ran out at RLIMIT_NOFILE). The kernel
// keeps its own reference for the passthrough handles (the backing id), and
// the shared memory policy belongs to the tmpfs inode, not to a descriptor.
// Only a file without a name (open_unnamed, until link) keeps the one it
// was made with: it has no other way back.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tierfs {

class BackingFile {
 public:
  // Takes `fd` (open read-write on the tier's tmpfs) and the name of the
  // file in the directory `dir_fd` (not owned); closes `fd` at once when the
  // file has a name, else at link() or with the object.
  BackingFile(int fd, int dir_fd, std::string name, uint32_t tier);
  ~BackingFile();
  BackingFile(const BackingFile&) = delete;
  BackingFile& operator=(const BackingFile&) = delete;

  // A read-write descriptor of the backing file for one step, closed with
  // the object; get() < 0 (errno set) when it cannot be opened (removed).
  class Fd {
   public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd();
    Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

   private:
    int fd_;
  };
  Fd open() const;
  // The descriptor a new file was made with (BackingStore::open_file for a
  // create), kept for the passthrough registration of the open that answers
  // the same request instead of a second open by name: taken once (-1 after
  // that, or once the file is removed), else closed with the object.
  void keep_created(int fd);
  Fd take_created();
  uint32_t tier() const { return tier_; }
  const std::string& name() const { return name_; }

  // st_size and st_blocks (bytes) of the backing file, its atime, mtime and ctime.
  struct Facts {
    uint64_t size = 0;
    uint64_t allocated_bytes = 0;
    int64_t atime_ns = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
  };
  Facts facts() const;

  // The server's own reads and writes (a FUSE READ/WRITE on a handle opened
  // without passthrough, a migration's copy): pread/pwrite on the file, so a
  // full tmpfs is ENOSPC or a short count at the call. Byte count or -errno.
  int64_t read(uint64_t off, uint64_t size, std::vector<char>& out) const;
  int64_t write(uint64_t off, std::span<const iovec> in) const;
  // fallocate without changing the size; -errno (ENOSPC: nothing kept).
  int allocate(uint64_t off, uint64_t len) const;
  int punch_hole(uint64_t off, uint64_t len) const;
  // tmpfs has no FALLOC_FL_ZERO_RANGE: a punched hole, allocated again.
  int zero_range(uint64_t off, uint64_t len) const;
  int set_size(uint64_t size) const;  // ftruncate
  // Makes the file at least `size` bytes long, never shorter: a migration's
  // copy, before it is written, so that a huge-page tmpfs (huge=within_size,
  // which gives huge folios only to ranges the size covers) gives them to
  // what is written up to there. A copy asks before every chunk: asking
  // again for no more than last time makes no system call. 0 or -errno.
  int grow_to(uint64_t size);
  int64_t seek(uint64_t off, int whence) const;
  int set_mtime(int64_t ns) const;
  int set_atime(int64_t ns) const;
  // Moves mtime and ctime (data) or ctime alone to the kernel's now: the
  // clock that stamps the kernel's own writes to this file (see
  // FileData::stamp_now). 0 or -errno.
  int stamp_now(bool data) const;
  // The data of [off, end), run by run, for a migration's copy: put(at,
  // bytes) for each piece (at most 1 MiB, read into `buffer`), holes left
  // out. Where the file may hold huge folios (its st_blksize is larger than
  // a page: a huge-page tmpfs), SEEK_DATA counts a whole 2 MiB folio as
  // data though only some of its pages were written: its pages of zeros are
  // left out too, so that a copy keeps the holes. 0, put's error or -errno.
  using PutData = std::function<int(uint64_t at, std::span<const char> bytes)>;
  int read_data(uint64_t off, uint64_t end, std::vector<char>& buffer, const PutData& put) const;
  // Copies the data of [off, end) of `source` to the same offsets of this
  // file (a migration's copy, not yet named), grown to the source's size
  // first (grow_to), holes and read_data's pages of zeros left out: where
  // the source's holes are exact, in the kernel (sendfile: no byte through
  // a buffer of ours), else through read_data. 0 or -errno.
  int copy_data_from(const BackingFile& source, uint64_t off, uint64_t end);
  // Gives a file made without a name (BackingStore::open_unnamed: a
  // migration's copy) the name `name` in its directory: 0 or -errno.
  int link(std::string name);
  // Renames the file in its directory to `name`, as a file of `tier` from
  // now on (an in-place move between tiers: the name records the tier).
  // 0 or -errno (nothing changed).
  int rename(std::string name, uint32_t tier);
  // Unlinks the backing file (the last link and the last close are gone);
  // the kernel frees its pages when nothing holds it any more.
  void remove();
  // Whether an open file the server does not hold still uses the backing
  // file: a shared mapping of a passthrough handle whose program closed its
  // descriptor (on 6.18 the mapping holds the backing file itself, so the
  // last RELEASE came at the close). Asked with a write lease, which the
  // kernel grants only while no other open file writes the inode (nor, on a
  // kernel with IMA, reads it) and which is dropped at once. nullopt (errno
  // set): the kernel refused the lease for another reason (fs.leases-enable
  // off, a file the server does not own), so nobody can tell.
  std::optional<bool> open_elsewhere() const;
  // Whether an open file the server does not hold writes the backing file:
  // a passthrough handle, or a shared mapping that outlived its descriptor.
  // Asked with a read lease, which the kernel grants only while the inode
  // has no writer (IMA's reader count plays no part) and which other
  // readers do not break; dropped at once. nullopt (errno set): refused for
  // another reason (leases off), so nobody can tell.
  std::optional<bool> written_elsewhere() const;

  // The FUSE passthrough registration of the file (a backing id), shared by
  // every open handle of the inode: the kernel refuses two backing files for
  // one inode. The server (fs_kernel_path.cc) keeps these; 0: not registered.
  int passthrough_id = 0;
  uint32_t passthrough_opens = 0;

 private:
  Fd open_as(int access) const;
  std::optional<bool> lease_refused(int access, int lease) const;
  int fallocate_range(int mode, uint64_t off, uint64_t len) const;
  int set_times(const timespec (&times)[2]) const;

  int fd_;  // only while the file has no name
  int dir_fd_;
  std::string name_;
  uint32_t tier_;
  bool removed_ = false;
  int created_fd_ = -1;
  uint64_t grown_to_ = 0;  // the largest size grow_to was asked for
};

}  // namespace tierfs
