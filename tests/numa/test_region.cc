// Region::open for file and numa regions, and its one-line errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "numa/region.h"
#include "numa/region_claim.h"
#include "numa/region_trust.h"
#include "tests/support/privileged.h"

namespace {

namespace fs = std::filesystem;
using tierfs::numa::parse_region_spec;
using tierfs::numa::Region;
using tierfs::numa::RegionOptions;

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/tierfs-region-XXXXXX";
    path_ = mkdtemp(templ);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string open_error(const std::string& spec_text, const RegionOptions& options) {
  try {
    Region::open(parse_region_spec(spec_text), options);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(FileRegion, CreatedSizedAndWrittenThrough) {
  TempDir dir;
  const std::string path = (dir.path() / "spill").string();
  RegionOptions options{.size_bytes = 1 << 20, .hugepages = false, .create = true, .shm_name = ""};
  {
    auto region = Region::open(parse_region_spec("file:" + path), options);
    ASSERT_EQ(region->size_bytes(), 1u << 20);
    std::memcpy(region->data() + 4096, "tierfs", 6);
    EXPECT_GE(region->fd(), 0);
    EXPECT_EQ(region->numa_node(), -1);
    region->keep_created_file();  // the mount is up
  }
  // The bytes reached the file, and the file stays after the region is closed.
  ASSERT_EQ(fs::file_size(path), 1u << 20);
  std::ifstream in(path, std::ios::binary);
  in.seekg(4096);
  char buf[6];
  in.read(buf, 6);
  EXPECT_EQ(std::string(buf, 6), "tierfs");
}

TEST(FileRegion, CreatedFileIsRemovedUnlessKept) {
  TempDir dir;
  const std::string path = (dir.path() / "spill").string();
  RegionOptions options{.size_bytes = 1 << 20, .hugepages = false, .create = true, .shm_name = ""};
  Region::open(parse_region_spec("file:" + path), options);
  EXPECT_FALSE(fs::exists(path)) << "a mount that failed after this region leaves no file behind";
}

TEST(FileRegion, MapsFromTheConfiguredOffset) {
  TempDir dir;
  const std::string path = (dir.path() / "f").string();
  { std::ofstream(path).put('x'); }
  fs::resize_file(path, 3 << 20);
  RegionOptions options{.offset_bytes = 2 << 20, .size_bytes = 1 << 20};
  options.take_over = true;  // a file the test made, not tierfs
  auto region = Region::open(parse_region_spec("file:" + path), options);
  region->data()[0] = std::byte{0x5a};
  region.reset();
  std::ifstream in(path, std::ios::binary);
  in.seekg(2 << 20);
  EXPECT_EQ(in.get(), 0x5a);
}

TEST(FileRegion, TooSmallIsRefusedInOneLine) {
  TempDir dir;
  const std::string path = (dir.path() / "small").string();
  { std::ofstream(path).put('x'); }
  fs::resize_file(path, 1 << 20);
  RegionOptions options{.size_bytes = 4 << 20};
  options.take_over = true;
  const std::string error = open_error("file:" + path, options);
  EXPECT_EQ(error, "region \"file:" + path + "\": file is 1MiB, needs 4MiB at offset 0B");
}

std::string signature_of(const std::string& path) {
  char value[64] = {};
  const ssize_t n = getxattr(path.c_str(), tierfs::numa::kRegionXattr, value, sizeof value - 1);
  return n < 0 ? "" : std::string(value, static_cast<size_t>(n));
}

// Issue 24, defect 7: create = true over an existing file tierfs did not
// make grew it and used it. Now it is refused and left as it was.
TEST(FileRegion, AnExistingFileWithoutTheSignatureIsRefusedAndUntouched) {
  TempDir dir;
  const std::string path = (dir.path() / "db").string();
  { std::ofstream(path) << "hello"; }
  struct stat before {};
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  RegionOptions options{.size_bytes = 1 << 20, .hugepages = false, .create = true, .shm_name = ""};
  EXPECT_EQ(open_error("file:" + path, options),
            "region \"file:" + path +
                "\": exists and has no tierfs signature (user.tierfs.region): tierfs did not make "
                "it and will not overwrite it (take_over = true on the region gives it to tierfs)");
  struct stat after {};
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, 5);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(signature_of(path), "");
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "hello");
}

TEST(FileRegion, TakeOverSignsTheFileAndCreatedFilesAreSigned) {
  TempDir dir;
  const std::string path = (dir.path() / "old").string();
  { std::ofstream(path) << "hello"; }
  RegionOptions options{.size_bytes = 1 << 20, .hugepages = false, .create = true, .shm_name = ""};
  options.take_over = true;
  Region::open(parse_region_spec("file:" + path), options);
  EXPECT_EQ(signature_of(path), "tierfs region v1");
  options.take_over = false;  // signed: the next open needs no option
  EXPECT_EQ(open_error("file:" + path, options), "");
  const std::string made = (dir.path() / "made").string();
  Region::open(parse_region_spec("file:" + made), options)->keep_created_file();
  EXPECT_EQ(signature_of(made), "tierfs region v1");
  EXPECT_EQ(open_error("file:" + made, options), "");
}

TEST(FileRegion, MissingWithoutCreateIsRefused) {
  TempDir dir;
  const std::string path = (dir.path() / "absent").string();
  EXPECT_EQ(open_error("file:" + path, RegionOptions{.size_bytes = 4096}),
            "region \"file:" + path + "\": no such file (set create = true to create it)");
  EXPECT_FALSE(fs::exists(path));
}

// A loop device over a scratch file, detached again on destruction.
class LoopDevice {
 public:
  explicit LoopDevice(const fs::path& backing) {
    const std::string cmd = "losetup --find --show " + backing.string() + " 2>&1";
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char line[256] = {};
      if (fgets(line, sizeof(line), p) != nullptr) output_ = line;
      if (pclose(p) == 0 && output_.rfind("/dev/loop", 0) == 0) {
        output_.erase(output_.find_last_not_of('\n') + 1);
        path_ = output_;
      }
    }
  }
  ~LoopDevice() {
    if (!path_.empty()) (void)std::system(("losetup -d " + path_).c_str());
  }
  const std::string& path() const { return path_; }  // empty when losetup failed
  const std::string& output() const { return output_; }

