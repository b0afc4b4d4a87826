// Loads the twin (always) and the struct_ops program (where the kernel has
// fuse_iomap_bpf_ops), shares one pair of maps between them, and reports
// what the verifier said. libbpf's messages are captured while loading so a
// refusal comes back as text with the verifier log, not on stderr.
#include "bpf/iomap_loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>

#include <spdlog/spdlog.h>

#include "bpf/iomap.skel.h"
#include "bpf/twin.skel.h"

namespace tierfs::bpf {
namespace {

constexpr const char* kStructOpsType = "fuse_iomap_bpf_ops";
constexpr const char* kStructOpsVariable = "tierfs_iomap_ops";
constexpr const char* kStructOpsSection = ".struct_ops";

// libbpf has one global print callback: capture into `captured` while a load runs.
std::mutex capture_mutex;
std::string* captured = nullptr;

int capture_print(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG || captured == nullptr) return 0;
  char line[4096];
  const int n = vsnprintf(line, sizeof(line), format, args);
  if (n > 0) captured->append(line, std::min<size_t>(static_cast<size_t>(n), sizeof(line) - 1));
  return n;
}

class LibbpfLogCapture {
 public:
  explicit LibbpfLogCapture(std::string& log) : lock_(capture_mutex) {
    captured = &log;
    previous_ = libbpf_set_print(capture_print);
  }
  ~LibbpfLogCapture() {
    libbpf_set_print(previous_);
    captured = nullptr;
  }
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
  libbpf_print_fn_t previous_ = nullptr;
};

void fill_report(const bpf_program* prog, ProgramReport& report) {
  report.name = bpf_program__name(prog);
  report.object_insns = static_cast<uint32_t>(bpf_program__insn_cnt(prog));
  const int fd = bpf_program__fd(prog);
  if (fd < 0) return;
  report.loaded = true;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
    report.verified_insns = info.verified_insns;
    report.xlated_bytes = info.xlated_prog_len;
    report.jited_bytes = info.jited_prog_len;
  }
}

// Byte offset of `member` in struct `type` per the object's BTF, or -1.
long member_offset(const btf* object_btf, const char* type, const char* member) {
  const int id = btf__find_by_name_kind(object_btf, type, BTF_KIND_STRUCT);
  if (id < 0) return -1;
  const btf_type* t = btf__type_by_id(object_btf, id);
  const btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++m)
    if (std::strcmp(btf__name_by_offset(object_btf, m->name_off), member) == 0)
      return static_cast<long>(btf_member_bit_offset(t, i) / 8);
  return -1;
}

// Byte offset of `variable` inside data section `section` per the object's BTF, or -1.
long variable_offset(const btf* object_btf, const char* section, const char* variable) {
  const int id = btf__find_by_name_kind(object_btf, section, BTF_KIND_DATASEC);
  if (id < 0) return -1;
  const btf_type* t = btf__type_by_id(object_btf, id);
  const btf_var_secinfo* v = btf_var_secinfos(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++v) {
    const btf_type* var = btf__type_by_id(object_btf, v->type);
    if (std::strcmp(btf__name_by_offset(object_btf, var->name_off), variable) == 0)
      return static_cast<long>(v->offset);
  }
  return -1;
}

// File offset of the ELF section `name`, or -1.
long section_file_offset(const std::vector<char>& elf, const char* name, size_t& size) {
  if (elf.size() < sizeof(Elf64_Ehdr)) return -1;
  Elf64_Ehdr header;
  std::memcpy(&header, elf.data(), sizeof(header));
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_shentsize != sizeof(Elf64_Shdr))
    return -1;
  auto section = [&](size_t index, Elf64_Shdr& out) {
    const size_t at = header.e_shoff + index * sizeof(Elf64_Shdr);
    if (at + sizeof(Elf64_Shdr) > elf.size()) return false;
    std::memcpy(&out, elf.data() + at, sizeof(out));
    return true;
  };
  Elf64_Shdr names;
  if (!section(header.e_shstrndx, names)) return -1;
  for (size_t i = 0; i < header.e_shnum; ++i) {
    Elf64_Shdr s;
    if (!section(i, s)) return -1;
    const size_t name_at = names.sh_offset + s.sh_name;
    if (name_at >= elf.size()) continue;
    if (std::strncmp(elf.data() + name_at, name, elf.size() - name_at) == 0) {
      size = s.sh_size;
      return static_cast<long>(s.sh_offset);
    }
  }
  return -1;
}

