// The reference FUSE server of the server-path benchmark: the least a FUSE
// server can do to serve file data, so that its speed is the ceiling of any
// FUSE server on this kernel and libfuse. One flat root directory, regular
// files created on demand, and one anonymous buffer that holds the bytes of
// every file at the file's own offsets (all files alias the same bytes: the
// benchmark measures the path, not the contents). It mounts the way tierfs
// does by default: libfuse3 low-level API, multithreaded loop, max_read and
// max_write 1 MiB, direct_io on every open (tierfs's cache = "none"), no
// splice, default_permissions, 1 s entry and attribute timeouts.
//
//   ref_fuse_server [--buffer-mib N] MOUNTPOINT     (stays in the foreground;
//   fusermount3 -u MOUNTPOINT or SIGTERM ends it)
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr unsigned kMaxIoBytes = 1 << 20;  // tierfs's default max_io
constexpr double kTimeoutS = 1.0;          // tierfs's entry and attribute timeout

struct File {
  fuse_ino_t ino = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  bool linked = true;
  uint64_t lookups = 0;                 // guarded by Server::lock
  std::atomic<uint64_t> size_bytes{0};  // atomic: the data path takes no lock
  timespec mtime{}, ctime{};            // guarded by Server::lock
};

struct Server {
  std::byte* buffer = nullptr;
  uint64_t buffer_bytes = 0;
  std::mutex lock;  // the name table and every file's metadata
  std::unordered_map<std::string, fuse_ino_t> names;
  std::unordered_map<fuse_ino_t, std::unique_ptr<File>> files;
  fuse_ino_t next_ino = FUSE_ROOT_ID + 1;
  timespec started{};
};

Server& server_of(fuse_req_t req) {
  return *static_cast<Server*>(fuse_req_userdata(req));
}

File* file_of(const fuse_file_info* fi) {
  return reinterpret_cast<File*>(fi->fh);  // NOLINT(performance-no-int-to-ptr)
}

// Attributes of the root (ino 1) or a file; caller holds Server::lock.
struct stat attr_of(const Server& server, const File* file) {
  struct stat st {};
  st.st_blksize = 4096;
  if (file == nullptr) {
    st.st_ino = FUSE_ROOT_ID;
    st.st_mode = S_IFDIR | 0755;
    st.st_nlink = 2;
    st.st_atim = st.st_mtim = st.st_ctim = server.started;
    return st;
  }
  st.st_ino = file->ino;
  st.st_mode = file->mode;
  st.st_nlink = file->linked ? 1 : 0;
  st.st_uid = file->uid;
  st.st_gid = file->gid;
  st.st_size = static_cast<off_t>(file->size_bytes.load(std::memory_order_relaxed));
  st.st_blocks = (st.st_size + 511) / 512;
  st.st_atim = st.st_mtim = file->mtime;
  st.st_ctim = file->ctime;
  return st;
}

fuse_entry_param entry_of(const Server& server, File& file) {
  fuse_entry_param entry{};
  entry.ino = file.ino;
  entry.generation = 1;
  entry.attr = attr_of(server, &file);
  entry.attr_timeout = kTimeoutS;
  entry.entry_timeout = kTimeoutS;
  ++file.lookups;
  return entry;
}

// Caller holds Server::lock.
File* find(Server& server, fuse_ino_t ino) {
  auto it = server.files.find(ino);
  return it == server.files.end() ? nullptr : it->second.get();
}

void ref_init(void* /*userdata*/, fuse_conn_info* conn) {
  conn->max_write = kMaxIoBytes;
  conn->max_read = kMaxIoBytes;
  conn->max_readahead = kMaxIoBytes;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

void ref_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Server& server = server_of(req);
  if (parent != FUSE_ROOT_ID) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  std::unique_lock guard(server.lock);
  auto it = server.names.find(name);
  if (it == server.names.end()) {
    guard.unlock();
    fuse_entry_param negative{};
    negative.entry_timeout = kTimeoutS;
    fuse_reply_entry(req, &negative);
    return;
  }
  fuse_entry_param entry = entry_of(server, *server.files.at(it->second));
  guard.unlock();
  fuse_reply_entry(req, &entry);
}

void ref_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Server& server = server_of(req);
  {
    std::lock_guard guard(server.lock);
    if (File* file = find(server, ino)) {
      file->lookups -= std::min(file->lookups, nlookup);
      if (file->lookups == 0 && !file->linked) server.files.erase(ino);
    }
  }
  fuse_reply_none(req);
}

void ref_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Server& server = server_of(req);
  std::unique_lock guard(server.lock);
  File* file = find(server, ino);
  if (ino != FUSE_ROOT_ID && file == nullptr) {
    guard.unlock();
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st = attr_of(server, file);
  guard.unlock();
  fuse_reply_attr(req, &st, kTimeoutS);
}