 private:
  std::string path_, output_;
};

std::string missing_loop() {
  if (geteuid() != 0) return "needs root for a loop device";
  if (access("/dev/loop-control", R_OK | W_OK) != 0) return "needs /dev/loop-control";
  return "";
}

// A block device is the region kind fuse-iomap can map: tierfs claims it
// exclusively, so a second claimant (another tierfs, mkfs) is refused.
TEST(BlockDeviceRegion, ClaimedExclusivelyAndWrittenThrough) {
  TIERFS_REQUIRE(missing_loop());
  TempDir dir;
  const fs::path backing = dir.path() / "disk";
  { std::ofstream(backing).close(); }
  fs::resize_file(backing, 8 << 20);
  LoopDevice loop(backing);
  ASSERT_FALSE(loop.path().empty()) << "losetup: " << loop.output();
  RegionOptions options;
  options.size_bytes = 4 << 20;
  options.offset_bytes = 1 << 20;
  auto region = Region::open(parse_region_spec("file:" + loop.path()), options);
  EXPECT_TRUE(region->block_device());
  std::memcpy(region->data(), "tierfs", 6);
  EXPECT_NE(open_error("file:" + loop.path(), options).find("in use"), std::string::npos)
      << "a second claim of the same device";
  region.reset();
  EXPECT_EQ(open_error("file:" + loop.path(), options), "") << "released on close";
  // The bytes went to the device at the region's offset.
  std::ifstream in(backing, std::ios::binary);
  in.seekg(1 << 20);
  char got[7] = {};
  in.read(got, 6);
  EXPECT_STREQ(got, "tierfs");
}

TEST(FileRegion, APlainFileIsNotABlockDevice) {
  TempDir dir;
  RegionOptions options;
  options.size_bytes = 1 << 20;
  options.create = true;
  EXPECT_FALSE(Region::open(parse_region_spec("file:" + (dir.path() / "f").string()), options)
                   ->block_device());
}

TEST(DaxRegion, MissingDeviceIsRefused) {
  EXPECT_EQ(open_error("dax:/dev/dax93.7", RegionOptions{.size_bytes = 2 << 20}),
            "region \"dax:/dev/dax93.7\": no such device");
}

TEST(NumaRegion, PagesLandOnTheBoundNode) {
  if (numa_available() < 0) GTEST_SKIP() << "no NUMA support";
  const std::string name = "/tierfs-test-" + std::to_string(getpid());
  RegionOptions options{
      .size_bytes = 8 << 20, .hugepages = false, .create = false, .shm_name = name};
  auto region = Region::open(parse_region_spec("numa:0"), options);
  EXPECT_EQ(region->numa_node(), 0);
  std::memset(region->data(), 0xab, region->size_bytes());
  for (uint64_t off = 0; off < region->size_bytes(); off += 1 << 20) {
    int node = -1;
    ASSERT_EQ(get_mempolicy(&node, nullptr, 0, region->data() + off, MPOL_F_NODE | MPOL_F_ADDR), 0);
    EXPECT_EQ(node, 0) << "offset " << off;
  }
  EXPECT_TRUE(fs::exists("/dev/shm" + name));
  region.reset();
  EXPECT_FALSE(fs::exists("/dev/shm" + name))
      << "a numa region is scratch: released with the server";
}

TEST(NumaRegion, AbsentNodeIsRefused) {
  RegionOptions options{
      .size_bytes = 1 << 20, .hugepages = false, .create = false, .shm_name = "/tierfs-x"};
  EXPECT_EQ(open_error("numa:99", options),
            numa_available() < 0
                ? "region \"numa:99\": this machine has no NUMA support, only node 0 exists"
                : "region \"numa:99\": NUMA node 99 does not exist or has no memory");
}

