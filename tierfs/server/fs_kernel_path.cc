// The seam between the two data paths on the server side (STYLE.md rule 11):
// which path a file takes is decided here, once, when it gets its data (a
// new file takes its preferred tier's path; a restart keeps the path each
// file had), and an open of a kernel-path file is answered here with FUSE
// passthrough onto its backing file. Every other FUSE operation works on
// FileData, which forwards to the backing file, and never asks.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <shared_mutex>
#include <stdexcept>

#include "tierfs/server/backing_store.h"
#include "tierfs/server/operations.h"

namespace tierfs {

void Fs::open_backing_store(int state_dir_fd, const std::string& state_dir) {
  backing_store_ = BackingStore::open(config_, state_dir_fd, state_dir);
}

int Fs::give_data_path(Inode& inode) {
  if (!backing_store_ || !inode.is_regular()) return 0;
  const uint32_t tier = inode.data->preferred_tier();
  if (!backing_store_->serves(tier)) return 0;
  int err = 0;
  std::string error;
  auto file = backing_store_->open_file(inode.ino, tier, true, err, error);
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
  for (const auto& [tier, ino] : backing_store_->files()) {
    InodePtr inode = find(ino);
    std::unique_lock<std::shared_mutex> guard;
    if (inode) guard = std::unique_lock(inode->lock);
    // A file unlinked (and dropped from the log) before a crash, or a
    // second copy left by one: its bytes belong to nobody.
    if (!inode || !inode->is_regular() || inode->data_released || inode->data->backing() ||
        !inode->data->extents().empty()) {
      backing_store_->remove_orphan(tier, ino);
      continue;
    }
    int err = 0;
    std::string error;
    auto file = backing_store_->open_file(ino, tier, false, err, error);
    if (!file) throw std::runtime_error("kernel path: " + error);
    inode->data->attach_backing(std::move(file));
    inode->size = inode->data->size(inode->size);
    ++adopted;
  }
  if (adopted != 0) spdlog::info("kernel path: adopted {} backing files", adopted);
}

DataPath Fs::data_path_of(const Inode& inode) const {
  return inode.is_regular() && !inode.data_released && inode.data->backing() ? DataPath::kernel
                                                                             : DataPath::server;
}

int open_data_path(Fs& fs, fuse_req_t req, Inode& inode, fuse_file_info* fi) {
  std::unique_lock guard(inode.lock);
  BackingFile* backing = inode.data_released ? nullptr : inode.data->backing();
  if (backing == nullptr) {
    if (fs.config().mount.cache == CacheMode::none) {
      fi->direct_io = 1;
      fi->keep_cache = 0;
    } else {
      fi->direct_io = 0;
      fi->keep_cache = 1;  // every change goes through this kernel, so its cache stays valid
    }
    return 0;
  }
  // One backing id per inode while any handle is open: the kernel refuses a
  // second backing file for an inode that has open passthrough files.
  // FUSE_DEV_IOC_BACKING_OPEN needs CAP_SYS_ADMIN (fs/fuse/backing.c),
  // which the server keeps (privilege.cc).
#ifndef TIERFS_KERNEL_PATH
  (void)req;
  return ENOSYS;  // never reached: without passthrough no tier takes the kernel path
#else
  if (backing->passthrough_id == 0) {
    const int id = fuse_passthrough_open(req, backing->fd());
    if (id <= 0) {
      spdlog::error("kernel path: passthrough of inode {} refused by the kernel: {}", inode.ino,
                    std::strerror(errno));
      return EIO;
    }
    backing->passthrough_id = id;
  }
  ++backing->passthrough_opens;
  fi->backing_id = backing->passthrough_id;
  // FOPEN_DIRECT_IO would override passthrough (fs/fuse/file.c).
  fi->direct_io = 0;
  fi->keep_cache = 0;
  // The kernel writes to the backing file itself: nothing for FLUSH to do.
  fi->noflush = 1;
  return 0;
#endif
}

void close_data_path(fuse_req_t req, Inode& inode) {
  std::unique_lock guard(inode.lock);
  BackingFile* backing = inode.data ? inode.data->backing() : nullptr;
  if (backing == nullptr || backing->passthrough_opens == 0) return;
  // Without a request (an open whose reply failed), the id stays registered
  // and the next open of the inode takes it again.
  if (--backing->passthrough_opens == 0 && req != nullptr) {
#ifdef TIERFS_KERNEL_PATH
    fuse_passthrough_close(req, backing->passthrough_id);
#endif
    backing->passthrough_id = 0;
  }
}

}  // namespace tierfs
