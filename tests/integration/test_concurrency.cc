// Several threads on a real mount: writers on separate files, on disjoint
// stripes of one shared file, appenders with O_APPEND on one file, racing
// O_EXCL creators, and writers that run a small tier out of space together.
// Every test checks the bytes afterwards; none measures time.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"

namespace tierfs::testing {
namespace {

using ConcurrencyTest = MountTest;

constexpr int kThreads = 4;

// Runs body(t) on kThreads threads and joins them.
template <typename Body>
void on_threads(Body body) {
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(body, t);
  for (auto& thread : threads) thread.join();
}

TEST_F(ConcurrencyTest, WritersOnSeparateFilesKeepEachFileIntact) {
  constexpr size_t kBytes = 6 << 20;
  constexpr size_t kPiece = 64 << 10;
  std::atomic<int> errors{0};
  on_threads([&](int t) {
    const std::string data = pattern(kBytes, 100 + t);
    int fd = open(mount_.path("f" + std::to_string(t)).c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
      ++errors;
      return;
    }
    // Pieces in a scrambled order: extents are filled in out of order and holes close up.
    for (size_t i = 0; i < kBytes / kPiece; ++i) {
      const size_t piece = (i * 37 + static_cast<size_t>(t)) % (kBytes / kPiece);
      if (pwrite(fd, data.data() + piece * kPiece, kPiece, static_cast<off_t>(piece * kPiece)) !=
          static_cast<ssize_t>(kPiece))
        ++errors;
    }
    close(fd);
  });
  EXPECT_EQ(errors.load(), 0);
  for (int t = 0; t < kThreads; ++t)
    EXPECT_TRUE(read_all(mount_.path("f" + std::to_string(t))) == pattern(kBytes, 100 + t))
        << "file " << t;
}

TEST_F(ConcurrencyTest, WritersOnDisjointStripesOfASharedFile) {
  constexpr size_t kStripe = 12 << 10;  // not a multiple of the 4KiB granularity on purpose
  constexpr size_t kStripes = 512;
  const std::string data = pattern(kStripe * kStripes, 7);
  std::atomic<int> errors{0};
  on_threads([&](int t) {
    int fd = open(mount_.path("shared").c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
      ++errors;
      return;
    }
    for (size_t s = static_cast<size_t>(t); s < kStripes; s += kThreads)
      if (pwrite(fd, data.data() + s * kStripe, kStripe, static_cast<off_t>(s * kStripe)) !=
          static_cast<ssize_t>(kStripe))
        ++errors;
    close(fd);
  });
  EXPECT_EQ(errors.load(), 0);
  const std::string back = read_all(mount_.path("shared"));
  ASSERT_EQ(back.size(), data.size());
  for (size_t s = 0; s < kStripes; ++s)
    ASSERT_TRUE(back.compare(s * kStripe, kStripe, data, s * kStripe, kStripe) == 0)
        << "stripe " << s << " written by thread " << s % kThreads;
}

TEST_F(ConcurrencyTest, ReadersDuringOverwritesSeeTheFullSizeAndOnlyWrittenBytes) {
  // Writes are not atomic against reads, so a reader may see a mix of two
  // rounds; it must never see a short file or a byte that no round wrote.
  constexpr size_t kBytes = 1 << 20;
  write_all(mount_.path("f"), std::string(kBytes, 'a'));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread writer([&] {
    int fd = open(mount_.path("f").c_str(), O_WRONLY);
    for (int round = 0; round < 40 && fd >= 0; ++round) {
      const std::string fill(kBytes, static_cast<char>('a' + round % 26));
      if (pwrite(fd, fill.data(), fill.size(), 0) != static_cast<ssize_t>(kBytes)) ++bad;
    }
    if (fd >= 0) close(fd);
    stop = true;
  });
  std::vector<std::thread> readers;
  readers.reserve(2);
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&] {
      while (!stop) {
        const std::string back = read_all(mount_.path("f"));
        if (back.size() != kBytes) ++bad;
        for (char c : back)
          if (c < 'a' || c > 'z') {
            ++bad;
            break;
          }
      }
    });
  writer.join();
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(bad.load(), 0) << "a reader saw a short file or bytes nobody wrote";
}

