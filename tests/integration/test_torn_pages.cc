// Reads racing a truncate and rewrite of the same file see every 4 KiB page
// whole, as on tmpfs: all of one version, never part old and part new, and
// the file never ends in the middle of a page the writer wrote whole. Readers
// read the whole file (more than one request's worth) into buffers that do
// and do not start on a page boundary: the kernel cuts such a read into
// requests by pages of the buffer (bdi_tuning.h, read_request_bytes).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kPages = 600;  // 2.4 MB: a whole-file read or write is three requests

struct FreeDeleter {
  void operator()(char* p) const { free(p); }  // NOLINT(cppcoreguidelines-no-malloc)
};
using PageBuffer = std::unique_ptr<char, FreeDeleter>;
PageBuffer page_aligned(size_t bytes) {
  return PageBuffer(static_cast<char*>(aligned_alloc(kPage, bytes)));
}

class TornPagesTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    TestConfig config = small_config();
    config.cache = GetParam();
    ASSERT_TRUE(mount_.start(config)) << mount_.failure();
  }
  void TearDown() override { EXPECT_EQ(mount_.stop(), 0) << mount_.failure(); }
  Mount mount_;
};

struct Tally {
  std::atomic<long> pages{0}, torn{0}, mid_page_ends{0};
};

// Reads the whole file again and again into a buffer `misalign` bytes past a
// page boundary; counts pages that are not all one byte and reads that end
// in the middle of a page.
void read_until(const std::string& path, size_t misalign, const std::atomic<bool>& stop,
                Tally& tally) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  PageBuffer raw = page_aligned((kPages + 1) * kPage);
  char* buf = raw.get() + misalign;
  while (!stop.load()) {
    const ssize_t n = pread(fd, buf, kPages * kPage, 0);
    if (n < 0) break;
    if (n % kPage != 0) tally.mid_page_ends++;
    for (ssize_t off = 0; off + static_cast<ssize_t>(kPage) <= n; off += kPage) {
      tally.pages++;
      const char* page = buf + off;
      if (page[0] == 0 || std::memcmp(page, page + 1, kPage - 1) != 0) tally.torn++;
    }
  }
  close(fd);
}

TEST_P(TornPagesTest, ReadsRacingTruncateAndRewriteSeeWholePages) {
  const std::string path = mount_.path("f");
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  std::atomic<bool> stop{false};
  std::atomic<long> rewrites{0};
  // Each version fills every page with one letter, in one write of the whole file.
  std::thread writer([&] {
    PageBuffer data = page_aligned(kPages * kPage);
    for (unsigned version = 0; !stop.load(); ++version) {
      std::memset(data.get(), 'A' + static_cast<int>(version % 26), kPages * kPage);
      if (ftruncate(fd, 0) != 0 ||
          pwrite(fd, data.get(), kPages * kPage, 0) != static_cast<ssize_t>(kPages * kPage))
        break;
      rewrites++;
    }
  });
  Tally tally;
  std::vector<std::thread> readers;
  for (size_t misalign : {size_t{0}, size_t{16}, size_t{2048}})
    readers.emplace_back([&, misalign] { read_until(path, misalign, stop, tally); });
  std::this_thread::sleep_for(std::chrono::seconds(3));
  stop = true;
  writer.join();
  for (auto& reader : readers) reader.join();
  close(fd);
  EXPECT_GT(rewrites.load(), 2) << "the writer hardly ran";
  EXPECT_GT(tally.pages.load(), 1000) << "the readers hardly ran";
  EXPECT_EQ(tally.torn.load(), 0) << "pages part one version, part another or zeros, of "
                                  << tally.pages.load() << " read (cache=" << GetParam() << ")";
  EXPECT_EQ(tally.mid_page_ends.load(), 0)
      << "reads that ended in the middle of a page the writer wrote whole";
}

// cache = "kernel" is left out since it writes through (test_full_tier.cc):
// under load a page-cache read racing the kernel's write-through of the
// rewrite sees pages the kernel has not filled yet (9217 of them in one run
// beside another test). A known gap of that mode, in docs/operations.md.
INSTANTIATE_TEST_SUITE_P(CacheModes, TornPagesTest, ::testing::Values("none"));

}  // namespace
}  // namespace tierfs::testing
