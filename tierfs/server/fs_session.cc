// The FUSE session: the operations table, connection set-up (init), and
// serve_mount(), which opens the regions, mounts, answers FUSE_INIT, drops
// privilege (privilege.h), reports the outcome of start-up and runs the
// multithreaded loop until fusermount3 -u or a signal
// (SIGTERM, SIGINT, SIGHUP via fuse_set_signal_handlers), then unmounts and
// releases the regions.
#include "tierfs/server/fs_session.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fuse_lowlevel.h>
#include <linux/capability.h>
#include <spdlog/spdlog.h>

#include <pthread.h>

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>

#include "tierfs/core/copy_guard.h"
#include "tierfs/server/backing_store.h"
#include "tierfs/server/bdi_tuning.h"
#include "tierfs/server/direct_io_mmap.h"
#include "tierfs/server/fuse_uring.h"
#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"
#include "tierfs/server/privilege.h"
#include "tierfs/server/request_gate.h"

namespace tierfs {

namespace {

// The privilege drop at FUSE_INIT (fs_init), set up and read by serve_mount:
// one server per process.
struct PrivilegeDrop {
  SeccompMode mode = SeccompMode::enforce;
  bool done = false;
  std::string error;  // fails the mount
} privilege_drop;

// Whether the kernel offered FUSE over io_uring at FUSE_INIT (fs_init).
bool uring_offered = false;

// What a request needs of the metadata log before it runs.
// - room: a change is refused before it happens when the log has no room
//   left (Journal::has_room: its state directory's file system is full):
//   replied ENOSPC rather than acknowledged and then lost to the next kill -9.
// - reserve: unlink and rmdir give space back and run on what is left of the
//   log's reserve, down to a floor (Journal::has_reserve); release and fsync
//   only log what is already there and are never refused.
enum class LogNeed { room, reserve };

// Whether an open changes the file: O_TRUNC, with any access mode (FUSE_OPEN
// carries it, atomic_o_trunc; fs_open truncates). Other opens change nothing.
bool open_truncates(fuse_ino_t /*ino*/, fuse_file_info* fi) {
  return (fi->flags & O_TRUNC) != 0;
}

template <auto Op, LogNeed need = LogNeed::room, auto changes = nullptr>
struct UnlessLogFull;
template <typename... Args, void (*Op)(fuse_req_t, Args...), LogNeed need, auto changes>
struct UnlessLogFull<Op, need, changes> {
  static void call(fuse_req_t req, Args... args) {
    bool logs = true;
    if constexpr (!std::is_null_pointer_v<decltype(changes)>) logs = changes(args...);
    Journal* journal = logs ? fs_of(req).journal() : nullptr;
    if (journal && !(need == LogNeed::room ? journal->has_room() : journal->has_reserve())) {
      fuse_reply_err(req, ENOSPC);
      return;
    }
    Op(req, args...);
  }
};

}  // namespace

fuse_lowlevel_ops make_operations() {
  fuse_lowlevel_ops ops{};
  ops.init = fs_init;
  ops.destroy = fs_destroy;
  ops.lookup = fs_lookup;
  ops.forget = fs_forget;
  ops.forget_multi = fs_forget_multi;
  ops.getattr = fs_getattr;
  ops.setattr = UnlessLogFull<fs_setattr>::call;
  ops.readlink = fs_readlink;
  ops.mknod = UnlessLogFull<fs_mknod>::call;
  ops.mkdir = UnlessLogFull<fs_mkdir>::call;
  ops.symlink = UnlessLogFull<fs_symlink>::call;
  ops.link = UnlessLogFull<fs_link>::call;
  ops.unlink = UnlessLogFull<fs_unlink, LogNeed::reserve>::call;
  ops.rmdir = UnlessLogFull<fs_rmdir, LogNeed::reserve>::call;
  ops.rename = UnlessLogFull<fs_rename>::call;
  ops.create = UnlessLogFull<fs_create>::call;
  ops.open = UnlessLogFull<fs_open, LogNeed::room, open_truncates>::call;
  ops.read = fs_read;
  ops.write_buf = UnlessLogFull<fs_write_buf>::call;
  ops.flush = fs_flush;
  ops.release = fs_release;
  ops.fsync = fs_fsync;
  ops.fallocate = UnlessLogFull<fs_fallocate>::call;
  ops.lseek = fs_lseek;
  ops.opendir = fs_opendir;
  ops.readdir = fs_readdir;
  ops.readdirplus = fs_readdirplus;
  ops.releasedir = fs_releasedir;
  ops.fsyncdir = fs_fsyncdir;
  ops.statfs = fs_statfs;
  ops.access = fs_access;
  ops.setxattr = UnlessLogFull<fs_setxattr>::call;
  ops.getxattr = fs_getxattr;
  ops.listxattr = fs_listxattr;
  ops.removexattr = UnlessLogFull<fs_removexattr>::call;
  ops.ioctl = fs_ioctl;
  return ops;
}

void fs_init(void* userdata, fuse_conn_info* conn) {
  auto& fs = *static_cast<Fs*>(userdata);
  const MountOptions& mount = fs.config().mount;
  // libfuse caps max_write at its buffer (1 MiB of pages in 3.14) and says so in the log.
  conn->max_write = static_cast<unsigned>(mount.max_io_bytes);
  // Must equal the max_read mount option; a page less than max_io with cache = "none".
  conn->max_read = static_cast<unsigned>(read_request_bytes(mount));
  conn->max_readahead = static_cast<unsigned>(readahead_bytes(mount));  // see bdi_tuning.cc
  // File handles (open_by_handle_at, NFS re-export) that outlive the kernel's
  // inode cache: the kernel then looks up "." of the handle's node id.
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // O_TRUNC comes with open, saving a setattr round trip (so the log-full
  // refusal looks at open too: open_truncates).
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // Writes are copied from the request buffer into interleaved region memory in
  // any case; splicing them through a pipe would add a copy, not save one.
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  // Never FUSE's writeback cache, on either cache mode: with it a buffered
  // write(2) only fills the page cache and the server first sees the bytes at
  // writeback, where ENOSPC can no longer fail the write that was already
  // acknowledged (issue 24: st_size grew past full tiers and the bytes were
  // dropped at close). The capability is fixed per connection at INIT and no
  // later request can take it back from an open file, so it cannot be turned
  // off only when the tiers fill. cache = "kernel" therefore caches reads and
  // writes through: each write(2) is a synchronous WRITE whose reply (bytes
  // stored, short count or ENOSPC) is what write(2) returns, and the page
  // cache keeps the written pages for later reads (fuse_perform_write).
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  // Set-ID bits are the server's to clear, by the kernel's rules
  // (setid_rules.h), the same with every libfuse; without HANDLE_KILLPRIV the kernel
  // keeps setgid that a writer outside the file's group must lose.
  if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV) {
    conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
    ask_handle_killpriv();  // libfuse 3.14's reply leaves it out
  }
#ifdef FUSE_CAP_HANDLE_KILLPRIV_V2
  // Version 2 makes the kernel mark the superblock SB_NOSEC (process_init_reply
  // in fs/fuse/inode.c): a file without set-ID bits is then flagged S_NOSEC
  // after its first privilege check, and file_remove_privs() skips the
  // security.capability GETXATTR that every write otherwise costs. Writes the
  // server never sees depend on it: passthrough writes (backing_file_write_iter
  // calls file_remove_privs on the FUSE file) and cache = "kernel" writes
  // (kiocb_modified) made one GETXATTR round trip per write(2): 2003 for 2000
  // 4 KiB writes. The server ignores the KILL_SUIDGID flags v2 adds: it drops
  // the bits by the same rules with or without them (setid_rules.h), and a
  // file with a set-ID bit never gets S_NOSEC, so the kernel still asks.
  if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV_V2) conn->want |= FUSE_CAP_HANDLE_KILLPRIV_V2;
