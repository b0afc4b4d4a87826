// Migration between the two data paths (tierfs/core/data_path.h): a
// server-path file's extents copied into a backing file of a kernel-path
// tier, or a kernel-path file's backing file copied into extents of a
// server-path tier. The protocol is migrate.h's (chunks under the shared
// lock, watch_changes, the switch under the unique lock in one log frame);
// only the two ends differ.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>

#include "tierfs/core/backing_file.h"
#include "tierfs/core/file_data.h"
#include "tierfs/core/migrate.h"

namespace tierfs {

// To the kernel path. `backing` is a new, unnamed backing file of the target
// tier (BackingStore::open_unnamed): it is named `name` at the switch, after
// the last copy and before the switch is logged, so a crash before the name
// leaves nothing and one before the record leaves an orphan the record
// (extents still listed) discards. `size` (called under the unique lock)
// is the file's size, which the backing file takes. options.on_switch logs
// the inode (now without extents). Returns as migrate_file.
int migrate_to_backing(Storage& storage, FileData& file, std::shared_mutex& lock,
                       std::unique_ptr<BackingFile> backing, std::string name,
                       const std::function<bool()>& alive, const std::function<uint64_t()>& size,
                       const MigrateOptions& options, MigrateResult* result);

// Off the kernel path, to server-path tier `target`. Only the server's own
// changes reach FileData (a passthrough handle writes the backing file
// unseen), so `quiet` (called under the unique lock at the start and at the
// switch) must say that the kernel cannot write the file: -EBUSY otherwise,
// nothing changed. result->file_size is the backing file's size at the
// switch, for options.on_switch to record. The backing file is removed after
// the switch is logged.
int migrate_from_backing(Storage& storage, FileData& file, std::shared_mutex& lock, uint32_t target,
                         const std::function<bool()>& alive, const std::function<bool()>& quiet,
                         const MigrateOptions& options, MigrateResult* result);

// Between kernel-path tiers that keep their files in different tmpfs (4 KiB
// and huge pages), where a file cannot move in place: the backing file's
// data ranges are copied (BackingFile::copy_data_from: sendfile, holes kept)
// into `copy`, a new unnamed backing file of the target tier; `quiet` as for
// migrate_from_backing (the kernel's writes through a passthrough handle
// are unseen). The switch, under the unique lock: the old backing file is
// renamed `retired_name` (a crash now leaves only it: the next server takes
// it back), the copy takes the old file's size and mtime and is linked as
// `name` (a crash now leaves both: the next server keeps the copy and drops
// the retired one), the file takes it (options.on_switch logs the inode),
// and the old file is removed.
int migrate_between_backings(Storage& storage, FileData& file, std::shared_mutex& lock,
                             std::unique_ptr<BackingFile> copy, std::string name,
                             std::string retired_name, const std::function<bool()>& alive,
                             const std::function<bool()>& quiet, const MigrateOptions& options,
                             MigrateResult* result);

}  // namespace tierfs