uint32_t map_id(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

std::vector<char> iomap_object_bytes() {
  size_t size = 0;
  const void* bytes = iomap__elf_bytes(&size);
  const char* begin = static_cast<const char*>(bytes);
  return std::vector<char>(begin, begin + size);
}

// libbpf 1.1 has no API to set a struct_ops data field before load, so the
// loader writes fuse_fd into the object's .struct_ops section, at the offset
// the object's own BTF gives, before libbpf opens it.
std::string set_fuse_fd(std::vector<char>& elf, int fuse_fd) {
  bpf_object* probe = bpf_object__open_mem(elf.data(), elf.size(), nullptr);
  if (probe == nullptr) return "cannot open the iomap BPF object";
  const btf* object_btf = bpf_object__btf(probe);
  const long member = member_offset(object_btf, kStructOpsType, "fuse_fd");
  const long variable = variable_offset(object_btf, kStructOpsSection, kStructOpsVariable);
  bpf_object__close(probe);
  size_t section_size = 0;
  const long section = section_file_offset(elf, kStructOpsSection, section_size);
  if (member < 0 || variable < 0 || section < 0 ||
      static_cast<size_t>(variable + member) + sizeof(int) > section_size ||
      static_cast<size_t>(section + variable + member) + sizeof(int) > elf.size())
    return "the iomap BPF object has no fuse_fd field in its .struct_ops section";
  std::memcpy(elf.data() + section + variable + member, &fuse_fd, sizeof(int));
  return "";
}

}  // namespace

tierfs_twin_answer map_request_in_userspace(const MapsSnapshot& maps,
                                            const tierfs_twin_request& request) {
  tierfs_twin_answer answer{};
  const auto inode = maps.inodes.find(request.nodeid);
  if (inode == maps.inodes.end()) return answer;  // FALLBACK, zeroed out pair
  const tierfs_extent_hit hit = tierfs_find_extent(&inode->second, request.pos);
  const tierfs_tier_value* tier = nullptr;
  if (hit.index < TIERFS_MAX_INODE_EXTENTS) {
    const uint32_t key = inode->second.extents[hit.index].tier;
    if (key < maps.tiers.size()) tier = &maps.tiers[key];
  }
  answer.verdict = tierfs_iomap_fill(&inode->second, hit, tier, request.pos, request.count,
                                     request.opflags, &answer.out);
  return answer;
}

std::optional<IomapObjectNames> inspect_iomap_object(std::string& error) {
  std::vector<char> elf = iomap_object_bytes();
  std::string log;
  LibbpfLogCapture capture(log);
  bpf_object* object = bpf_object__open_mem(elf.data(), elf.size(), nullptr);
  if (object == nullptr) {
    error = "cannot open the iomap BPF object: " + log;
    return std::nullopt;
  }
  IomapObjectNames names;
  const btf* object_btf = bpf_object__btf(object);
  // libbpf fills a struct_ops map's value type only at load, against the
  // kernel's BTF: read the variables of the object's .struct_ops section.
  const int section = btf__find_by_name_kind(object_btf, kStructOpsSection, BTF_KIND_DATASEC);
  const btf_type* datasec = section < 0 ? nullptr : btf__type_by_id(object_btf, section);
  const btf_var_secinfo* v = datasec == nullptr ? nullptr : btf_var_secinfos(datasec);
  for (int i = 0; datasec != nullptr && i < btf_vlen(datasec); ++i, ++v) {
    const btf_type* var = btf__type_by_id(object_btf, v->type);
    const btf_type* t = btf__type_by_id(object_btf, btf__resolve_type(object_btf, var->type));
    if (t == nullptr || !btf_is_struct(t)) continue;
    names.struct_ops_type = btf__name_by_offset(object_btf, t->name_off);
    const btf_member* m = btf_members(t);
    for (int j = 0; j < btf_vlen(t); ++j, ++m)
      names.members.emplace_back(btf__name_by_offset(object_btf, m->name_off));
  }
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, object) names.programs.emplace_back(bpf_program__name(prog));
  bpf_object__close(object);
  return names;
}