#endif
  // The kernel data path (fs_kernel_path.cc): asked for only when a tier
  // takes it; a kernel that does not offer it fails the mount below.
  const bool wants_passthrough = fs.backing_store() != nullptr;
#ifdef TIERFS_KERNEL_PATH
  const bool passthrough = wants_passthrough && (conn->capable & FUSE_CAP_PASSTHROUGH) != 0;
  if (passthrough) conn->want |= FUSE_CAP_PASSTHROUGH;
#else
  const bool passthrough = false;
#endif
  // With asynchronous direct I/O the kernel turns any short write reply into
  // EIO and truncates the file back (fuse_get_res_by_io), so an O_DIRECT write
  // that fills the tier part-way on cache = "kernel" would lose what it wrote.
  // Synchronous direct I/O reports the bytes written, then ENOSPC, as
  // cache = "none" does.
  conn->want &= ~FUSE_CAP_ASYNC_DIO;
  // The kernel registers the iomap program only on a connection that
  // negotiated FUSE_IOMAP (flags2 bit 11). libfuse 3.14 has no field for
  // flags2 bits and cannot ask for it; a libfuse with the iomap series
  // (FUSE_IOMAP_TYPE_PURE_OVERWRITE in its headers) would report it here.
  fs.attach_iomap_after_init(false);
  // Every capability the set-up needed (mount, BPF load and attach) has been
  // used: drop them here, on the only thread (serve_mount answers INIT before
  // the loop starts), before any other thread starts; threads started from
  // here on (libfuse's workers, the mover) inherit the drop.
  if (!fs.config().mount.sandbox)
    spdlog::warn(
        "sandbox = false: the server keeps every capability and runs without no_new_privs "
        "or a seccomp filter");
  else
    privilege_drop.error = drop_privilege(
        privilege_drop.mode, fs.backing_store() != nullptr && fs.backing_store()->moves_files());
  if (wants_passthrough && !passthrough && privilege_drop.error.empty())
    privilege_drop.error =
        "a tier has data_path \"kernel\" but the kernel did not offer FUSE passthrough at "
        "FUSE_INIT (CONFIG_FUSE_PASSTHROUGH, Linux 6.9+)";
  privilege_drop.done = true;
  // Here, after the drop and not at start-up: a daemon forks after the
  // session is made, and a thread started before the fork would not exist.
  fs.mover().start();
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
  // Shared mmap of cache = "none" files (direct_io); older libfuse: direct_io_mmap.cc.
  if (conn->capable & FUSE_CAP_DIRECT_IO_ALLOW_MMAP) {
    conn->want |= FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
    note_direct_io_allow_mmap_granted();
  }
