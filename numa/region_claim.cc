// The evidence that an existing region object is tierfs's: the xattr
// signature on files, libblkid's probe of devices, and the identity line the
// mount's state records (see region_claim.h for the rules).
#include "numa/region_claim.h"

#include <blkid/blkid.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace tierfs::numa {
namespace {

[[noreturn]] void refuse(const std::string& path, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", path, what));
}

bool xattrs_unsupported(int err) {
  return err == ENOTSUP || err == EOPNOTSUPP;
}

struct ProbeDeleter {
  void operator()(blkid_probe probe) const { blkid_free_probe(probe); }
};

std::string lookup(blkid_probe probe, const char* name) {
  const char* value = nullptr;
  size_t length = 0;
  if (blkid_probe_lookup_value(probe, name, &value, &length) != 0 || value == nullptr) return "";
  return std::string(value, strnlen(value, length));
}

}  // namespace

FileSignature read_file_signature(int fd, const std::string& path) {
  char value[64] = {};
  const ssize_t n = fgetxattr(fd, kRegionXattr, value, sizeof value - 1);
  if (n >= 0) {
    return std::string_view(value, static_cast<size_t>(n)) == kRegionXattrValue
               ? FileSignature::present
               : FileSignature::absent;
  }
  if (errno == ENODATA || errno == ERANGE) return FileSignature::absent;
  if (xattrs_unsupported(errno)) return FileSignature::unsupported;
  refuse(path, fmt::format("cannot read {}: {}", kRegionXattr, std::strerror(errno)));
}

bool write_file_signature(int fd, const std::string& path) {
  if (fsetxattr(fd, kRegionXattr, kRegionXattrValue, std::strlen(kRegionXattrValue), 0) == 0)
    return true;
  if (xattrs_unsupported(errno)) return false;
  refuse(path, fmt::format("cannot set {}: {}", kRegionXattr, std::strerror(errno)));
}

std::string foreign_file_refusal(FileSignature signature) {
  if (signature == FileSignature::unsupported)
    return "exists and tierfs has no record of making it (its file system keeps no user xattrs "
           "for a signature, and the mount's state does not name it); tierfs will not overwrite "
           "it (take_over = true on the region gives it to tierfs)";
  return fmt::format(
      "exists and has no tierfs signature ({}): tierfs did not make it and will not overwrite it "
      "(take_over = true on the region gives it to tierfs)",
      kRegionXattr);
}

std::string probe_block_contents(int fd, const std::string& path) {
  std::unique_ptr<blkid_struct_probe, ProbeDeleter> probe(blkid_new_probe());
  if (!probe) refuse(path, "libblkid cannot allocate a probe");
  if (blkid_probe_set_device(probe.get(), fd, 0, 0) != 0)
    refuse(path, "libblkid cannot probe the device");
  // What wipefs and mkfs look for: file systems, RAID and LVM members, swap
  // (superblocks) and partition tables; USAGE says which.
  blkid_probe_enable_superblocks(probe.get(), 1);
  blkid_probe_set_superblocks_flags(probe.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
  blkid_probe_enable_partitions(probe.get(), 1);
  blkid_probe_set_partitions_flags(probe.get(), BLKID_PARTS_MAGIC);
  const int rc = blkid_do_safeprobe(probe.get());
  if (rc == 1) return "";
  // -2: several signatures that contradict each other; something is there.
  if (rc == -2) return "several file system or partition table signatures";
  if (rc != 0) refuse(path, "libblkid cannot probe the device");
  if (std::string table = lookup(probe.get(), "PTTYPE"); !table.empty())
    return fmt::format("a partition table ({})", table);
  const std::string type = lookup(probe.get(), "TYPE");
  const std::string usage = lookup(probe.get(), "USAGE");
  if (usage == "raid") return fmt::format("a RAID or volume group member ({})", type);
  if (usage == "crypto") return fmt::format("an encrypted volume ({})", type);
  if (usage == "other") return fmt::format("a signature libblkid knows ({})", type);
  return fmt::format("a file system ({})", type);
}

std::string region_identity(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0)
    throw std::runtime_error(fmt::format("cannot stat a region: {}", std::strerror(errno)));
  if (!S_ISBLK(st.st_mode))
    return fmt::format("file {}:{} {}", major(st.st_dev), minor(st.st_dev), st.st_ino);
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) size = 0;
  std::string line = fmt::format("block {}:{} {}", major(st.st_rdev), minor(st.st_rdev), size);
  std::ifstream backing(
      fmt::format("/sys/dev/block/{}:{}/loop/backing_file", major(st.st_rdev), minor(st.st_rdev)));
  if (std::string file; std::getline(backing, file)) line += " loop " + file;
  return line;
}

}  // namespace tierfs::numa