std::unique_ptr<IomapLoader> IomapLoader::load(std::string& error) {
  std::unique_ptr<IomapLoader> loader(new IomapLoader());
  std::string log;
  {
    LibbpfLogCapture capture(log);
    loader->twin_ = twin__open();
    if (loader->twin_ == nullptr) {
      error = "cannot open the BPF twin object: " + std::string(std::strerror(errno));
      return nullptr;
    }
    const int err = twin__load(loader->twin_);
    fill_report(loader->twin_->progs.map_batch, loader->twin_report_);
    if (err != 0) {
      loader->twin_report_.log = log;
      error = "the kernel refused the BPF twin program (" + std::string(std::strerror(-err)) +
              ")\n" + log;
      return nullptr;
    }
  }
  loader->twin_prog_fd_ = bpf_program__fd(loader->twin_->progs.map_batch);
  loader->tiers_fd_ = bpf_map__fd(loader->twin_->maps.tierfs_tiers);
  loader->inodes_fd_ = bpf_map__fd(loader->twin_->maps.tierfs_inodes);
  loader->tiers_map_id_ = map_id(loader->tiers_fd_);
  loader->inodes_map_id_ = map_id(loader->inodes_fd_);
  return loader;
}

IomapLoader::~IomapLoader() {
  if (iomap_link_ != nullptr) bpf_link__destroy(iomap_link_);
  if (iomap_object_ != nullptr) bpf_object__close(iomap_object_);
  if (twin_ != nullptr) twin__destroy(twin_);
}

int IomapLoader::set_tier(uint32_t tier, const tierfs_layout& layout,
                          std::span<const uint32_t> device_cookies) {
  if (tier >= TIERFS_MAX_TIERS) return -E2BIG;
  if (device_cookies.size() > TIERFS_MAX_WAYS) return -EINVAL;
  tierfs_tier_value value{};
  value.layout = layout;
  std::copy(device_cookies.begin(), device_cookies.end(), value.device_cookie);
  return bpf_map_update_elem(tiers_fd_, &tier, &value, BPF_ANY) == 0 ? 0 : -errno;
}

int IomapLoader::set_extents(uint64_t nodeid, std::span<const tierfs_extent> extents) {
  if (extents.size() > TIERFS_MAX_INODE_EXTENTS) return remove_inode(nodeid);
  tierfs_inode_value value{};
  value.count = static_cast<uint32_t>(extents.size());
  std::copy(extents.begin(), extents.end(), value.extents);
  // The program's lookup stops at the first extent past pos: it needs them sorted.
  std::sort(
      value.extents, value.extents + value.count,
      [](const tierfs_extent& a, const tierfs_extent& b) { return a.file_offset < b.file_offset; });
  if (bpf_map_update_elem(inodes_fd_, &nodeid, &value, BPF_ANY) == 0) return 0;
  const int err = -errno;
  // A stale entry would map the file's old rows: remove it so the program falls back.
  const int remove_err =
      bpf_map_delete_elem(inodes_fd_, &nodeid) == 0 || errno == ENOENT ? 0 : -errno;
  map_update_failed("update", nodeid, err, remove_err);
  return err;
}

int IomapLoader::remove_inode(uint64_t nodeid) {
  if (bpf_map_delete_elem(inodes_fd_, &nodeid) == 0 || errno == ENOENT) return 0;
  const int err = -errno;
  map_update_failed("remove", nodeid, err, err);
  return err;
}

void IomapLoader::map_update_failed(const char* what, uint64_t nodeid, int err, int remove_err) {
  if (map_update_errors_.fetch_add(1, std::memory_order_relaxed) != 0) return;  // log the first
  spdlog::warn("BPF inode map: cannot {} inode {} ({}){}; such inodes fall back to the server",
               what, nodeid, std::strerror(-err),
               remove_err == 0 ? "" : ", and its stale entry could not be removed");
}

