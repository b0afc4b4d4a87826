// Random scenarios for the kernel/C++ equivalence check. The distributions
// lean on the edges where the arithmetic can go wrong: region switches,
// extent ends, 1-way tiers, 1 GiB units, offsets near 2^63 and 2^64.
#include "bpf/equivalence.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "kernel/iomap_rules.h"

namespace tierfs::bpf {
namespace {

constexpr uint32_t kTiersPerRound = 8;  // tiers 8 .. 15 stay unset: extents there fall back
constexpr size_t kInodesPerRound = 64;
constexpr size_t kRequestsPerRound = 4096;
constexpr uint64_t kTop = TIERFS_U64_MAX;
constexpr uint64_t kHalf = uint64_t{1} << 63;

std::string hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof(buf), "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

bool near(uint64_t value, uint64_t target) {
  const uint64_t window = uint64_t{1} << 40;
  return value <= target ? target - value <= window : value - target <= window;
}

// Sorts one mapped answer into the kinds of case it exercises.
void count_mix(const MapsSnapshot& maps, const tierfs_twin_request& request,
               const tierfs_twin_answer& answer, CaseMix& mix) {
  const auto inode = maps.inodes.find(request.nodeid);
  if (inode == maps.inodes.end()) return;
  const tierfs_extent_hit hit = tierfs_find_extent(&inode->second, request.pos);
  if (hit.index >= TIERFS_MAX_INODE_EXTENTS) return;
  const tierfs_extent& extent = inode->second.extents[hit.index];
  if (extent.tier >= maps.tiers.size()) return;
  const tierfs_layout& layout = maps.tiers[extent.tier].layout;
  mix.one_way += layout.ways == 1;
  mix.max_ways += layout.ways == TIERFS_MAX_WAYS;
  bool weighted = false;
  for (uint32_t i = 1; i < layout.ways && i < TIERFS_MAX_WAYS; ++i)
    weighted = weighted || layout.weights[i] != layout.weights[0];
  mix.weighted += weighted;
  mix.granularity_4k += layout.granularity_shift == TIERFS_MIN_GRANULARITY_SHIFT;
  mix.granularity_1g += layout.granularity_shift == TIERFS_MAX_GRANULARITY_SHIFT;
  mix.near_2_63 += near(request.pos, kHalf);
  mix.near_2_64 += near(answer.out.read.addr, kTop);
  mix.writes += tierfs_iomap_is_write(request.opflags);
  mix.unwritten += answer.out.read.type == TIERFS_IOMAP_TYPE_UNWRITTEN;
  const uint64_t mapping_end = answer.out.read.offset + answer.out.read.length;
  mix.cut_at_boundary += mapping_end < extent.file_offset + extent.length;
}

}  // namespace

tierfs_layout ScenarioGenerator::random_layout() {
  tierfs_layout l{};
  const uint32_t ways_kind = rng_() % 4;
  l.ways = ways_kind == 0 ? 1 : ways_kind == 1 ? TIERFS_MAX_WAYS : 2 + rng_() % 30;
  const uint32_t shift_kind = rng_() % 4;
  l.granularity_shift = shift_kind == 0   ? TIERFS_MIN_GRANULARITY_SHIFT
                        : shift_kind == 1 ? TIERFS_MAX_GRANULARITY_SHIFT
                                          : 12 + rng_() % 19;
  const bool weighted = rng_() % 2 == 0;
  for (uint32_t i = 0; i < l.ways; ++i) l.weights[i] = weighted ? 1 + rng_() % 255 : 1;
  const uint32_t base_kind = rng_() % 4;
  // Block-aligned, as real regions are, except now and then (the program must refuse those).
  const uint64_t align = rng_() % 16 == 0 ? ~uint64_t{0} : ~(TIERFS_IOMAP_BLOCK_SIZE - 1);
  for (uint32_t i = 0; i < l.ways; ++i) {
    l.base[i] = base_kind == 0   ? 0
                : base_kind == 1 ? (rng_() % (uint64_t{1} << 40)) << 12
                : base_kind == 2 ? kHalf - (rng_() % (uint64_t{1} << 34))
                                 : kTop - (rng_() % (uint64_t{1} << 40));
    l.base[i] &= align;
  }
  // Now and then a layout the program must refuse (weight 0).
  if (rng_() % 64 == 0) l.weights[rng_() % l.ways] = 0;
  return l;
}

uint64_t ScenarioGenerator::pick_offset() {
  switch (rng_() % 4) {
    case 0:
      return (rng_() % (uint64_t{1} << 36)) << 12;
    case 1:
      return kHalf - (rng_() % (uint64_t{1} << 40));
    case 2:  // past s_maxbytes: the program must fall back
      return rng_() % 4 == 0 ? kTop - (rng_() % (uint64_t{1} << 40)) : rng_() % kHalf;
    default:
      return rng_() % kHalf;
  }
}

std::vector<tierfs_extent> ScenarioGenerator::random_extents(size_t count) {
  std::vector<tierfs_extent> extents;
  uint64_t cursor = pick_offset() & ~uint64_t{4095};
  for (size_t i = 0; i < count; ++i) {
    tierfs_extent e{};
    // Mostly block-aligned starts and lengths, as the server's allocator makes them.
    const bool aligned = rng_() % 4 != 0;
    const uint64_t mask = aligned ? ~(TIERFS_IOMAP_BLOCK_SIZE - 1) : ~uint64_t{0};
    const uint64_t gap = rng_() % 3 == 0 ? 0 : (rng_() % (uint64_t{1} << 32)) & mask;
    if (cursor > kTop - gap) break;
    e.file_offset = cursor + gap;
    const uint64_t room = kTop - e.file_offset;
    if (room == 0) break;
    e.length = 1 + rng_() % std::min<uint64_t>(room, rng_() % 8 != 0 ? (uint64_t{1} << 34) : room);
    if (aligned && (e.length & mask) != 0) e.length &= mask;
    // Any 4 KiB address of the tier, the top of the 64-bit range included.
    e.tier_address =
        (rng_() % 8 == 0 ? kTop - rng_() % (uint64_t{1} << 40) : rng_() % (uint64_t{1} << 50)) &
        ~uint64_t{4095};
    e.tier = rng_() % 16 == 0 ? kTiersPerRound + rng_() % 40 : rng_() % kTiersPerRound;
    e.flags = rng_() % 8 == 0 ? TIERFS_EXTENT_UNWRITTEN : 0;
    extents.push_back(e);
    if (e.length > kTop - e.file_offset) break;
    cursor = e.file_offset + e.length;
  }
  return extents;
}

int ScenarioGenerator::write_maps(IomapMaps& maps) {
  for (uint32_t tier = 0; tier < kTiersPerRound; ++tier) {
    const tierfs_layout layout = random_layout();
    std::vector<uint32_t> cookies(layout.ways);
    for (auto& cookie : cookies) cookie = rng_() % 32 == 0 ? 0 : 1 + rng_() % 1000;
    if (int err = maps.set_tier(tier, layout, cookies); err != 0) return err;
  }
  for (uint64_t nodeid : nodeids_)
    if (int err = maps.remove_inode(nodeid); err != 0) return err;
  nodeids_.clear();
  extents_.clear();
  for (size_t i = 0; i < kInodesPerRound; ++i) {
    // Sometimes more extents than the map holds: the inode is left out and falls back.
    const size_t count = rng_() % 16 == 0 ? TIERFS_MAX_INODE_EXTENTS + 1 + rng_() % 4
                                          : rng_() % (TIERFS_MAX_INODE_EXTENTS + 1);
    const uint64_t nodeid = 1 + rng_() % (uint64_t{1} << 40);
    extents_.push_back(random_extents(count));
    nodeids_.push_back(nodeid);
    if (int err = maps.set_extents(nodeid, extents_.back()); err != 0) return err;
  }
  return 0;
}

std::vector<tierfs_twin_request> ScenarioGenerator::requests(size_t count) {
  std::vector<tierfs_twin_request> out(count);
  for (auto& r : out) {
    const size_t which = rng_() % (nodeids_.size() + 1);
    r.nodeid = which < nodeids_.size() ? nodeids_[which] : 1 + rng_();
    const auto& extents = which < extents_.size() ? extents_[which] : extents_.front();
    if (!extents.empty() && rng_() % 8 != 0) {
      const tierfs_extent& e = extents[rng_() % extents.size()];
      switch (rng_() % 4) {
        case 0:
          r.pos = e.file_offset;
          break;
        case 1:
          r.pos = e.file_offset + e.length - 1;
          break;
        case 2:
          r.pos = e.file_offset + e.length;
          break;  // the hole (or extent) after it
        default:
          r.pos = e.file_offset + rng_() % e.length;
          break;
      }
    } else {
      r.pos = pick_offset();
    }
    const uint32_t count_kind = rng_() % 4;
    r.count = count_kind == 0   ? 1 + rng_() % 4096
              : count_kind == 1 ? uint64_t{1} << 20
              : count_kind == 2 ? kTop
                                : rng_() % (uint64_t{1} << 40);
    // Mostly the op sets the kernel sends; now and then any mix of the known bits.
    r.opflags = rng_() % 4 != 0
                    ? kernel::kIomapOpSets[rng_() % kernel::kIomapOpSetCount].opflags
                    : static_cast<uint32_t>(rng_() & (0x7ff | TIERFS_FEB26_IOMAP_OP_WRITEBACK));
  }
  return out;
}

std::string oracle_violation(const tierfs_twin_request& request, const tierfs_twin_answer& answer) {
  static_assert(sizeof(kernel::IomapBeginOut) == sizeof(tierfs_iomap_pair));
  kernel::IomapBeginOut out{};
  std::memcpy(&out, &answer.out, sizeof(out));
  return kernel::iomap_begin_violation(out, request.opflags, request.pos);
}

std::string describe(const tierfs_twin_request& r) {
  return "nodeid " + std::to_string(r.nodeid) + " pos " + hex(r.pos) + " count " + hex(r.count) +
         " opflags " + hex(r.opflags);
}

std::string describe(const tierfs_twin_answer& a) {
  auto io = [](const tierfs_iomap_io& x) {
    return "{offset " + hex(x.offset) + " length " + hex(x.length) + " addr " + hex(x.addr) +
           " type " + std::to_string(x.type) + " dev " + std::to_string(x.dev) + "}";
  };
  return (a.verdict == TIERFS_IOMAP_HANDLED ? std::string("HANDLED read ")
                                            : "FALLBACK(" + std::to_string(a.verdict) + ") read ") +
         io(a.out.read) + " write " + io(a.out.write);
}

EquivalenceResult check_equivalence(IomapLoader& loader, uint64_t cases, uint64_t seed) {
  EquivalenceResult result;
  ScenarioGenerator generator(seed);
  std::vector<tierfs_twin_answer> kernel(kRequestsPerRound);
  MapsSnapshot snapshot;
  while (result.cases < cases) {
    if ((result.error = generator.write_maps(loader)) != 0) return result;
    if ((result.error = loader.snapshot(snapshot)) != 0) return result;
    const auto requests = generator.requests(kRequestsPerRound);
    if ((result.error = loader.map_in_kernel(requests, kernel)) != 0) return result;
    for (size_t i = 0; i < requests.size(); ++i) {
      const tierfs_twin_answer cpp = map_request_in_userspace(snapshot, requests[i]);
      ++result.cases;
      if (std::memcmp(&cpp, &kernel[i], sizeof(cpp)) == 0) {
        ++result.agreed;
      } else if (result.first_disagreement.empty()) {
        result.first_disagreement =
            describe(requests[i]) + ": kernel " + describe(kernel[i]) + ", C++ " + describe(cpp);
      }
      // The kernel's answer is the one the kernel would check.
      if (kernel[i].verdict == TIERFS_IOMAP_HANDLED) {
        ++result.checked;
        if (std::string why = oracle_violation(requests[i], kernel[i]); !why.empty()) {
          if (result.violations++ == 0)
            result.first_violation =
                describe(requests[i]) + ": " + describe(kernel[i]) + ": " + why;
        }
      }
      if (cpp.verdict != TIERFS_IOMAP_HANDLED)
        ++result.fallbacks;
      else if (cpp.out.read.type == TIERFS_IOMAP_TYPE_HOLE)
        ++result.holes;
      else {
        ++result.mapped;
        count_mix(snapshot, requests[i], cpp, result.mix);
      }
    }
  }
  return result;
}

}  // namespace tierfs::bpf