TEST(NumaRegion, HugePagesFallBackWhenThereAreNone) {
  if (numa_available() < 0) GTEST_SKIP() << "no NUMA support";
  const std::string name = "/tierfs-test-huge-" + std::to_string(getpid());
  RegionOptions options{
      .size_bytes = 1 << 30, .hugepages = true, .create = false, .shm_name = name};
  std::ifstream free_pages("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
  uint64_t pages = 0;
  free_pages >> pages;
  auto region = Region::open(parse_region_spec("numa:0"), options);
  ASSERT_EQ(region->size_bytes(), 1u << 30);
  region->data()[0] = std::byte{1};
  // With too few huge pages the region lives in /dev/shm on normal pages.
  if (pages * (2u << 20) < (1u << 30)) {
    EXPECT_TRUE(fs::exists("/dev/shm" + name));
  }
}

TEST(RegionSpec, ParsesTheThreeKinds) {
  EXPECT_EQ(parse_region_spec("numa:3").node, 3);
  EXPECT_EQ(parse_region_spec("dax:/dev/dax0.0").path, "/dev/dax0.0");
  EXPECT_EQ(parse_region_spec("file:/var/spill").kind, tierfs::numa::RegionKind::file);
  EXPECT_THROW(parse_region_spec("numa:x"), std::invalid_argument);
  EXPECT_THROW(parse_region_spec("dax:dev/dax0.0"), std::invalid_argument);
  EXPECT_THROW(parse_region_spec("tape:/dev/st0"), std::invalid_argument);
  EXPECT_THROW(parse_region_spec("numa0"), std::invalid_argument);
}

namespace adoption {

std::string fresh_name() {
  return tierfs::numa::unpredictable_shm_name();
}

// What a killed server leaves: a named object, kept once the mount was up.
std::string leave_region(uint64_t size, std::byte fill) {
  std::string name = fresh_name();
  auto region = Region::open(parse_region_spec("numa:0"),
                             RegionOptions{.size_bytes = size, .shm_name = name, .adopt = true});
  EXPECT_FALSE(region->adopted());
  EXPECT_TRUE(region->reservable());
  std::memset(region->data(), static_cast<int>(fill), size);
  region->keep_created_file();
  return name;
}

TEST(NumaRegion, NamedRegionIsAdoptedWithItsContents) {
  const std::string name = leave_region(1 << 20, std::byte{0x5a});
  ASSERT_TRUE(fs::exists("/dev/shm" + name)) << "kept after the mount came up";
  {
    auto again =
        Region::open(parse_region_spec("numa:0"),
                     RegionOptions{.size_bytes = 1 << 20, .shm_name = name, .adopt = true});
    EXPECT_TRUE(again->adopted());
    EXPECT_EQ(again->data()[12345], std::byte{0x5a});
  }
  EXPECT_TRUE(fs::exists("/dev/shm" + name)) << "an adopted region is removed by MountState only";
  shm_unlink(name.c_str());
}

TEST(NumaRegion, CreatedNamedRegionGoesWhenStartUpFails) {
  const std::string name = fresh_name();
  {
    auto region =
        Region::open(parse_region_spec("numa:0"),
                     RegionOptions{.size_bytes = 1 << 20, .shm_name = name, .adopt = true});
    EXPECT_TRUE(fs::exists("/dev/shm" + name));
  }
  EXPECT_FALSE(fs::exists("/dev/shm" + name));
}

TEST(NumaRegion, WrongSizeOrModeIsNotAdopted) {
  const std::string name = leave_region(1 << 20, std::byte{1});
  EXPECT_EQ(
      open_error("numa:0", RegionOptions{.size_bytes = 2 << 20, .shm_name = name, .adopt = true}),
      "region \"numa:0\": the shared memory /dev/shm" + name +
          " a previous server left is 1MiB, the region is 2MiB; not adopted (`tierfs mount "
          "--fresh` discards it)");
  ASSERT_EQ(chmod(("/dev/shm" + name).c_str(), 0644), 0);
  EXPECT_EQ(
      open_error("numa:0", RegionOptions{.size_bytes = 1 << 20, .shm_name = name, .adopt = true}),
      "region \"numa:0\": the shared memory /dev/shm" + name +
          " a previous server left is owned by uid " + std::to_string(geteuid()) +
          " with mode 0644, not by uid " + std::to_string(geteuid()) +
          " with 0600; not adopted (`tierfs mount --fresh` discards it)");
  EXPECT_TRUE(fs::exists("/dev/shm" + name)) << "a refused object is left for the admin";
  shm_unlink(name.c_str());
}

TEST(NumaRegion, ExistingNameWithoutAdoptIsRefused) {
  const std::string name = leave_region(1 << 20, std::byte{1});
  EXPECT_NE(open_error("numa:0", RegionOptions{.size_bytes = 1 << 20, .shm_name = name})
                .find("File exists"),
            std::string::npos);
  shm_unlink(name.c_str());
}

}  // namespace adoption

}  // namespace
