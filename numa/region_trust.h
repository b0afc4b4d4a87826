// The trust and exclusivity rules for region backing objects (files, block
// devices, DAX devices, shared memory): which paths tierfs follows, which
// existing objects it accepts, how it creates new ones and how it makes a
// region exclusive to one mount. Every refusal throws std::runtime_error with
// one line naming the path and the rule (the caller adds the region).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "numa/region_claim.h"

namespace tierfs::numa {

// What kind of object a region path may name.
enum class BackingKind { file_or_block, char_device };

struct TrustedOpen {
  int fd = -1;           // O_RDWR | O_CLOEXEC; block devices also O_EXCL
  bool created = false;  // tierfs created the file (O_EXCL, 0600) in this call
  bool block = false;    // a block device
};

// Opens `path` (absolute) for reading and writing under the trust rules:
//  - a symlink (at any component) is followed only where no other user can
//    have planted it: in a directory owned by root or the mounter that group
//    and others cannot write, or a sticky one when the link is owned by root
//    or the mounter (the kernel's protected_symlinks rule);
//  - an existing object must be a regular file or block device (or a
//    character device for `char_device`) owned by root or the mounter; a
//    regular file must not be writable by group or others, a device not by others;
//  - with `create`, a missing file is created O_EXCL with mode 0600 in a
//    directory owned by root or the mounter that group and others cannot
//    write unless it is sticky;
//  - a block device is opened O_EXCL: the kernel refuses it while it is
//    mounted or claimed by another exclusive opener (another mount).
// The mounter is the effective uid.
TrustedOpen open_trusted(const std::string& path, BackingKind kind, bool create);

// The same rules without opening for writing or creating anything, for the
// configuration check that check-config and mount share: whether the object
// exists, is a block device, and its size (files) or capacity (devices). It
// also probes the lock, so a region another mount holds is refused here too.
// When `create` would create or grow a file to `needed_bytes` (0: unknown
// yet), checks on an unnamed O_TMPFILE that the file system takes that size.
// For an existing regular file it also reads tierfs's signature
// (numa/region_claim.h).
struct TrustedCheck {
  bool exists = false;
  bool block = false;
  uint64_t size_bytes = 0;
  FileSignature signature = FileSignature::absent;  // regular files only
};
TrustedCheck check_trusted(const std::string& path, BackingKind kind, bool create,
                           uint64_t needed_bytes);

// Takes an exclusive lock (flock) on the open object for the life of `fd`.
// When another mount holds it, throws one line naming the holder's pid and
// command line.
void lock_exclusive(int fd, const std::string& path);
// As lock_exclusive, but a lock this process already holds on the object is
// no conflict: another tier of the same mount carving the same file or device
// (validation keeps their byte ranges apart). A lock another process holds
// is waited for, up to 10 s, since `umount` returns before the server it
// ends has let go of its regions; after a wait one line on stderr says how
// long and for whom, and the refusal says it waited.
void lock_region(int fd, const std::string& path);
// As lock_region (the same wait) but releases the lock at once (for the
// configuration check that check-config and mount share).
void probe_exclusive(int fd, const std::string& path);

// Opens the directory `path` (absolute) for a mount's private state, under
// the same walk as open_trusted (no symlink another user could plant is
// followed). With `create`, missing components are made mode 0700, each in a
// directory owned by root or the mounter that group and others cannot write
// unless it is sticky (like mkdir -p, but only where nobody else could have
// raced it). The directory itself must be owned by the mounter with no access
// for group or others. Returns an O_DIRECTORY descriptor; `created` says
// whether the last component was made in this call.
struct TrustedDir {
  int fd = -1;
  bool created = false;
};
TrustedDir open_trusted_dir(const std::string& path, bool create);
// The same rules without creating anything (for the configuration check):
// false when the directory does not exist yet but could be created.
bool check_trusted_dir(const std::string& path);

// "/tierfs.<uid>.<32 random hex digits>": a shared-memory name no other user
// can predict (getrandom), so none can squat it.
std::string unpredictable_shm_name();

// Checks a shared-memory descriptor that this process just created: owned by
// the effective uid, mode 0600 (nobody else can map it).
void check_private_shm(int fd, const std::string& name);

// Whether `name` is one unpredictable_shm_name() of this uid could have made:
// records read back from a state directory name nothing else.
bool is_unpredictable_shm_name(const std::string& name);

}  // namespace tierfs::numa