#endif
#ifdef FUSE_CAP_OVER_IO_URING
  // libfuse 3.18: used when the kernel offers it (fuse.enable_uring) and -o io_uring asks.
  uring_offered = (conn->capable_ext & FUSE_CAP_OVER_IO_URING) != 0;
  const char* uring = uring_offered ? "offered" : "not offered";
#else
  const char* uring = "not in this libfuse";
#endif
  spdlog::info(
      "FUSE connection: protocol {}.{}, max_write {}, cache={}, writeback cache {}, "
      "io_uring {}",
      conn->proto_major, conn->proto_minor, conn->max_write,
      mount.cache == CacheMode::none ? "none" : "kernel",
      (conn->want & FUSE_CAP_WRITEBACK_CACHE) ? "on" : "off", uring);
}

void fs_destroy(void* userdata) {
  // Unmount: a migration in progress gives up and leaves its file whole.
  static_cast<Fs*>(userdata)->mover().stop();
  spdlog::info("FUSE connection closed");
}

namespace {

// libfuse reports mount failures through its log, sometimes one message in
// several calls; the last complete error line becomes the user's one line.
std::string last_fuse_error;
std::string pending_fuse_line;

void log_from_libfuse(enum fuse_log_level level, const char* fmt, va_list ap) {
  char piece[512];
  vsnprintf(piece, sizeof piece, fmt, ap);
  pending_fuse_line += piece;
  if (pending_fuse_line.empty() || pending_fuse_line.back() != '\n') return;
  pending_fuse_line.pop_back();
  if (level <= FUSE_LOG_ERR) last_fuse_error = pending_fuse_line;
  if (level <= FUSE_LOG_INFO) note_uring_log_line(pending_fuse_line);
  spdlog::debug("libfuse: {}", pending_fuse_line);
  pending_fuse_line.clear();
}

std::string mount_options(const Config& config, const SessionOptions& options, bool io_uring) {
  std::string opts = "fsname=" + config.mount.fsname + ",subtype=tierfs";
  if (io_uring) opts += ",io_uring";
  opts += ",max_read=" + std::to_string(read_request_bytes(config.mount));
  if (config.mount.default_permissions) opts += ",default_permissions";
  if (config.mount.allow_other) opts += ",allow_other";
  for (const auto& extra : options.extra_options) opts += "," + extra;
  return opts;
}

// After FUSE_INIT: did the rings start? A failure fails a mount that
// requires them (returned) and is one warning otherwise: the mount then
// serves through /dev/fuse.
std::string check_uring_started(FeatureMode mode) {
  std::string why;
  if (!uring_offered)
    why = "the kernel did not offer FUSE over io_uring at FUSE_INIT";
  else if (!uring_start_failure().empty())
    why = "libfuse could not start its rings: " + uring_start_failure();
  if (why.empty()) {
    spdlog::info("FUSE over io_uring: on");
    return "";
  }
  if (mode == FeatureMode::required) return "io_uring = \"required\": " + why;
  spdlog::warn("FUSE over io_uring: off, {}; serving through /dev/fuse", why);
  return "";
}

// Region files created for this mount are the user's spill space once it is
// up; before that, a failed start-up removes them with the regions.
void keep_created_files(Storage& storage) {
  for (size_t t = 0; t < storage.tier_count(); ++t) {
    const Tier& tier = storage.tier(t);
    for (uint32_t i = 0; tier.has_regions() && i < tier.geometry().regions.size(); ++i)
      tier.region(i).keep_created_file();
  }
}

// Answers FUSE_INIT (the kernel's first request, queued by the mount) on this
// thread, before the loop starts its workers: fs_init attaches the BPF
// program while every capability is still there and drops privilege while
// this is the only thread. Returns false when the session ended first (a
// signal, an unmount).
bool answer_init(fuse_session* se) {
  fuse_buf buf{};
  bool answered = false;
  while (!answered && fuse_session_exited(se) == 0) {
    const int res = fuse_session_receive_buf(se, &buf);
    if (res == -EINTR) continue;
    if (res <= 0) break;
    fuse_session_process_buf(se, &buf);
    gate_leave();  // this thread reads no more: the loop's workers take over
    answered = true;
  }
  free(buf.mem);  // NOLINT(cppcoreguidelines-no-malloc): libfuse allocated it with malloc
  return answered && fuse_session_exited(se) == 0;
}

// SIGINT, SIGTERM and SIGHUP (the stop requests libfuse's handlers turn into
// the end of the session) are held back while the mount is set up and
// ignored once the session is over: by default they would end the process
// with its state half made or half released, leaving a state directory and
// shared memory behind for `tierfs cleanup` (a script's `fusermount3 -u;
// kill` did, every time). Held back, a stop request during start-up reaches
// libfuse's handler and ends the start-up the orderly way.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&stops_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stops_, sig);
    pthread_sigmask(SIG_BLOCK, &stops_, &previous_);
  }
  ~StopSignals() { deliver(); }
  // From here on libfuse's handlers take them (a pending one arrives now).
  void deliver() {
    if (!held_) return;
    held_ = false;
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  // The session is over: the server is already stopping.
  static void ignore() {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_IGN);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  sigset_t stops_{}, previous_{};
  bool held_ = true;
};

