// `tierfs bpf check [--cases N] [--seed S] [--json]`: what this kernel offers
// the iomap BPF path, what the verifier says about both programs (the
// fuse_iomap_bpf_ops one only where the kernel has the type), and the
// equivalence self-test: random cases mapped by the twin in the kernel and by
// the same header code in C++. Exit 0 only when every program the kernel can
// take loaded and every case agreed.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "bpf/equivalence.h"
#include "bpf/iomap_loader.h"
#include "kernel/probe.h"
#include "tierfs/cli/commands.h"

namespace tierfs {

namespace {

struct BpfCheckArgs {
  uint64_t cases = 100000;
  uint64_t seed = 1;
  bool json = false;
};

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

nlohmann::json report_json(const bpf::ProgramReport& r) {
  return {{"name", r.name},
          {"loaded", r.loaded},
          {"object_insns", r.object_insns},
          {"verified_insns", r.verified_insns},
          {"xlated_bytes", r.xlated_bytes},
          {"jited_bytes", r.jited_bytes}};
}

std::string report_line(const std::string& what, const bpf::ProgramReport& r) {
  return fmt::format(
      "{} ({}): verifier accepted; {} object insns, {} verified insns, {} jited bytes", what,
      r.name, r.object_insns, r.verified_insns, r.jited_bytes);
}

nlohmann::json mix_json(const bpf::CaseMix& m) {
  return {{"one_way", m.one_way},
          {"max_ways", m.max_ways},
          {"weighted", m.weighted},
          {"granularity_4k", m.granularity_4k},
          {"granularity_1g", m.granularity_1g},
          {"near_2_63", m.near_2_63},
          {"near_2_64", m.near_2_64},
          {"unwritten", m.unwritten},
          {"cut_at_boundary", m.cut_at_boundary},
          {"writes", m.writes}};
}

int run_check(const BpfCheckArgs& args) {
  const kernel::KernelFeatures features = kernel::probe_kernel();
  if (!features.bpf_usable) throw std::runtime_error("bpf check: " + features.bpf_missing);
  auto say = [&](const std::string& line) {
    if (!args.json) fmt::print("{}\n", line);
  };
  const std::string unavailable = kernel::iomap_program_unavailable(features);
  nlohmann::json doc = {
      {"kernel", features.release},
      {"btf", features.btf},
      {"fuse_module", features.fuse_module},
      {"fuse_iomap", features.fuse_iomap},
      {"fuse_iomap_bpf_ops", features.fuse_iomap_bpf_ops},
      {"fuse_bpf_inode", features.fuse_bpf_inode},
      {"generation", kernel::iomap_generation(features)},
      {"enable_iomap", features.enable_iomap ? nlohmann::json(*features.enable_iomap) : nullptr},
      {"cap_sys_rawio", features.cap_sys_rawio},
      {"libbpf", features.libbpf_version},
      {"libbpf_module_struct_ops", features.libbpf_module_struct_ops},
      {"libfuse", features.libfuse_version},
      {"libfuse_iomap", features.libfuse_iomap},
      {"path", unavailable.empty() ? "iomap BPF program" : "server"},
      {"path_reason", first_line(unavailable)}};
  // One line per fact, then the path they add up to.
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  say(fmt::format("kernel: {}, BTF {}, fuse {}", features.release, yes(features.btf),
                  features.fuse_module ? "a module (types in /sys/kernel/btf/fuse)" : "built in"));
  say("fuse-iomap interface: " + kernel::iomap_generation(features));
  say(fmt::format("fuse module parameter enable_iomap: {}", !features.enable_iomap   ? "absent"
                                                            : *features.enable_iomap ? "Y"
                                                                                     : "N"));
  say(fmt::format("CAP_SYS_RAWIO: {}", yes(features.cap_sys_rawio)));
  say(fmt::format("libbpf {}: struct_ops over module BTF {} (from 1.4)", features.libbpf_version,
                  yes(features.libbpf_module_struct_ops)));
  say(fmt::format("libfuse {}: negotiates FUSE_IOMAP {}", features.libfuse_version,
                  yes(features.libfuse_iomap)));
  std::string reason = first_line(unavailable);
  if (const auto cut = reason.rfind(": the server path"); cut != std::string::npos)
    reason.resize(cut);
  say(unavailable.empty() ? std::string("path: the iomap BPF program, attached after FUSE_INIT")
                          : "path: server, because " + reason);
  // Which generation, and what each tier would take on it (docs/bpf.md has the table).
  switch (kernel::iomap_kernel(features)) {
    case kernel::IomapKernel::may2026:
      doc["iomap_kernel"] = "may2026";
      say("stripe path: May 2026 kernel: equal-weight tiers on block devices register as "
          "stripes (FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG), weighted ones get the server's "
          "FUSE_IOMAP_BEGIN answers; both need a libfuse that negotiates FUSE_IOMAP");
      break;
    case kernel::IomapKernel::feb2026:
      doc["iomap_kernel"] = "feb2026";
      break;
    case kernel::IomapKernel::unknown_revision:
      doc["iomap_kernel"] = "unknown_revision";
      break;
    case kernel::IomapKernel::none:
      doc["iomap_kernel"] = "none";
      break;
  }
  int status = 0;

  std::string error;
  auto names = bpf::inspect_iomap_object(error);
  if (names) {
    doc["struct_ops"] = {{"type", names->struct_ops_type}, {"members", names->members}};
    std::string members;
    for (const auto& m : names->members) members += (members.empty() ? "" : ", ") + m;
    say(fmt::format("struct_ops object: type {} with {}", names->struct_ops_type, members));
  } else {
    say("struct_ops object: " + first_line(error));
    doc["struct_ops"] = {{"error", first_line(error)}};
    status = 1;
  }

  auto loader = bpf::IomapLoader::load(error);
  if (!loader) {
    if (args.json) {
      doc["twin"] = {{"loaded", false}, {"error", error}};
      fmt::print("{}\n", doc.dump(2));
    } else {
      fmt::print(stderr, "{}\n", error);
    }
    return 1;
  }
  doc["twin"] = report_json(loader->twin_report());
  say(report_line("twin", loader->twin_report()));

  if (features.fuse_iomap_bpf_ops) {
    const std::string refused = loader->verify_iomap(features);
    if (loader->iomap_report()) doc["iomap"] = report_json(*loader->iomap_report());
    if (refused.empty()) {
      say(report_line("struct_ops", *loader->iomap_report()));
    } else {
      doc["iomap_error"] = refused;
      if (!args.json) fmt::print(stderr, "struct_ops program: {}\n", refused);
      status = 1;
    }
  } else {
    say(
        fmt::format("kernel {} has no fuse_iomap_bpf_ops: struct_ops program not loaded "
                    "(the twin runs its iomap_begin body)",
                    features.release));
  }

  const bpf::EquivalenceResult result = bpf::check_equivalence(*loader, args.cases, args.seed);
  doc["equivalence"] = {{"cases", result.cases},         {"agreed", result.agreed},
                        {"mapped", result.mapped},       {"holes", result.holes},
                        {"fallbacks", result.fallbacks}, {"seed", args.seed},
                        {"mix", mix_json(result.mix)}};
  if (result.error != 0) {
    doc["equivalence"]["error"] = std::string(std::strerror(-result.error));
    if (!args.json)
      fmt::print(stderr, "equivalence: stopped after {} cases: {}\n", result.cases,
                 std::strerror(-result.error));
    status = 1;
  }
  say(fmt::format(
      "equivalence: {} of {} cases agreed (twin in the kernel vs C++; {} mapped, "
      "{} holes, {} fallbacks; seed {})",
      result.agreed, result.cases, result.mapped, result.holes, result.fallbacks, args.seed));
  // The check runs whole rounds of requests, so it may run more cases than asked for: say so.
  doc["equivalence"]["cases_requested"] = args.cases;
  if (result.error == 0 && result.cases != args.cases)
    say(fmt::format("equivalence: ran {} cases for --cases {} (the check runs whole rounds)",
                    result.cases, args.cases));
  doc["equivalence"]["kernel_rules"] = {{"checked", result.checked},
                                        {"violations", result.violations}};
  say(fmt::format("kernel rules: {} of {} handled answers pass fuse_iomap_begin_validate",
                  result.checked - result.violations, result.checked));
  if (result.violations != 0) {
    doc["equivalence"]["first_violation"] = result.first_violation;
    if (!args.json) fmt::print(stderr, "first violation: {}\n", result.first_violation);
    status = 1;
  }
  if (result.agreed != result.cases) {
    doc["equivalence"]["first_disagreement"] = result.first_disagreement;
    if (!args.json) fmt::print(stderr, "first disagreement: {}\n", result.first_disagreement);
    status = 1;
  }
  if (args.json) fmt::print("{}\n", doc.dump(2));
  return status;
}

}  // namespace

void add_bpf_command(CLI::App& app, int& status) {
  auto* bpf = app.add_subcommand("bpf", "The iomap BPF programs: load, verify, self-test");
  bpf->require_subcommand(1);
  auto args = std::make_shared<BpfCheckArgs>();
  auto* check = bpf->add_subcommand(
      "check", "Load both programs, print the verifier's verdict and run the equivalence test");
  check->add_option("--cases", args->cases, "random cases for the equivalence test")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  check->add_option("--seed", args->seed, "seed of the random cases");
  check->add_flag("--json", args->json, "print one JSON document");
  check->callback([args, &status] { status = run_check(*args); });
}

}  // namespace tierfs
