// The data path decision (see data_path.h): tier qualification for the
// kernel path, from the configuration and the facts the machine offers.
#include "tierfs/core/data_path.h"

#include <cap-ng.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "tierfs/core/config.h"
#include "tierfs/core/units.h"

namespace tierfs {

const char* data_path_mode_name(DataPathMode mode) {
  switch (mode) {
    case DataPathMode::kernel:
      return "kernel";
    case DataPathMode::server:
      return "server";
    case DataPathMode::automatic:
      break;
  }
  return "auto";
}

const char* data_path_name(DataPath path) {
  return path == DataPath::kernel ? "kernel" : "server";
}

namespace {

// The bracketed word of a sysfs choice file ("always [never] deny"), or "".
std::string selected_word(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line)) return "";
  const size_t open = line.find('[');
  const size_t close = line.find(']', open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return line.substr(open + 1, close - open - 1);
}

bool enabled(std::string_view word) {
  return word == "always" || word == "within_size" || word == "advise" || word == "force";
}

// "inherit" follows the tmpfs mount's own huge= option, which the backing
// store sets to within_size: it counts as enabled.
bool size_enabled(std::string_view word) {
  return enabled(word) || word == "inherit";
}

std::string weights_text(const std::vector<uint32_t>& weights) {
  std::string out;
  for (uint32_t w : weights) out += (out.empty() ? "" : ":") + std::to_string(w);
  return out;
}

// Empty when the tier's layout is one the kernel can apply, else why not.
std::string kernel_refusal(const TierConfig& tier, const MountOptions& mount,
                           const KernelFacts& facts, std::map<int, uint32_t>& node_weights,
                           bool& weighted) {
  for (const TierRegion& region : tier.regions)
    if (region.spec.kind != numa::RegionKind::numa)
      return fmt::format("region \"{}\" is not a numa: region; the kernel places only NUMA memory",
                         region.spec.text);
  if (tier.hugepages)
    return "hugepages = true reserves hugetlbfs pages, which tmpfs backing files do not use";
  const std::vector<uint64_t> sizes = kernel_granularities(facts);
  if (std::find(sizes.begin(), sizes.end(), tier.granularity_bytes) == sizes.end()) {
    std::string list;
    for (uint64_t s : sizes) list += (list.empty() ? "" : ", ") + format_size(s);
    return fmt::format("granularity {} is not a folio size this kernel gives tmpfs ({})",
                       format_size(tier.granularity_bytes), list);
  }
  weighted = !tier.weights.empty() && std::any_of(tier.weights.begin(), tier.weights.end(),
                                                  [&](uint32_t w) { return w != tier.weights[0]; });
  if (!weighted) return "";
  if (!facts.weighted_interleave)
    return fmt::format(
        "weights {} need weighted interleave (Linux 6.9+, "
        "/sys/kernel/mm/mempolicy/weighted_interleave)",
        weights_text(tier.weights));
  if (!mount.set_node_weights)
    return fmt::format(
        "weights {} need the system-wide node weights in "
        "/sys/kernel/mm/mempolicy/weighted_interleave/nodeN; "
        "set [mount] set_node_weights = true to let tierfs write them",
        weights_text(tier.weights));
  for (size_t i = 0; i < tier.regions.size(); ++i) {
    const int node = tier.regions[i].spec.node;
    auto [it, fresh] = node_weights.emplace(node, tier.weights[i]);
    if (!fresh && it->second != tier.weights[i])
      return fmt::format(
          "node {} has weight {} here and {} in an earlier weighted tier; "
          "node weights are system-wide",
          node, tier.weights[i], it->second);
  }
  return "";
}

// The initial user namespace's inode number (PROC_USER_INIT_INO in the
// kernel's include/linux/proc_ns.h): capable() checks there, so root in a
// container's own user namespace cannot register backing files.
constexpr ino_t kInitialUserNamespaceIno = 0xEFFFFFFDU;

bool holds_handover_privilege() {
  struct stat ns {};
  if (stat("/proc/self/ns/user", &ns) != 0 || ns.st_ino != kInitialUserNamespaceIno) return false;
  // Permitted, not effective: the server may raise it only around the handover.
  capng_clear(CAPNG_SELECT_BOTH);
  if (capng_get_caps_process() != 0) return false;
  return capng_have_capability(CAPNG_PERMITTED, CAP_SYS_ADMIN) != 0;
}

}  // namespace

