// Whether an existing file or block device is tierfs's to use: as mkfs
// refuses to overwrite a file system without -f, a region never takes over
// an object tierfs did not make unless the configuration says so
// (`take_over`). The evidence, in order:
//  - a regular file carries the extended attribute user.tierfs.region,
//    which tierfs sets on the files it creates or is told to take over;
//  - where the file system keeps no user xattrs (ramfs, vfat, NFSv3), and
//    for block devices (the signature cannot live on the device without
//    taking bytes of it), the mount's state directory records the object's
//    identity (region_identity) once tierfs has claimed it;
//  - a block device with no record is tierfs's to use when libblkid finds
//    neither a file system nor a partition table (nor RAID, LVM, swap) on it.
// Every refusal throws std::runtime_error with one line naming the path.
#pragma once

#include <string>

namespace tierfs::numa {

// The signature on region files, and its value.
inline constexpr const char* kRegionXattr = "user.tierfs.region";
inline constexpr const char* kRegionXattrValue = "tierfs region v1";

enum class FileSignature { present, absent, unsupported };

// Whether the open regular file carries tierfs's signature; `unsupported`
// when its file system keeps no user xattrs. Throws on other errors.
FileSignature read_file_signature(int fd, const std::string& path);

// Sets the signature: false when the file system keeps no user xattrs
// (then the caller records the file in the mount's state instead). Throws
// on other errors (a full file system, a quota).
bool write_file_signature(int fd, const std::string& path);

// Why an existing regular file without the signature (absent) or on a file
// system without user xattrs and not recorded (unsupported) is refused: one
// phrase for the mount and the configuration check alike.
std::string foreign_file_refusal(FileSignature signature);

// What libblkid finds on the open block device: "" for nothing it knows,
// else a phrase such as "a file system (ext4)" or "a partition table (gpt)".
// Only reads. Throws when the device cannot be probed.
std::string probe_block_contents(int fd, const std::string& path);

// A line identifying the open object for the mount's records: device and
// inode for a file; device number, size and (for a loop device) its backing
// file for a block device, so that a loop device set up again over another
// file does not match a record of the old one.
std::string region_identity(int fd);

}  // namespace tierfs::numa