// libfuse's unmount: after a signal (the kernel still has the mount) root's
// umount2(MNT_DETACH), which needs CAP_SYS_ADMIN, raised on this thread only;
// after `fusermount3 -u` the connection is gone and nothing is unmounted.
void unmount_session(fuse_session* se) {
  const CapabilityWindow admin({CAP_SYS_ADMIN});
  fuse_session_unmount(se);
}

struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};

// A start-up that failed on a mount with nothing to adopt leaves no state
// directory behind; one that found a previous server's state keeps it.
void forget_new_state(std::unique_ptr<MountState>& state) {
  if (!state || !state->fresh()) return;
  // Detaching the kernel path's tmpfs needs CAP_SYS_ADMIN (raised only
  // after the drop: the window does nothing before it).
  const CapabilityWindow admin({CAP_SYS_ADMIN});
  try {
    state->remove_all();
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
}

// Opens the mount's metadata log in its state directory and rebuilds the
// namespace from it (throws one line when the log cannot be taken over).
// A mount of numa: tiers only keeps its log for the next server, not for the
// next boot: no fsync (LogDurability).
void attach_metadata_log(Fs& fs, const MountState& state) {
  auto journal = Journal::open(
      state.dir_fd(), state.path(), state.fresh(),
      fs.config().any_bytes_outlive_machine() ? LogDurability::storage : LogDurability::process);
  const ReplayReport& replay = journal->replay_report();
  const bool replayed = !state.fresh();
  fs.attach_journal(std::move(journal));
  if (!replayed) return;
  spdlog::info(
      "metadata log {}: {} inodes from checkpoint generation {} and {} journal frames in {:.3f} "
      "s{}{}",
      state.path(), fs.inode_count(), replay.generation, replay.journal_frames, replay.seconds,
      replay.torn_bytes ? fmt::format(", torn tail of {} bytes ignored ({})", replay.torn_bytes,
                                      replay.torn_reason)
                        : std::string(),
      replay.dropped_unlinked ? fmt::format(", {} unlinked inodes dropped", replay.dropped_unlinked)
                              : std::string());
}

// Clean unmount: memory goes back to the system; a scratch mount's state
// directory goes too, a persistent mount's stays for the next server.
void release_state(MountState& state, bool persistent, bool kernel_path) {
  // A scratch mount's kernel-path tmpfs is detached (umount2): CAP_SYS_ADMIN.
  std::optional<CapabilityWindow> admin;
  if (kernel_path && !persistent) admin.emplace(std::initializer_list<int>{CAP_SYS_ADMIN});
  try {
    if (persistent)
      state.remove_shared_memory();
    else
      state.remove_all();
  } catch (const std::exception& e) {
    spdlog::error("after unmount: {}", e.what());
  }
}

}  // namespace

