// The request gate (tierfs/server/request_gate.h) over a pipe standing in for
// /dev/fuse: poll(2) and read(2) behave alike for it.
#include "tierfs/server/request_gate.h"

#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace tierfs {
namespace {

class Pipe {
 public:
  Pipe() { EXPECT_EQ(pipe(fds_), 0); }
  ~Pipe() {
    close(fds_[0]);
    close(fds_[1]);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  int read_end() const { return fds_[0]; }
  // Queues one request: a header and, for READ and WRITE, the data size.
  void send(uint32_t opcode, uint32_t size = 0) const {
    std::vector<char> bytes(sizeof(fuse_in_header) + sizeof(fuse_read_in));
    fuse_in_header in{};
    in.len = static_cast<uint32_t>(bytes.size());
    in.opcode = opcode;
    fuse_read_in read_in{};
    read_in.size = size;
    std::memcpy(bytes.data(), &in, sizeof in);
    std::memcpy(bytes.data() + sizeof in, &read_in, sizeof read_in);
    ASSERT_EQ(write(fds_[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // What a worker does for one request: gate, read, gate.
  void serve_one() const {
    gate_before_read(fds_[0]);
    char buf[sizeof(fuse_in_header) + sizeof(fuse_read_in)];
    const ssize_t n = read(fds_[0], buf, sizeof buf);
    ASSERT_EQ(n, static_cast<ssize_t>(sizeof buf));
    gate_after_read(fds_[0], buf, n);
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(RequestGate, QuickRequestsKeepTheReaderAndSlowOnesHandOver) {
  EXPECT_TRUE(gate_keeps_request(FUSE_READ, 4096));
  EXPECT_TRUE(gate_keeps_request(FUSE_WRITE, 64 << 10));
  EXPECT_FALSE(gate_keeps_request(FUSE_WRITE, 1 << 20));
  EXPECT_FALSE(gate_keeps_request(FUSE_READ, 1 << 20));
  EXPECT_TRUE(gate_keeps_request(FUSE_GETATTR, 0));
  EXPECT_TRUE(gate_keeps_request(FUSE_LOOKUP, 0));
  EXPECT_FALSE(gate_keeps_request(FUSE_FSYNC, 0));
  EXPECT_FALSE(gate_keeps_request(FUSE_IOCTL, 0));
  EXPECT_FALSE(gate_keeps_request(FUSE_SETXATTR, 0));
  EXPECT_FALSE(gate_keeps_request(FUSE_FALLOCATE, 0));
  EXPECT_FALSE(gate_keeps_request(FUSE_INIT, 0));
}

// A lone client: the worker that served its quick request reads the next one
// too; another idle worker waits until a slow request hands the reading over.
TEST(RequestGate, LoneClientIsServedByOneWorkerUntilASlowRequest) {
  Pipe dev;
  dev.send(FUSE_READ, 4096);
  dev.serve_one();  // this thread now holds the reading
  std::atomic<bool> other_reads{false};
  std::thread other([&] {
    gate_before_read(dev.read_end());
    other_reads = true;
    gate_leave();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(other_reads.load()) << "a second worker read while the lone client's holder kept it";
  dev.send(FUSE_GETATTR);
  dev.serve_one();  // quick, nobody queued: still here
  EXPECT_FALSE(other_reads.load());
  dev.send(FUSE_FSYNC);
  dev.serve_one();  // slow: hands over
  other.join();
  EXPECT_TRUE(other_reads.load());
  gate_leave();
}

// A kept request that is about to wait for a lock lets another worker read.
TEST(RequestGate, HandOverLetsAnotherWorkerRead) {
  Pipe dev;
  dev.send(FUSE_WRITE, 4096);
  dev.serve_one();  // kept: a lone client's quick request
  gate_hand_over();
  std::atomic<bool> other_reads{false};
  std::thread other([&] {
    gate_before_read(dev.read_end());
    other_reads = true;
    gate_leave();
  });
  other.join();  // would wait for ever (test timeout) without the hand-over
  EXPECT_TRUE(other_reads.load());
  gate_leave();
}

// Requests queued behind the one read: the reading goes on to another worker.
TEST(RequestGate, QueuedRequestsHandOver) {
  Pipe dev;
  dev.send(FUSE_READ, 4096);
  dev.send(FUSE_READ, 4096);
  dev.serve_one();  // the second one is queued: hands over
  char queued[sizeof(fuse_in_header) + sizeof(fuse_read_in)];
  ASSERT_EQ(read(dev.read_end(), queued, sizeof queued), static_cast<ssize_t>(sizeof queued));
  // The queue is empty again: a worker gets past the gate only with the token.
  std::atomic<bool> other_reads{false};
  std::thread other([&] {
    gate_before_read(dev.read_end());
    other_reads = true;
    gate_leave();
  });
  other.join();  // would wait for ever (test timeout) had the first worker kept the reading
  EXPECT_TRUE(other_reads.load());
  gate_leave();
}

}  // namespace
}  // namespace tierfs
