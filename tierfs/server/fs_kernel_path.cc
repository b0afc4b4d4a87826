// The seam between the two data paths on the server side (STYLE.md rule 11):
// which path a file takes is decided here, once, when it gets its data (a
// new file takes its preferred tier's path; a restart keeps the path each
// file had), and an open of a kernel-path file is answered here with FUSE
// passthrough onto its backing file. Every other FUSE operation works on
// FileData, which forwards to the backing file, and never asks.
#include <fcntl.h>
#include <linux/capability.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <shared_mutex>
#include <stdexcept>

#include "tierfs/server/backing_store.h"
#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"
#include "tierfs/server/privilege.h"

namespace tierfs {

void Fs::open_backing_store(int state_dir_fd, const std::string& state_dir) {
  backing_store_ = BackingStore::open(config_, state_dir_fd, state_dir);
  // The server asks leases of backing files (kernel_attrs_settled, the held
  // moves), dropped at once. An open for writing meanwhile breaks the lease,
  // and the kernel then signals the holder with SIGIO, whose default action
  // ends the process (seen: a child's open during a parent's lease).
  if (backing_store_) std::signal(SIGIO, SIG_IGN);
}

int Fs::give_data_path(Inode& inode, bool for_open) {
  if (!backing_store_ || !inode.is_regular()) return 0;
  uint32_t tier = inode.data->preferred_tier();
  if (!backing_store_->serves(tier)) return 0;
  // A full tier's new files start on the tier its files' new pages go to.
  if (const uint32_t spill = mover_->new_file_tier(tier); spill != tier) {
    tier = spill;
    inode.data->set_preferred_tier(tier);
  }
  int err = 0;
  std::string error;
  auto file = backing_store_->open_file(inode.ino, tier, true, err, error, for_open);
  if (!file) {
    spdlog::error("kernel path: {}", error);
    return err;
  }
  inode.data->attach_backing(std::move(file));
  return 0;
}

void Fs::adopt_backing_files() {
  if (!backing_store_) return;
  size_t adopted = 0;
  for (const BackingStore::Found& found : backing_store_->files()) {
    InodePtr inode = find(found.ino);
    std::unique_lock<std::shared_mutex> guard;
    if (inode) guard = std::unique_lock(inode->lock);
    // A file unlinked (and dropped from the log) before a crash, or one a
    // migration to the server path finished with (its record has extents):
    // its bytes belong to nobody.
    if (!inode || !inode->is_regular() || inode->data_released || inode->data->backing() ||
        !inode->data->extents().empty()) {
      backing_store_->remove(found);
      continue;
    }
    // The name records the tier; a tier this configuration no longer has
    // on the kernel path hands its files to one that shares the tmpfs.
    const uint32_t tier =
        found.tier ? *found.tier
                   : backing_store_->fallback_tier(found.store, inode->data->preferred_tier());
    int err = 0;
    std::string error;
    auto file = backing_store_->adopt(found, tier, err, error);
    if (!file) throw std::runtime_error("kernel path: " + error);
    inode->data->attach_backing(std::move(file));
    // New data goes where the file is (a crash may have come between the
    // rename that moved it and the log record of its preferred tier).
    inode->data->set_preferred_tier(tier);
    inode->size = inode->data->size(inode->size);
    ++adopted;
  }
  if (adopted != 0) spdlog::info("kernel path: adopted {} backing files", adopted);
}

DataPath Fs::data_path_of(const Inode& inode) const {
  return inode.is_regular() && !inode.data_released && inode.data->backing() ? DataPath::kernel
                                                                             : DataPath::server;
}

// A kernel-path file's attributes are its backing file's. The kernel's FUSE
// inode sees every change of them but one: passthrough writes forget what it
// keeps (fuse_write_update_attr), truncate, fallocate and utimensat are
// upcalls whose replies replace it, the server's own changes tell it. The
// one it cannot see is a store through a shared mapping of the backing file
// (a passthrough mmap maps the backing file itself): mtime and blocks move.
// So the kernel keeps the attributes for long only while no such store can
// come: no writable handle is open (a read-only one maps nothing writable)
// and nothing else writes the backing file (a mapping that outlived its
// descriptor; a read lease shows it, asked once per writable passthrough
// open, since only those hand the file out for writing). A new
// file in its CREATE's reply is empty and no other process has it yet:
// nothing can be stored through a mapping before a write, truncate or
// fallocate, which the kernel sees. The next writable passthrough open
// makes the kernel forget what it keeps (open_data_path).
bool Fs::kernel_attrs_settled(const Inode& inode, bool made_empty) const {
  const BackingFile* backing = inode.data->backing();
  if (!made_empty) {
    if (inode.writable_handles.load() != 0) return false;
    if (!inode.kernel_unwritten.load()) {
      // Leases off (nullopt): nobody can tell, so the kernel asks each time.
      if (backing->written_elsewhere() != std::optional(false)) return false;
      inode.kernel_unwritten.store(true);
    }
  }
  inode.kernel_attrs_kept.store(true);
  return true;
}

// The server's own answer to an open: the cache mode of the server path.
// FUSE_DEV_IOC_BACKING_CLOSE checks CAP_SYS_ADMIN as the open does
// (fs/fuse/backing.c): raised in this thread for the ioctl only.
static void close_backing_id(fuse_req_t req, int backing_id) {
#ifdef TIERFS_KERNEL_PATH
  const CapabilityWindow admin({CAP_SYS_ADMIN});
  fuse_passthrough_close(req, backing_id);
#else
  (void)req;
  (void)backing_id;
#endif
}

static void serve_by_server(Fs& fs, Inode& inode, fuse_file_info* fi) {
  ++inode.server_opens;
  const BackingFile* backing = inode.data && !inode.data_released ? inode.data->backing() : nullptr;
  if (fs.config().mount.cache == CacheMode::none) {
    fi->direct_io = 1;
    fi->keep_cache = 0;
  } else if (backing != nullptr) {
    // A kernel-path file served by the server for now (a migration runs, a
    // held move waits for it, or handles opened before one are open): what
    // passthrough wrote since this kernel cached pages is in no page it holds.
    fi->direct_io = 0;
    fi->keep_cache = 0;
  } else {
    fi->direct_io = 0;
    fi->keep_cache = 1;  // every change goes through this kernel, so its cache stays valid
  }
}

int open_data_path(Fs& fs, fuse_req_t req, Inode& inode, fuse_file_info* fi) {
  std::unique_lock guard(inode.lock);
  // A create's descriptor of the new backing file (give_data_path kept it):
  // taken whatever the answer, so that it outlives no request; closed here
  // unless the registration below uses it.
  BackingFile* made = inode.data ? inode.data->backing() : nullptr;
  BackingFile::Fd created = made != nullptr ? made->take_created() : BackingFile::Fd(-1);
  BackingFile* backing = inode.data_released ? nullptr : inode.data->backing();
  const bool passthrough_open = backing != nullptr && backing->passthrough_opens != 0;
  // Beside an open passthrough handle the kernel takes nothing but another
  // passthrough open: any other answer (direct I/O too) fails the open with
  // EIO in the kernel (fuse_file_io_open, "FOPEN_PASSTHROUGH expected"; what
  // made opens racing a move fail). Otherwise the server answers while a
  // migration watches the file (the kernel must write nothing it does not
  // see), while a held move waits for its last passthrough release or
  // mapping (so that it can happen), and beside handles it answered (the kernel refuses a
  // passthrough open beside a cached one).
  if (backing == nullptr ||
      (!passthrough_open &&
       (inode.server_opens != 0 || inode.data->watching_changes() || inode.held_move_tier >= 0))) {
    serve_by_server(fs, inode, fi);
    return 0;
  }
  // A read-only O_NONBLOCK open (`tierfs migrate` sends its ioctl on one)
  // with no passthrough handle open: direct I/O through the server, which
  // takes no io mode in the kernel, so it holds back neither a move off the
  // kernel path nor, once open, the passthrough opens that may follow it.
  // Not before: the kernel checks an open's io mode when its opener runs
  // after this reply, and a passthrough open answered meanwhile may get
  // there first; beside it, this direct-I/O open fails with EIO
  // (fuse_file_io_open, "FOPEN_PASSTHROUGH expected"; `tierfs migrate` failed
  // so now and then beside writers). So it counts as the server's until a
  // request on it shows it open (opened_data_path, at the migrate ioctl).
  if (!passthrough_open && (fi->flags & O_ACCMODE) == O_RDONLY && (fi->flags & O_NONBLOCK) != 0) {
    ++inode.server_opens;
    handle_of(fi)->uncounted_once_open = true;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    return 0;
  }
  // One backing id per inode while any handle is open: the kernel refuses a
  // second backing file for an inode that has open passthrough files.
  // FUSE_DEV_IOC_BACKING_OPEN needs CAP_SYS_ADMIN (fs/fuse/backing.c), which
  // the server keeps permitted and raises in this thread for the ioctl only
  // (privilege.h). The kernel keeps the credentials of this call for the
  // backing file it opens at each passthrough open (fb->cred).
#ifndef TIERFS_KERNEL_PATH
  (void)req;
  return ENOSYS;  // never reached: without passthrough no tier takes the kernel path
#else
  if (backing->passthrough_id == 0) {
    // The kernel takes its own reference: the descriptor goes with this step.
    const BackingFile::Fd fd = created.get() >= 0 ? std::move(created) : backing->open();
    const int id = fd.get() < 0 ? -1 : [&] {
      const CapabilityWindow admin({CAP_SYS_ADMIN});
      return fuse_passthrough_open(req, fd.get());
    }();
    if (id <= 0) {
      spdlog::error("kernel path: passthrough of inode {} refused by the kernel: {}", inode.ino,
                    std::strerror(errno));
      return EIO;
    }
    backing->passthrough_id = id;
  }
  ++backing->passthrough_opens;
  // Stores through a mapping of a writable handle are the kernel's FUSE
  // inode's to miss: what it keeps goes now, before the open returns, and
  // replies keep nothing while the handle or a mapping lasts
  // (kernel_attrs_settled). A reply in flight from before is dropped by the
  // kernel (attr_version). A read-only handle maps nothing writable.
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    inode.kernel_unwritten.store(false);
    if (inode.kernel_attrs_kept.exchange(false) && fs.session() != nullptr)
      fuse_lowlevel_notify_inval_inode(fs.session(), inode.ino, -1, 0);
  }
  fi->backing_id = backing->passthrough_id;
  handle_of(fi)->passthrough_id = backing->passthrough_id;
  // FOPEN_DIRECT_IO would override passthrough (fs/fuse/file.c).
  fi->direct_io = 0;
  fi->keep_cache = 0;
  // The kernel writes to the backing file itself: nothing for FLUSH to do.
  fi->noflush = 1;
  return 0;
#endif
}