// Enough for ftruncate (fio) and utimes/chmod; sizes past the buffer are refused.
void ref_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                 fuse_file_info* /*fi*/) {
  Server& server = server_of(req);
  std::unique_lock guard(server.lock);
  File* file = find(server, ino);
  int err = file == nullptr ? (ino == FUSE_ROOT_ID ? EPERM : ENOENT) : 0;
  if (!err && (to_set & FUSE_SET_ATTR_SIZE) &&
      static_cast<uint64_t>(attr->st_size) > server.buffer_bytes)
    err = EFBIG;
  if (err) {
    guard.unlock();
    fuse_reply_err(req, err);
    return;
  }
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  if (to_set & FUSE_SET_ATTR_SIZE) file->size_bytes = static_cast<uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_MODE) file->mode = S_IFREG | (attr->st_mode & 07777);
  if (to_set & FUSE_SET_ATTR_UID) file->uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) file->gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_MTIME) file->mtime = attr->st_mtim;
  if (to_set & (FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_SIZE)) file->mtime = now;
  file->ctime = now;
  struct stat st = attr_of(server, file);
  guard.unlock();
  fuse_reply_attr(req, &st, kTimeoutS);
}

void ref_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                fuse_file_info* fi) {
  Server& server = server_of(req);
  if (parent != FUSE_ROOT_ID || strlen(name) > NAME_MAX) {
    fuse_reply_err(req, parent != FUSE_ROOT_ID ? ENOENT : ENAMETOOLONG);
    return;
  }
  std::unique_lock guard(server.lock);
  File* file = nullptr;
  if (auto it = server.names.find(name); it != server.names.end()) {
    if (fi->flags & O_EXCL) {
      guard.unlock();
      fuse_reply_err(req, EEXIST);
      return;
    }
    file = server.files.at(it->second).get();
    if (fi->flags & O_TRUNC) file->size_bytes = 0;
  } else {
    auto made = std::make_unique<File>();
    made->ino = server.next_ino++;
    made->mode = S_IFREG | (mode & 07777);
    made->uid = fuse_req_ctx(req)->uid;
    made->gid = fuse_req_ctx(req)->gid;
    clock_gettime(CLOCK_REALTIME, &made->mtime);
    made->ctime = made->mtime;
    file = made.get();
    server.names.emplace(name, file->ino);
    server.files.emplace(file->ino, std::move(made));
  }
  fuse_entry_param entry = entry_of(server, *file);
  guard.unlock();
  fi->direct_io = 1;
  fi->fh = reinterpret_cast<uint64_t>(file);
  fuse_reply_create(req, &entry, fi);
}

void ref_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Server& server = server_of(req);
  std::unique_lock guard(server.lock);
  File* file = find(server, ino);
  guard.unlock();
  if (file == nullptr) {
    fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
    return;
  }
  if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) file->size_bytes = 0;
  fi->direct_io = 1;
  fi->fh = reinterpret_cast<uint64_t>(file);
  fuse_reply_open(req, fi);
}

// The data path: no lock, one reply straight from the buffer.
void ref_read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Server& server = server_of(req);
  const uint64_t file_size = file_of(fi)->size_bytes.load(std::memory_order_relaxed);
  const auto at = static_cast<uint64_t>(off);
  const size_t n =
      at >= file_size ? 0 : static_cast<size_t>(std::min<uint64_t>(size, file_size - at));
  fuse_reply_buf(req, reinterpret_cast<const char*>(server.buffer + at), n);
}

void ref_write(fuse_req_t req, fuse_ino_t /*ino*/, const char* data, size_t size, off_t off,
               fuse_file_info* fi) {
  Server& server = server_of(req);
  const auto at = static_cast<uint64_t>(off);
  if (at > server.buffer_bytes || size > server.buffer_bytes - at) {
    fuse_reply_err(req, EFBIG);
    return;
  }
  std::memcpy(server.buffer + at, data, size);
  std::atomic<uint64_t>& file_size = file_of(fi)->size_bytes;
  uint64_t seen = file_size.load(std::memory_order_relaxed);
  while (seen < at + size && !file_size.compare_exchange_weak(seen, at + size)) {
  }
  fuse_reply_write(req, size);
}

void ref_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Server& server = server_of(req);
  std::unique_lock guard(server.lock);
  auto it = parent == FUSE_ROOT_ID ? server.names.find(name) : server.names.end();
  if (it == server.names.end()) {
    guard.unlock();
    fuse_reply_err(req, ENOENT);
    return;
  }
  File& file = *server.files.at(it->second);
  server.names.erase(it);
  file.linked = false;  // the kernel still holds a lookup: forget drops the file
  guard.unlock();
  fuse_reply_err(req, 0);
}