std::vector<uint64_t> kernel_granularities(const KernelFacts& facts) {
  std::vector<uint64_t> sizes;
  if (facts.shmem_thp != "force") sizes.push_back(facts.page_bytes);
  const auto pmd = facts.shmem_mthp.find(facts.pmd_bytes);
  const bool pmd_on = !facts.shmem_thp.empty() && facts.shmem_thp != "deny" &&
                      (pmd == facts.shmem_mthp.end() || pmd->second != "never");
  if (pmd_on) sizes.push_back(facts.pmd_bytes);
  for (const auto& [bytes, word] : facts.shmem_mthp) {
    if (bytes == facts.pmd_bytes || bytes <= facts.page_bytes || !enabled(word)) continue;
    if (facts.shmem_thp == "deny") continue;
    bool larger_on = bytes < facts.pmd_bytes && pmd_on;
    for (const auto& [other, other_word] : facts.shmem_mthp)
      if (other > bytes && other != facts.pmd_bytes && size_enabled(other_word)) larger_on = true;
    if (!larger_on) sizes.push_back(bytes);
  }
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

KernelFacts probe_kernel_facts(const std::string& sysfs_root) {
  namespace fs = std::filesystem;
  KernelFacts facts;
  const long page = sysconf(_SC_PAGESIZE);
  if (page > 0) facts.page_bytes = static_cast<uint64_t>(page);
  const fs::path thp = fs::path(sysfs_root) / "kernel/mm/transparent_hugepage";
  facts.shmem_thp = selected_word(thp / "shmem_enabled");
  std::ifstream pmd(thp / "hpage_pmd_size");
  uint64_t pmd_bytes = 0;
  if (pmd >> pmd_bytes && pmd_bytes != 0) facts.pmd_bytes = pmd_bytes;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(thp, ec)) {
    unsigned long long kib = 0;
    const std::string name = entry.path().filename().string();
    if (std::sscanf(name.c_str(), "hugepages-%llukB", &kib) != 1) continue;
    const std::string word = selected_word(entry.path() / "shmem_enabled");
    if (!word.empty()) facts.shmem_mthp[kib * 1024] = word;
  }
#ifdef TIERFS_KERNEL_PATH
  facts.kernel_path_built = true;
#endif
  facts.weighted_interleave =
      fs::is_directory(fs::path(sysfs_root) / "kernel/mm/mempolicy/weighted_interleave", ec);
  utsname uts{};
  int major = 0;
  int minor = 0;
  if (uname(&uts) == 0 && std::sscanf(uts.release, "%d.%d", &major, &minor) == 2) {
    facts.kernel_passthrough = major > 6 || (major == 6 && minor >= 9);
    facts.kernel_passthrough_mmap = major > 6 || (major == 6 && minor >= 10);
  }
  facts.handover_privilege = holds_handover_privilege();
  return facts;
}

std::vector<DataPathChoice> choose_data_paths(const std::vector<TierConfig>& tiers,
                                              const MountOptions& mount, const KernelFacts& facts) {
  std::vector<DataPathChoice> choices;
  std::map<int, uint32_t> node_weights;
  for (const TierConfig& tier : tiers) {
    DataPathChoice choice;
    if (tier.data_path == DataPathMode::server) {
      choice.reason = "data_path = \"server\"";
      choices.push_back(std::move(choice));
      continue;
    }
    bool weighted = false;
    const std::string refusal = kernel_refusal(tier, mount, facts, node_weights, weighted);
    choice.qualifies = refusal.empty();
    const char* policy = weighted ? "weighted interleave" : "interleave";
    if (!refusal.empty()) {
      choice.reason = refusal;
    } else if (!facts.kernel_passthrough) {
      choice.qualifies = false;
      choice.reason = "this kernel has no FUSE passthrough (Linux 6.9+)";
    } else if (!facts.kernel_path_built) {
      choice.reason = fmt::format(
          "the tier qualifies ({} at {}) but the kernel path is not built: this libfuse has no "
          "FUSE passthrough (3.16+; scripts/setup.sh builds 3.18)",
          policy, format_size(tier.granularity_bytes));
    } else if (!facts.handover_privilege) {
      choice.reason = fmt::format(
          "the tier qualifies ({} at {}) but this process lacks CAP_SYS_ADMIN in the initial "
          "user namespace, which handing files to the kernel needs (FUSE_DEV_IOC_BACKING_OPEN); "
          "a mount by root takes the kernel path",
          policy, format_size(tier.granularity_bytes));
    } else {
      choice.path = DataPath::kernel;
      choice.reason =
          fmt::format("{} at {} by the kernel", policy, format_size(tier.granularity_bytes));
    }
    choices.push_back(std::move(choice));
  }
  return choices;
}

}  // namespace tierfs