void opened_data_path(Inode& inode, FileHandle& handle) {
  std::unique_lock guard(inode.lock);
  if (!handle.uncounted_once_open) return;
  handle.uncounted_once_open = false;
  handle.uncounted = true;
  if (inode.server_opens != 0) --inode.server_opens;
}

std::optional<uint32_t> close_data_path(fuse_req_t req, Inode& inode, const FileHandle& handle) {
  std::unique_lock guard(inode.lock);
  if (handle.uncounted) return std::nullopt;
  if (handle.passthrough_id == 0) {
    if (inode.server_opens != 0) --inode.server_opens;
    return std::nullopt;
  }
  BackingFile* backing = inode.data && !inode.data_released ? inode.data->backing() : nullptr;
  if (backing == nullptr || backing->passthrough_id != handle.passthrough_id ||
      backing->passthrough_opens == 0)
    return std::nullopt;
  // Without a request (an open whose reply failed), the id stays registered
  // and the next open of the inode takes it again.
  if (--backing->passthrough_opens != 0 || req == nullptr) return std::nullopt;
  close_backing_id(req, backing->passthrough_id);
  backing->passthrough_id = 0;
  // The kernel let go of its backing file before it sent this RELEASE
  // (fuse_file_put: fuse_file_io_release, then the request). A shared
  // mapping does not keep the handle (6.18: it holds the backing file
  // itself, and the RELEASE came at its descriptor's close): the held move
  // asks a write lease before it goes (Mover::open_elsewhere). Opens
  // meanwhile are the server's.
  if (inode.held_move_tier < 0) return std::nullopt;
  return static_cast<uint32_t>(inode.held_move_tier);
}

}  // namespace tierfs