TEST_F(ConcurrencyTest, AppendersOnOneFileLoseNoRecord) {
  constexpr int kRecords = 500;
  constexpr size_t kRecord = 100;
  std::atomic<int> errors{0};
  on_threads([&](int t) {
    int fd = open(mount_.path("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
      ++errors;
      return;
    }
    for (int i = 0; i < kRecords; ++i) {
      char record[kRecord];
      std::memset(record, 'a' + t, kRecord);
      std::snprintf(record, 16, "%d:%05d", t, i);
      record[kRecord - 1] = '\n';
      if (write(fd, record, kRecord) != static_cast<ssize_t>(kRecord)) ++errors;
    }
    close(fd);
  });
  EXPECT_EQ(errors.load(), 0);
  const std::string log = read_all(mount_.path("log"));
  ASSERT_EQ(log.size(), kThreads * kRecords * kRecord) << "every append lands past the others";
  std::map<int, int> next;  // thread -> next record number expected
  for (size_t at = 0; at < log.size(); at += kRecord) {
    int t = -1, i = -1;
    ASSERT_EQ(std::sscanf(log.c_str() + at, "%d:%d", &t, &i), 2) << "record at " << at;
    ASSERT_TRUE(t >= 0 && t < kThreads) << "record at " << at;
    EXPECT_EQ(i, next[t]++) << "thread " << t << "'s records keep their order";
    for (size_t k = 16; k < kRecord - 1; ++k)
      ASSERT_EQ(log[at + k], 'a' + t) << "record at " << at << " was overwritten by another";
  }
}

TEST_F(ConcurrencyTest, RacingExclusiveCreatesHaveExactlyOneWinnerPerName) {
  constexpr int kNames = 200;
  std::vector<std::atomic<int>> winners(kNames);
  std::atomic<int> unexpected{0};
  on_threads([&](int t) {
    for (int n = 0; n < kNames; ++n) {
      int fd =
          open(mount_.path("n" + std::to_string(n)).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (fd >= 0) {
        ++winners[n];
        const char id = static_cast<char>('0' + t);
        if (write(fd, &id, 1) != 1) ++unexpected;
        close(fd);
      } else if (errno != EEXIST) {
        ++unexpected;
      }
    }
  });
  EXPECT_EQ(unexpected.load(), 0);
  for (int n = 0; n < kNames; ++n) {
    EXPECT_EQ(winners[n].load(), 1) << "name n" << n;
    EXPECT_EQ(read_all(mount_.path("n" + std::to_string(n))).size(), 1u) << "name n" << n;
  }
}

TEST_F(ConcurrencyTest, WritersThatFillATierTogetherKeepWhatWasAcknowledged) {
  TestConfig config;
  config.tiers.push_back({"tiny", {"numa:0"}, "8MiB", "4KiB"});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  const std::string keep = pattern(1 << 20, 3);
  write_all(mount_.path("keep"), keep);
  std::vector<size_t> acknowledged(kThreads, 0);
  std::vector<int> last_error(kThreads, 0);
  on_threads([&](int t) {
    const std::string chunk = pattern(96 << 10, 200 + t);
    int fd = open(mount_.path("hog" + std::to_string(t)).c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return;
    for (;;) {
      const ssize_t n = write(fd, chunk.data(), chunk.size());
      if (n < 0) {
        last_error[t] = errno;
        break;
      }
      acknowledged[t] += static_cast<size_t>(n);
      if (acknowledged[t] > (64u << 20)) break;  // never: the tier holds 8MiB
    }
    close(fd);
  });
  size_t total = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(last_error[t], ENOSPC) << "thread " << t << " ends on ENOSPC";
    total += acknowledged[t];
    const std::string chunk = pattern(96 << 10, 200 + t);
    const std::string back = read_all(mount_.path("hog" + std::to_string(t)));
    ASSERT_EQ(back.size(), acknowledged[t]) << "the size is what was acknowledged";
    for (size_t at = 0; at < back.size(); at += chunk.size()) {
      const size_t n = std::min(chunk.size(), back.size() - at);
      ASSERT_TRUE(back.compare(at, n, chunk, 0, n) == 0) << "hog" << t << " at " << at;
    }
  }
  EXPECT_LE(total + keep.size(), size_t{8} << 20);
  EXPECT_GE(total + keep.size(), size_t{6} << 20) << "the tier filled up, not an early ENOSPC";
  EXPECT_TRUE(read_all(mount_.path("keep")) == keep) << "a full tier must not corrupt other files";
}

}  // namespace
}  // namespace tierfs::testing