int serve_mount(Config config, const SessionOptions& options, const StartupReport& report) {
  fuse_set_log_func(log_from_libfuse);
  if (std::string error = seccomp_mode_from_env(privilege_drop.mode); !error.empty()) {
    report.failed(error);
    return 1;
  }
  StopSignals stop_signals;  // destroyed after the guard below has cleaned up
  std::unique_ptr<MountState> state;
  std::unique_ptr<Fs> fs;
  const bool persistent = config.any_persistent();
  // Runs on every early return: regions first (they are unmapped with fs),
  // then the state directory when nothing in it was worth keeping.
  struct StartupGuard {
    std::unique_ptr<MountState>& state;
    std::unique_ptr<Fs>& fs;
    bool up = false;
    ~StartupGuard() {
      if (up) return;
      fs.reset();
      forget_new_state(state);
    }
  } guard{state, fs};
  // A SIGBUS in a data copy fails that request with EIO (copy_guard.h).
  install_copy_fault_handler();
  try {
    state = MountState::open(config, options.mountpoint, options.fresh);
    state->keep_default_size(config);
    if (!state->fresh())
      spdlog::info("adopting what the previous server left in {}", state->path());
    auto storage = Storage::open(config, state.get());
    fs = std::make_unique<Fs>(std::move(config), std::move(storage));
    fs->open_backing_store(state->dir_fd(), state->path());
    // The metadata log: replayed when the regions were adopted, else started empty.
    attach_metadata_log(*fs, *state);
    fs->adopt_backing_files();
    // Before the mount exists, so nobody sees the root with other attributes.
    const InodePtr root = fs->find(FUSE_ROOT_ID);
    if (options.root_uid) root->uid = *options.root_uid;
    if (options.root_gid) root->gid = *options.root_gid;
    if (options.root_mode) root->mode = S_IFDIR | *options.root_mode;
    {
      std::unique_lock guard(root->lock);
      fs->log_inode_locked(*root);
    }
  } catch (const std::exception& e) {
    report.failed(e.what());
    return 1;
  }

  const UringChoice uring = choose_io_uring(fs->config().mount.io_uring);
  if (!uring.use && fs->config().mount.io_uring == FeatureMode::required) {
    report.failed("io_uring = \"required\": " + uring.why_not);
    return 1;
  }
  if (!uring.why_not.empty()) spdlog::info("{}", uring.why_not);
  std::string opts = mount_options(fs->config(), options, uring.use);
  std::vector<const char*> argv = {"tierfs", "-o", opts.c_str()};
  if (options.debug) argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  // fuse_session_new adds to the argument list; free it on every way out.
  std::unique_ptr<fuse_args, decltype(&fuse_opt_free_args)> free_args(&args, fuse_opt_free_args);
  fuse_lowlevel_ops ops = make_operations();
  std::unique_ptr<fuse_session, SessionDeleter> session(
      fuse_session_new(&args, &ops, sizeof ops, fs.get()));
  if (!session) {
    report.failed("bad mount options '" + opts + "': " + last_fuse_error);
    return 1;
  }
  fs->set_session(session.get());
  if (fuse_set_signal_handlers(session.get()) != 0) {
    report.failed("cannot install signal handlers");
    return 1;
  }
  stop_signals.deliver();
  if (fuse_session_mount(session.get(), options.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(session.get());
    report.failed("cannot mount on " + options.mountpoint + ": " + last_fuse_error);
    return 1;
  }
  if (std::string error = fs->attach_iomap_program(fuse_session_fd(session.get()));
      !error.empty()) {
    unmount_session(session.get());
    fuse_remove_signal_handlers(session.get());
    report.failed(error);
    return 1;
  }
  if (const char* why = ask_direct_io_allow_mmap(session.get()); *why != 0) spdlog::warn("{}", why);
  tune_bdi(options.mountpoint, fs->config().mount);
  std::string error;
  if (!answer_init(session.get()) || !privilege_drop.done)
    error = "the mount ended before FUSE_INIT was answered";
  else
    error = privilege_drop.error;
  if (error.empty() && uring.use) error = check_uring_started(fs->config().mount.io_uring);
  if (!error.empty()) {
    unmount_session(session.get());
    fuse_remove_signal_handlers(session.get());
    report.failed(error);
    return 1;
  }
  keep_created_files(fs->storage());
  guard.up = true;
  spdlog::info("mounted {} on {} ({} tiers, {} free)", fs->config().source, options.mountpoint,
               fs->storage().tier_count(), fs->storage().free_bytes());
  for (const TierConfig& tier : fs->config().tiers)
    spdlog::info("tier {}: {} path: {}", tier.name, data_path_name(tier.data_path_choice.path),
                 tier.data_path_choice.reason);
  report.mounted();

  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(loop, 0);
  if (fs->config().mount.threads > 0)
    fuse_loop_cfg_set_max_threads(loop, fs->config().mount.threads);
  int loop_status = fuse_session_loop_mt(session.get(), loop);
  fuse_loop_cfg_destroy(loop);

  StopSignals::ignore();  // before libfuse's handlers go: no window with the default action
  unmount_session(session.get());
  fuse_remove_signal_handlers(session.get());
  session.reset();
  // A persistent mount's files stay: their metadata goes into a checkpoint.
  // A scratch mount's log goes with its state directory.
  fs->close_journal(persistent, state->dir_fd());
  // Persistent tiers keep their contents: blocks go back without being punched.
  fs->storage().prepare_unmount();
  const bool kernel_path = fs->backing_store() != nullptr;
  fs.reset();  // releases every region
  release_state(*state, persistent, kernel_path);
  spdlog::info("unmounted {}; capability windows: {} CAP_SYS_ADMIN, {} CAP_SYS_NICE",
               options.mountpoint, capability_windows(CAP_SYS_ADMIN),
               capability_windows(CAP_SYS_NICE));
  return loop_status < 0 ? 1 : 0;
}

}  // namespace tierfs
