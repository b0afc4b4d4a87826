// Migration by hand: the TIERFS migrate ioctl (tierfs/core/migrate_ioctl.h)
// on an open regular file; moves its data to the named tier now, or queues
// it for the mover with kMigrateAsync. The file's owner, root and the user
// who mounted may move it.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "tierfs/core/migrate_ioctl.h"
#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"

namespace tierfs {

void fs_ioctl(fuse_req_t req, fuse_ino_t /*ino*/, unsigned int cmd, void* /*arg*/,
              fuse_file_info* fi, unsigned flags, const void* in_buf, size_t in_bufsz,
              size_t out_bufsz) {
  Fs& fs = fs_of(req);
  fs.count(Op::ioctl);
  // A directory's handle is none of ours (fh 0): only files move.
  FileHandle* handle = (flags & FUSE_IOCTL_DIR) != 0 ? nullptr : handle_of(fi);
  // A request on the handle: the kernel finished its open (fs_kernel_path.cc).
  if (handle != nullptr) opened_data_path(*handle->inode, *handle);
  if (handle == nullptr || cmd != kMigrateIoctl || (flags & FUSE_IOCTL_COMPAT) != 0) {
    fuse_reply_err(req, ENOTTY);
    return;
  }
  if (in_bufsz != sizeof(MigrateRequest) || out_bufsz != sizeof(MigrateRequest)) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  MigrateRequest request{};
  std::memcpy(&request, in_buf, sizeof request);
  const std::string_view name(request.tier, strnlen(request.tier, sizeof request.tier));
  const std::optional<uint32_t> tier = fs.placement().tier_named(name);
  InodePtr inode = handle->inode;
  const uid_t caller = fuse_req_ctx(req)->uid;
  const int err = !tier || name.size() == sizeof request.tier ||
                          (request.flags & ~kMigrateAsync) != 0 || request.reserved != 0
                      ? EINVAL
                  : (caller != 0 && caller != geteuid() && caller != inode->uid) ? EPERM
                                                                                 : 0;
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  request.bytes_moved = 0;
  if (request.flags & kMigrateAsync) {
    fs.mover().enqueue(inode, *tier);
  } else {
    const int moved = fs.mover().migrate(inode, *tier, false, &request.bytes_moved);
    if (moved == -EINPROGRESS) {
      request.flags |= kMigrateHeld;  // accepted: moves when its last passthrough handle closes
    } else if (moved != 0) {
      // Busy and full are answers; anything else is worth a line in the log.
      if (moved != -EBUSY && moved != -ENOSPC)
        spdlog::warn("migrate ioctl: inode {} to tier {}: {}", inode->ino, name,
                     std::strerror(-moved));
      fuse_reply_err(req, -moved);
      return;
    }
  }
  fuse_reply_ioctl(req, 0, &request, sizeof request);
}

}  // namespace tierfs