// One page of entries per call: "." and ".." then the names, offsets 1, 2, 3...
void ref_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* /*fi*/) {
  Server& server = server_of(req);
  if (ino != FUSE_ROOT_ID) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  std::vector<std::pair<std::string, fuse_ino_t>> entries = {{".", FUSE_ROOT_ID},
                                                             {"..", FUSE_ROOT_ID}};
  {
    std::lock_guard guard(server.lock);
    for (const auto& [name, file_ino] : server.names) entries.emplace_back(name, file_ino);
  }
  std::vector<char> page(size);
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < entries.size(); ++i) {
    struct stat st {};
    st.st_ino = entries[i].second;
    st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
    size_t need = fuse_add_direntry(req, page.data() + used, size - used, entries[i].first.c_str(),
                                    &st, static_cast<off_t>(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, page.data(), used);
}

void ref_statfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  Server& server = server_of(req);
  struct statvfs st {};
  st.f_bsize = st.f_frsize = 4096;
  st.f_blocks = st.f_bfree = st.f_bavail = server.buffer_bytes / 4096;
  st.f_files = st.f_ffree = st.f_favail = 1ULL << 32;
  st.f_namemax = NAME_MAX;
  fuse_reply_statfs(req, &st);
}

struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};

}  // namespace

namespace {

int serve(uint64_t buffer_mib, const std::string& mountpoint) {
  Server server;
  server.buffer_bytes = buffer_mib << 20;
  // Reserved, not committed: pages appear as files are first written.
  void* buffer = mmap(nullptr, server.buffer_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (buffer == MAP_FAILED) {
    std::fprintf(stderr, "ref_fuse_server: cannot map %llu MiB: %s\n",
                 static_cast<unsigned long long>(buffer_mib), strerror(errno));
    return 1;
  }
  server.buffer = static_cast<std::byte*>(buffer);
  clock_gettime(CLOCK_REALTIME, &server.started);

  fuse_lowlevel_ops ops{};
  ops.init = ref_init;
  ops.lookup = ref_lookup;
  ops.forget = ref_forget;
  ops.getattr = ref_getattr;
  ops.setattr = ref_setattr;
  ops.create = ref_create;
  ops.open = ref_open;
  ops.read = ref_read;
  ops.write = ref_write;
  ops.unlink = ref_unlink;
  ops.readdir = ref_readdir;
  ops.statfs = ref_statfs;

  const std::string opts = "fsname=ref_fuse_server,subtype=ref,default_permissions,max_read=" +
                           std::to_string(kMaxIoBytes);
  std::vector<const char*> args_v = {"ref_fuse_server", "-o", opts.c_str()};
  fuse_args args =
      FUSE_ARGS_INIT(static_cast<int>(args_v.size()), const_cast<char**>(args_v.data()));
  std::unique_ptr<fuse_session, SessionDeleter> session(
      fuse_session_new(&args, &ops, sizeof ops, &server));
  if (!session) {
    std::fprintf(stderr, "ref_fuse_server: cannot create the FUSE session\n");
    return 1;
  }
  if (fuse_set_signal_handlers(session.get()) != 0 ||
      fuse_session_mount(session.get(), mountpoint.c_str()) != 0) {
    std::fprintf(stderr, "ref_fuse_server: cannot mount on %s\n", mountpoint.c_str());
    return 1;
  }
  // The loop tierfs runs: libfuse's default thread count, one /dev/fuse descriptor.
  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(loop, 0);
  const int status = fuse_session_loop_mt(session.get(), loop);
  fuse_loop_cfg_destroy(loop);
  fuse_session_unmount(session.get());
  fuse_remove_signal_handlers(session.get());
  return status < 0 ? 1 : 0;
}

}  // namespace

static int run_main(int argc, char** argv) {
  CLI::App app{"Minimal memory-backed FUSE server: the reference of bench/server_bench"};
  uint64_t buffer_mib = 4096;
  std::string mountpoint;
  app.add_option("--buffer-mib", buffer_mib, "bytes every file's data may reach, in MiB")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20));
  app.add_option("MOUNTPOINT", mountpoint, "directory to mount on")->required();
  try {
    app.parse(argc, argv);
    return serve(buffer_mib, mountpoint);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ref_fuse_server: %s\n", e.what());
    return 1;
  }
}

// The last line of defence: run_main turns errors into one line itself, and
// anything that still escapes (an error while printing one) ends here.
int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("ref_fuse_server: unexpected error\n", stderr);
    return 1;
  }
}
