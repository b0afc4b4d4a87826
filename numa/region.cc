// Mapping of regions: numa:N as a POSIX shared-memory object bound to node N,
// dax:/dev/daxX.Y as a devdax mapping at the device alignment, file:PATH as a
// shared file mapping. A failed open leaves nothing behind.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <numa.h>
#include <numaif.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "numa/region.h"
#include "numa/region_claim.h"
#include "numa/region_trust.h"

namespace tierfs::numa {
namespace {

std::string bytes_text(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  unsigned unit = 0;
  while (unit + 1 < std::size(kUnits) && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return fmt::format("{}{}", bytes, kUnits[unit]);
}

[[noreturn]] void fail(const RegionSpec& spec, const std::string& what) {
  throw std::runtime_error(fmt::format("region \"{}\": {}", spec.text, what));
}

// A trust refusal names its path; the region's own path needs no second mention.
[[noreturn]] void fail_trust(const RegionSpec& spec, const std::runtime_error& e) {
  std::string_view what = e.what();
  const std::string own = spec.path + ": ";
  if (what.starts_with(own)) what.remove_prefix(own.size());
  fail(spec, std::string(what));
}

uint64_t read_sysfs_u64(const std::string& path, uint64_t fallback) {
  std::ifstream in(path);
  uint64_t value = fallback;
  if (!(in >> value)) return fallback;
  return value;
}

// Owns one descriptor and one mapping; what open() created is undone unless
// commit() was called.
class MappedRegion final : public Region {
 public:
  explicit MappedRegion(const RegionSpec& spec) { spec_ = spec; }
  ~MappedRegion() override {
    if (map_base_ != nullptr) munmap(map_base_, map_length_);
    if (fd_ >= 0) close(fd_);
    // Named shared memory created by a start-up that did not finish.
    if (!shm_name_.empty()) shm_unlink(shm_name_.c_str());
    if (!created_path_.empty()) unlink(created_path_.c_str());
  }
  int fd() const override { return fd_; }

  void set_fd(int fd) { fd_ = fd; }
  void set_block_device() { block_device_ = true; }
  void keep_created_file() const override {
    created_path_.clear();
    shm_name_.clear();
  }
  void set_created_file(const std::string& path) { created_path_ = path; }
  void set_shm_name(const std::string& name) { shm_name_ = name; }
  void set_adopted() { adopted_ = true; }
  void set_reservable() { reservable_ = true; }
  void map(uint64_t file_offset, uint64_t length, uint64_t data_skip, uint64_t size, int node) {
    void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_,
                      static_cast<off_t>(file_offset));
    if (base == MAP_FAILED) fail(spec_, fmt::format("mmap failed: {}", std::strerror(errno)));
    map_base_ = base;
    map_length_ = length;
    data_ = static_cast<std::byte*>(base) + data_skip;
    size_bytes_ = size;
    numa_node_ = node;
  }
  void* map_base() const { return map_base_; }
  uint64_t map_length() const { return map_length_; }

 private:
  int fd_ = -1;
  void* map_base_ = nullptr;
  uint64_t map_length_ = 0;
  mutable std::string shm_name_;
  mutable std::string created_path_;
};

uint64_t free_huge_pages_bytes() {
  const uint64_t free_pages =
      read_sysfs_u64("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", 0);
  return free_pages * (2u << 20);
}

// A previous server's object of this name, checked before a byte of it is
// trusted: -1 when there is none.
int adopt_shm(const RegionSpec& spec, const std::string& name, uint64_t size_bytes) {
  const int fd = shm_open(name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == ENOENT) return -1;
    fail(spec, fmt::format("cannot open the shared memory /dev/shm{} a previous server left: {}",
                           name, std::strerror(errno)));
  }
  struct stat st {};
  std::string refusal;
  if (fstat(fd, &st) != 0)
    refusal = std::strerror(errno);
  else if (!S_ISREG(st.st_mode))
    refusal = "is not a shared-memory object";
  else if (st.st_uid != geteuid() || (st.st_mode & 07777) != 0600)
    refusal = fmt::format("is owned by uid {} with mode {:04o}, not by uid {} with 0600", st.st_uid,
                          st.st_mode & 07777, geteuid());
  else if (static_cast<uint64_t>(st.st_size) != size_bytes)
    refusal = fmt::format("is {}, the region is {}", bytes_text(static_cast<uint64_t>(st.st_size)),
                          bytes_text(size_bytes));
  if (refusal.empty()) return fd;
  close(fd);
  fail(spec, fmt::format("the shared memory /dev/shm{} a previous server left {}; not adopted "
                         "(`tierfs mount --fresh` discards it)",
                         name, refusal));
}

int create_shm(const RegionSpec& spec, const std::string& name, uint64_t size_bytes) {
  // A region larger than what /dev/shm can still hold would SIGBUS on first touch.
  struct statvfs shm {};
  if (statvfs("/dev/shm", &shm) == 0) {
    const uint64_t avail = static_cast<uint64_t>(shm.f_bavail) * shm.f_frsize;
    if (avail < size_bytes)
      fail(spec, fmt::format("/dev/shm has {} free, the region needs {}", bytes_text(avail),
                             bytes_text(size_bytes)));
  }
  const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail(spec, fmt::format("shm_open {} failed: {}", name, std::strerror(errno)));
  try {
    check_private_shm(fd, "/dev/shm" + name);
  } catch (const std::runtime_error& e) {
    close(fd);
    shm_unlink(name.c_str());
    fail(spec, e.what());
  }
  return fd;
}

std::unique_ptr<Region> open_numa(const RegionSpec& spec, const RegionOptions& options) {
  if (numa_available() < 0) {
    if (spec.node != 0) fail(spec, "this machine has no NUMA support, only node 0 exists");
  } else if (spec.node > numa_max_node() || numa_node_size64(spec.node, nullptr) <= 0) {
    fail(spec, fmt::format("NUMA node {} does not exist or has no memory", spec.node));
  }
  auto region = std::make_unique<MappedRegion>(spec);
  int fd = -1;
  if (options.hugepages) {
    if (free_huge_pages_bytes() >= options.size_bytes) {
      // Huge pages come from hugetlbfs, not /dev/shm: scratch, not adoptable.
      fd = memfd_create("tierfs", MFD_HUGETLB | MFD_CLOEXEC);
    } else {
      std::fprintf(stderr,
                   "tierfs: region \"%s\": %s of free 2MiB huge pages are not enough for %s, using "
                   "normal pages\n",
                   spec.text.c_str(), bytes_text(free_huge_pages_bytes()).c_str(),
                   bytes_text(options.size_bytes).c_str());
    }
  }
  if (fd < 0) {
    // A name no other user can predict, so none can squat it before us.
    const std::string name = options.shm_name.empty() ? unpredictable_shm_name() : options.shm_name;
    if (name.front() != '/') fail(spec, "internal: shared-memory name must start with '/'");
    if (options.adopt) fd = adopt_shm(spec, name, options.size_bytes);
    if (fd >= 0) {
      region->set_adopted();
    } else {
      fd = create_shm(spec, name, options.size_bytes);
      region->set_fd(fd);
      if (options.shm_name.empty()) {
        // Nothing needs to find it by name: unnamed at once, so a crash
        // leaves nothing in /dev/shm (the descriptor and mapping keep the memory).
        shm_unlink(name.c_str());
      } else {
        region->set_shm_name(name);
      }
    }
    region->set_reservable();
  }
  region->set_fd(fd);
  if (!region->adopted() && ftruncate(fd, static_cast<off_t>(options.size_bytes)) != 0)
    fail(spec, fmt::format("cannot size shared memory to {}: {}", bytes_text(options.size_bytes),
                           std::strerror(errno)));
  region->map(0, options.size_bytes, 0, options.size_bytes, spec.node);
  if (numa_available() >= 0) {
    // Bind before the first touch: the shared policy then places every page on the node.
    bitmask* nodes = numa_allocate_nodemask();
    numa_bitmask_setbit(nodes, static_cast<unsigned>(spec.node));
    const long rc = mbind(region->map_base(), region->map_length(), MPOL_BIND, nodes->maskp,
                          nodes->size + 1, 0);
    const int err = errno;
    numa_free_nodemask(nodes);
    if (rc != 0)
      fail(spec, fmt::format("mbind to node {} failed: {}", spec.node, std::strerror(err)));
  }
  return region;
}

std::string dax_sysfs_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  return "/sys/bus/dax/devices/" + path.substr(slash + 1);
}

