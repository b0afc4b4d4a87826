// The server and the metadata log: rebuilding the inodes from a replayed
// image at mount, logging each change as one frame, and tierfs check of a
// running mount (user.tierfs.check on the root).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "tierfs/server/mover.h"
#include "tierfs/server/operations.h"

namespace tierfs {

InodeMeta Fs::meta_of(const Inode& inode) {
  InodeMeta m;
  m.ino = inode.ino;
  m.mode = inode.mode;
  m.uid = inode.uid;
  m.gid = inode.gid;
  m.rdev = inode.rdev;
  m.size = inode.size;
  m.atime_ns = inode.atime_ns.load(std::memory_order_relaxed);
  m.mtime_ns = inode.mtime_ns;
  m.ctime_ns = inode.ctime_ns;
  m.btime_ns = inode.btime_ns;
  m.nlink = inode.nlink.load();
  m.symlink_target = inode.symlink_target;
  if (inode.data && !inode.data_released) {
    m.preferred_tier = inode.data->preferred_tier();
    const auto extents = inode.data->extents();
    m.extents.assign(extents.begin(), extents.end());
  }
  return m;
}

void Fs::attach_journal(std::unique_ptr<Journal> journal) {
  const MetadataImage& image = journal->image();
  std::vector<InodePtr> trimmed;  // extents cut back to the size: logged once the log is attached
  if (image.inodes.count(FUSE_ROOT_ID)) {
    std::vector<std::pair<InodePtr, const InodeMeta*>> built;
    built.reserve(image.inodes.size());
    {
      std::lock_guard guard(table_mutex_);
      for (const auto& [ino, meta] : image.inodes) {
        InodePtr node = ino == FUSE_ROOT_ID ? inodes_.at(FUSE_ROOT_ID)
                                            : std::make_shared<Inode>(ino, meta.mode);
        node->mode = meta.mode;
        node->uid = meta.uid;
        node->gid = meta.gid;
        node->rdev = static_cast<dev_t>(meta.rdev);
        node->size = meta.size;
        node->atime_ns = meta.atime_ns;
        node->mtime_ns = meta.mtime_ns;
        node->ctime_ns = meta.ctime_ns;
        node->btime_ns = meta.btime_ns;
        node->nlink = meta.nlink;
        node->symlink_target = meta.symlink_target;
        node->xattrs = meta.xattrs;
        if (S_ISDIR(meta.mode) && !node->dir) node->dir = std::make_unique<Directory>();
        if (S_ISREG(meta.mode)) {
          node->data = std::make_unique<FileData>();
          node->data->set_ino(ino);
          node->data->set_preferred_tier(
              meta.preferred_tier < storage_->tier_count() ? meta.preferred_tier : 0);
        }
        inodes_[ino] = node;
        built.emplace_back(std::move(node), &meta);
      }
      next_ino_ = std::max<uint64_t>(next_ino_, image.max_ino + 1);
    }
    int64_t xattrs = 0, xattr_bytes = 0;
    for (const auto& [node, meta] : built) {
      for (const auto& [k, v] : meta->xattrs) {
        ++xattrs;
        xattr_bytes += static_cast<int64_t>(k.size() + v.size());
      }
      if (!node->data) continue;
      if (std::string problem = node->data->adopt(*storage_, meta->extents); !problem.empty())
        throw std::runtime_error("metadata log in " + std::string("the state directory") +
                                 ": inode " + std::to_string(meta->ino) + " " + problem +
                                 "; `tierfs check` lists every problem, `tierfs mount --fresh` "
                                 "starts empty");
      // Past the size a file holds zeros (a later extension must read them):
      // a write in flight at the crash may have copied bytes there whose size
      // never made it to the log. Its blocks past the size go, the last
      // block's tail is zeroed.
      const uint64_t version = node->data->extents_version();
      // A tail that cannot be zeroed (its block faults) keeps its block; the rest goes.
      if (node->data->truncate(*storage_, meta->size) != 0)
        node->data->truncate(*storage_, (meta->size + kBlockBytes - 1) / kBlockBytes * kBlockBytes);
      if (node->data->extents_version() != version) trimmed.push_back(node);
    }
    count_xattrs(xattrs, xattr_bytes);
    // Names: in name order, so a file with several names keeps a deterministic one for paths.
    for (const auto& [dir_ino, names] : image.entries) {
      InodePtr dir = find(dir_ino);
      if (!dir || !dir->dir) continue;
      for (const auto& [name, ino] : names) {
        InodePtr child = find(ino);
        if (!child) continue;
        dir->dir->add(name, ino);
        child->parent = dir_ino;
        child->name = name;
      }
    }
    // Bytes a crash left in blocks nobody owns must not reach a new file.
    for (size_t t = 0; t < storage_->tier_count(); ++t) storage_->tier(t).scrub_free();
  }
  journal_ = std::move(journal);
  journal_->release_image();
  storage_->set_journal(journal_.get());
  for (const InodePtr& node : trimmed) {
    std::unique_lock guard(node->lock);
    log_inode_locked(*node);
  }
}

void Fs::close_journal(bool keep_files, int state_dir_fd) {
  if (!journal_) return;
  storage_->set_journal(nullptr);
  if (keep_files) {
    // Scratch tiers give their memory back now: the extents there go from
    // the log, so those files come back with holes (zeros), not stale memory.
    for (const auto& [ino, inode] : inodes_) {
      std::unique_lock guard(inode->lock);
      if (!inode->data || inode->data_released) continue;
      InodeMeta meta = meta_of(*inode);
      const size_t before = meta.extents.size();
      std::erase_if(meta.extents, [&](const tierfs_extent& e) {
        return e.tier >= storage_->tier_count() || !storage_->tier(e.tier).persistent();
      });
      if (meta.extents.size() == before) continue;
      RecordBuilder& records = change_records();
      records.inode(meta);
      journal_->commit(records);
    }
    if (int err = journal_->checkpoint())
      spdlog::error("unmount: checkpoint not written: {}", strerror(-err));
  } else {
    unlinkat(state_dir_fd, "journal", 0);
    unlinkat(state_dir_fd, "checkpoint", 0);
  }
  journal_.reset();
}

void Fs::log_change(RecordBuilder& records, std::initializer_list<Inode*> inodes) {
  if (!journal_) return;
  std::vector<Inode*> order;
  order.reserve(inodes.size());
  for (Inode* inode : inodes)
    if (inode && std::find(order.begin(), order.end(), inode) == order.end())
      order.push_back(inode);
  std::sort(order.begin(), order.end(),
            [](const Inode* a, const Inode* b) { return a->ino < b->ino; });
  std::vector<std::unique_lock<std::shared_mutex>> locks;
  locks.reserve(order.size());
  for (Inode* inode : order) {
    locks.emplace_back(inode->lock);
    // A name-less inode no handle keeps is gone; one an open handle keeps is
    // logged with link count 0 (replay drops it) until its last close.
    if (inode->nlink.load() == 0 && !(inode->is_regular() && inode->open_handles.load() > 0))
      records.drop(inode->ino);
    else
      records.inode(meta_of(*inode));
  }
  journal_->commit(records);
}

RecordBuilder& Fs::change_records() {
  thread_local RecordBuilder records;
  records.clear();
  return records;
}

void Fs::log_inode_locked(Inode& inode, RecordBuilder* extra) {
  inode.times_unlogged = false;
  if (journal_) {
    RecordBuilder& records = extra ? *extra : change_records();
    records.inode(meta_of(inode));
    journal_->commit(records);
  }
  if (inode.data) inode.data->free_deferred(*storage_);
}

void Fs::log_drop_locked(Inode& inode) {
  if (!journal_) {
    if (inode.data) inode.data->free_deferred(*storage_);
    return;
  }
  RecordBuilder& records = change_records();
  records.drop(inode.ino);
  journal_->commit(records);
  if (inode.data) inode.data->free_deferred(*storage_);
}

std::vector<std::string> Fs::check_problems() {
  if (!journal_) return {"this mount keeps no metadata log"};
  std::vector<std::string> problems;
  std::vector<uint64_t> tier_blocks;
  for (size_t t = 0; t < storage_->tier_count(); ++t)
    tier_blocks.push_back(storage_->tier(t).blocks().total_blocks());
  // Migrations neither take blocks for their copies nor switch meanwhile
  // (their steps take this lock before the log's).
  std::unique_lock transit_guard(mover().transit_lock());
  journal_->with_image([&](const MetadataImage& image) {
    problems = check_image(image, tier_blocks);
    const auto transit = mover().blocks_in_transit();
    for (size_t t = 0; t < storage_->tier_count(); ++t) {
      BlockAllocator& blocks = storage_->tier(t).blocks();
      // Blocks retired after a SIGBUS are held by the tier, not leaked.
      std::vector<BlockRange> held = transit[t];
      const std::vector<BlockRange> bad = storage_->tier(t).bad_runs();
      held.insert(held.end(), bad.begin(), bad.end());
      auto more = check_allocation(image, static_cast<uint32_t>(t), blocks.total_blocks(),
                                   blocks.free_runs(), held);
      problems.insert(problems.end(), more.begin(), more.end());
    }
  });
  return problems;
}

}  // namespace tierfs
