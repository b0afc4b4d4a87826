// Regions: contiguous, byte-addressable memory that tierfs owns, mapped once
// at start and released on exit. Parsing of region specs ("numa:0",
// "dax:/dev/dax0.0", "file:/path") lives here too, beside what they mean.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace tierfs::numa {

enum class RegionKind { numa, dax, file };

struct RegionSpec {
  RegionKind kind = RegionKind::numa;
  int node = -1;     // numa: the node
  std::string path;  // dax: the device, file: the file or block device
  std::string text;  // as the user wrote it, for messages

  bool operator==(const RegionSpec&) const = default;
};

// Parses "numa:N", "dax:/dev/daxX.Y" or "file:PATH". Throws std::invalid_argument
// with a message that names what is wrong (without location; the caller adds it).
RegionSpec parse_region_spec(std::string_view text);

struct RegionOptions {
  uint64_t offset_bytes = 0;  // dax, file: where the range starts inside the device or file
  uint64_t size_bytes = 0;    // bytes to map, starting at offset_bytes
  bool hugepages = false;     // numa: back with huge pages where available
  bool create = false;        // file: create and size the file when missing
  // numa: the shared-memory object's name, recorded in the mount's state
  // directory (tierfs/core/mount_state.h) so that the next server finds it;
  // empty for an unpredictable one unlinked as soon as it is open (tools, tests).
  std::string shm_name;
  // numa: an existing object of that name (a previous server's) is taken over
  // with its contents, after checking it is this user's, 0600, a regular
  // object and exactly size_bytes; without `adopt` it must not exist.
  bool adopt = false;
  // file: an existing file or block device that is not tierfs's (see
  // numa/region_claim.h) is used anyway and its contents are lost; a file is
  // signed, so later mounts need no option. Without it such a region is
  // refused with one line and left untouched.
  bool take_over = false;
  // file: what the mount's state recorded of this region's object
  // (region_identity), and how to record it: files on file systems without
  // user xattrs and block devices are known as tierfs's by that record.
  // Empty and unset for tools and tests that keep no state.
  std::string recorded_identity;
  std::function<void(const std::string& identity)> record_identity;
};

class Region {
 public:
  // Maps the region. Throws std::runtime_error with one line naming the
  // region and what is wrong (missing device, too small, bind failed, ...).
  static std::unique_ptr<Region> open(const RegionSpec& spec, const RegionOptions& options);
  virtual ~Region() = default;

  std::byte* data() const { return data_; }
  uint64_t size_bytes() const { return size_bytes_; }
  const RegionSpec& spec() const { return spec_; }
  // NUMA node the memory sits on, -1 when unknown.
  int numa_node() const { return numa_node_; }
  // A descriptor for the backing object (shm, device, file), -1 for none.
  // The iomap path registers it with FUSE_DEV_IOC_BACKING_OPEN.
  virtual int fd() const = 0;
  // A file: region over a block device (pmem namespace in fsdax/raw mode, brd,
  // loop), opened exclusively (O_EXCL): the only kind fuse-iomap can map
  // (it takes S_ISBLK targets only; a devdax character device cannot be one).
  bool block_device() const { return block_device_; }
  // A file region that open() created is removed when the region is
  // destroyed, unless this is called once the mount is up: then the file is
  // the user's spill space and stays.
  // Const: the mapping does not change, only what happens at destruction.
  // Named shared memory created here is removed with the region the same way
  // until the mount is up; after that only MountState removes it (clean
  // unmount, `tierfs cleanup`), so a killed server's memory is still there.
  virtual void keep_created_file() const {}
  // The backing object existed with contents a previous server left (numa:
  // shared memory adopted by name); false for memory created empty here.
  bool adopted() const { return adopted_; }
  // The backing object allocates its storage on first write (shared memory,
  // a regular file): space must be reserved (fallocate) before a block is
  // written, or exhaustion arrives as SIGBUS instead of ENOSPC.
  bool reservable() const { return reservable_; }

  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

 protected:
  Region() = default;
  RegionSpec spec_;
  std::byte* data_ = nullptr;
  uint64_t size_bytes_ = 0;
  int numa_node_ = -1;
  bool block_device_ = false;
  bool adopted_ = false;
  bool reservable_ = false;
};

}  // namespace tierfs::numa