std::unique_ptr<Region> open_dax(const RegionSpec& spec, const RegionOptions& options) {
  auto region = std::make_unique<MappedRegion>(spec);
  try {
    region->set_fd(open_trusted(spec.path, BackingKind::char_device, false).fd);
    lock_region(region->fd(), spec.path);
  } catch (const std::runtime_error& e) {
    fail_trust(spec, e);
  }
  const std::string sysfs = dax_sysfs_dir(spec.path);
  const uint64_t device_size = read_sysfs_u64(sysfs + "/size", 0);
  const uint64_t align = read_sysfs_u64(sysfs + "/align", 2u << 20);
  if (device_size == 0) fail(spec, "cannot read the device size from " + sysfs + "/size");
  if (options.offset_bytes % align != 0)
    fail(spec, fmt::format("offset {} is not a multiple of the device alignment {}",
                           bytes_text(options.offset_bytes), bytes_text(align)));
  if (options.offset_bytes > device_size || options.size_bytes > device_size - options.offset_bytes)
    fail(spec, fmt::format("device is {}, needs {} at offset {}", bytes_text(device_size),
                           bytes_text(options.size_bytes), bytes_text(options.offset_bytes)));
  // devdax only maps whole alignment units.
  const uint64_t length = (options.size_bytes + align - 1) / align * align;
  const int node = static_cast<int>(static_cast<int64_t>(read_sysfs_u64(sysfs + "/numa_node", -1)));
  region->map(options.offset_bytes, length, 0, options.size_bytes, node);
  return region;
}