std::string IomapLoader::attach_iomap(int fuse_fd, const kernel::KernelFeatures& features) {
  std::string reason = kernel::iomap_program_unavailable(features);
  if (!reason.empty()) return reason;
  return load_iomap_object(fuse_fd, true);
}

std::string IomapLoader::verify_iomap(const kernel::KernelFeatures& features) {
  std::string reason = kernel::iomap_program_unloadable(features);
  if (!reason.empty()) return reason;
  std::string error = load_iomap_object(-1, false);
  bpf_object__close(iomap_object_);
  iomap_object_ = nullptr;
  return error;
}

std::string IomapLoader::load_iomap_object(int fuse_fd, bool attach) {
  if (iomap_object_ != nullptr) return "the iomap BPF program is already loaded";
  std::vector<char> elf = iomap_object_bytes();
  std::string error = set_fuse_fd(elf, fuse_fd);
  if (!error.empty()) return error;
  std::string log;
  LibbpfLogCapture capture(log);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "tierfs_iomap");
  iomap_object_ = bpf_object__open_mem(elf.data(), elf.size(), &opts);
  if (iomap_object_ == nullptr) return "cannot open the iomap BPF object: " + log;
  // Both objects must read the maps the server writes: the twin created them.
  bpf_map__reuse_fd(bpf_object__find_map_by_name(iomap_object_, "tierfs_tiers"), tiers_fd_);
  bpf_map__reuse_fd(bpf_object__find_map_by_name(iomap_object_, "tierfs_inodes"), inodes_fd_);
  const int err = bpf_object__load(iomap_object_);
  ProgramReport report;
  report.name = "tierfs_iomap_begin";
  if (bpf_program* begin = bpf_object__find_program_by_name(iomap_object_, "tierfs_iomap_begin"))
    fill_report(begin, report);
  if (err != 0) {
    report.log = log;
    iomap_report_ = report;
    return "the kernel refused the iomap BPF program (" + std::string(std::strerror(-err)) +
           "): the server path serves all I/O\n" + log;
  }
  iomap_report_ = report;
  if (!attach) return "";
  bpf_map* ops = bpf_object__find_map_by_name(iomap_object_, kStructOpsVariable);
  iomap_link_ = ops != nullptr ? bpf_map__attach_struct_ops(ops) : nullptr;
  if (iomap_link_ == nullptr)
    return "cannot attach the iomap BPF program to the FUSE session (" +
           std::string(std::strerror(errno)) + "): the server path serves all I/O";
  return "";
}

int IomapLoader::map_in_kernel(std::span<const tierfs_twin_request> requests,
                               std::span<tierfs_twin_answer> answers) {
  if (answers.size() < requests.size()) return -EINVAL;
  for (size_t done = 0; done < requests.size(); done += TIERFS_TWIN_BATCH) {
    const size_t n = std::min<size_t>(TIERFS_TWIN_BATCH, requests.size() - done);
    std::copy_n(requests.begin() + done, n, twin_->bss->requests);
    tierfs_twin_ctx ctx{static_cast<uint32_t>(n), 0};
    // Syscall programs take no ctx_out: the kernel writes the context back into ctx_in.
    LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
    if (bpf_prog_test_run_opts(twin_prog_fd_, &run) != 0) return -errno;
    if (run.retval != 0) return -EINVAL;
    std::copy_n(twin_->bss->answers, n, answers.begin() + done);
  }
  return 0;
}

int IomapLoader::snapshot(MapsSnapshot& out) const {
  out.tiers.assign(TIERFS_MAX_TIERS, tierfs_tier_value{});
  for (uint32_t key = 0; key < TIERFS_MAX_TIERS; ++key)
    if (bpf_map_lookup_elem(tiers_fd_, &key, &out.tiers[key]) != 0) return -errno;
  out.inodes.clear();
  uint64_t key = 0;
  const void* previous = nullptr;
  while (bpf_map_get_next_key(inodes_fd_, previous, &key) == 0) {
    tierfs_inode_value value{};
    if (bpf_map_lookup_elem(inodes_fd_, &key, &value) == 0) out.inodes[key] = value;
    previous = &key;
  }
  return errno == ENOENT ? 0 : -errno;
}

}  // namespace tierfs::bpf