// Decides, before a byte of it changes, whether the object open on `fd` is
// tierfs's to use (numa/region_claim.h), and marks what it claims: a created
// or taken-over file with the signature (else the mount's record), a device
// with the record. Refusals name the path, as open_trusted's do.
void claim_file(const RegionSpec& spec, const RegionOptions& options, int fd, bool created) {
  auto refuse = [&](const std::string& what) {
    throw std::runtime_error(fmt::format("{}: {}", spec.path, what));
  };
  const std::string identity = region_identity(fd);
  const bool recorded = !options.recorded_identity.empty() && identity == options.recorded_identity;
  auto record = [&] {
    if (options.record_identity && !recorded) options.record_identity(identity);
  };
  struct stat st {};
  if (fstat(fd, &st) != 0) refuse(fmt::format("cannot stat: {}", std::strerror(errno)));
  if (S_ISBLK(st.st_mode)) {
    // Recorded first: a device tierfs used holds files' bytes, which may
    // look like a file system to libblkid (a disk image stored in the tier).
    if (recorded) return;
    const std::string found = probe_block_contents(fd, spec.path);
    if (!found.empty() && !options.take_over)
      refuse(
          fmt::format("the device holds {} (libblkid); tierfs did not put it there and will "
                      "not overwrite it (take_over = true on the region gives it to tierfs)",
                      found));
    if (!found.empty())
      std::fprintf(stderr, "tierfs: region \"%s\": take_over: using the device, which holds %s\n",
                   spec.text.c_str(), found.c_str());
    record();
    return;
  }
  if (created) {
    if (!write_file_signature(fd, spec.path)) record();
    return;
  }
  const FileSignature signature = read_file_signature(fd, spec.path);
  if (signature == FileSignature::present) return;
  if (signature == FileSignature::unsupported && recorded) return;
  if (!options.take_over) refuse(foreign_file_refusal(signature));
  std::fprintf(stderr, "tierfs: region \"%s\": take_over: using the existing file (%s)\n",
               spec.text.c_str(), bytes_text(static_cast<uint64_t>(st.st_size)).c_str());
  if (!write_file_signature(fd, spec.path)) record();
}

std::unique_ptr<Region> open_file(const RegionSpec& spec, const RegionOptions& options) {
  auto region = std::make_unique<MappedRegion>(spec);
  const long page = sysconf(_SC_PAGESIZE);
  if (options.offset_bytes % static_cast<uint64_t>(page) != 0)
    fail(spec, fmt::format("offset {} is not a multiple of the page size", options.offset_bytes));
  const uint64_t needed = options.offset_bytes + options.size_bytes;
  if (options.size_bytes > UINT64_MAX - options.offset_bytes)
    fail(spec, "offset and size together are past the largest possible file");
  try {
    const TrustedOpen opened = open_trusted(spec.path, BackingKind::file_or_block, options.create);
    region->set_fd(opened.fd);
    if (opened.created) region->set_created_file(spec.path);
    // A block device is exclusive through O_EXCL already; a file through the lock.
    if (!opened.block) lock_region(opened.fd, spec.path);
    claim_file(spec, options, opened.fd, opened.created);
  } catch (const std::runtime_error& e) {
    fail_trust(spec, e);
  }
  const int fd = region->fd();
  struct stat st {};
  if (fstat(fd, &st) != 0) fail(spec, fmt::format("cannot stat: {}", std::strerror(errno)));
  uint64_t size = 0;
  if (S_ISBLK(st.st_mode)) {
    // open_trusted claimed it with O_EXCL: refused with EBUSY while the device
    // is mounted or claimed by another process (another tierfs, mkfs, a RAID),
    // and kept from them while the region is open.
    region->set_block_device();
    if (ioctl(fd, BLKGETSIZE64, &size) != 0)
      fail(spec, fmt::format("cannot read the block device size: {}", std::strerror(errno)));
  } else if (S_ISREG(st.st_mode)) {
    region->set_reservable();
    size = static_cast<uint64_t>(st.st_size);
    if (size < needed && options.create) {
      if (ftruncate(fd, static_cast<off_t>(needed)) != 0)
        fail(spec, fmt::format("cannot size the file to {}: {}", bytes_text(needed),
                               std::strerror(errno)));
      size = needed;
    }
  } else {
    fail(spec, "not a regular file or block device");
  }
  if (size < needed)
    fail(spec, fmt::format("file is {}, needs {} at offset {}", bytes_text(size),
                           bytes_text(options.size_bytes), bytes_text(options.offset_bytes)));
  region->map(options.offset_bytes, options.size_bytes, 0, options.size_bytes, -1);
  // A file created here is removed with the region until keep_created_file():
  // a mount that fails later leaves nothing behind.
  return region;
}

}  // namespace

std::unique_ptr<Region> Region::open(const RegionSpec& spec, const RegionOptions& options) {
  if (options.size_bytes == 0) fail(spec, "size is zero");
  switch (spec.kind) {
    case RegionKind::numa:
      return open_numa(spec, options);
    case RegionKind::dax:
      return open_dax(spec, options);
    case RegionKind::file:
      return open_file(spec, options);
  }
  fail(spec, "unknown region kind");
}

}  // namespace tierfs::numa
