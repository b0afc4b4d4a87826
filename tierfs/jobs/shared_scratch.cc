// This node's part of a job's MooseFS file system (see shared_scratch.h):
// configuration files written here, daemons started and stopped with their
// own start/stop/test actions, mfsmount retried until the master (which the
// first node's prolog may start later) answers.
#include "tierfs/jobs/shared_scratch.h"

#include <arpa/inet.h>
#include <grp.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tierfs/jobs/job_control.h"
#include "tierfs/jobs/job_state.h"
#include "tierfs/jobs/run_program.h"

namespace tierfs::jobs {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr seconds kDaemonStart(30);
// stop waits for a daemon's orderly exit (the master writes its metadata);
// kill is for one stuck on a dead tierfs mount.
constexpr seconds kDaemonStop(30);

struct Layout {
  std::string dir;         // state_dir/<id>: configuration, lock files, the master's metadata
  std::string mountpoint;  // base/<id>
  unsigned port_ml = 0, port_cs = 0, port_cl = 0, port_chunk = 0;
};

Layout layout_of(const NodeConfig& node, const std::string& job_id) {
  Layout l;
  l.dir = node.shared.state_dir + "/" + job_id;
  l.mountpoint = node.shared.base + "/" + job_id;
  unsigned k = 0;
  for (char c : job_id) k = (k * 10 + static_cast<unsigned>(c - '0')) % 100;
  l.port_ml = node.shared.port_base + 3 * k;
  l.port_cs = l.port_ml + 1;
  l.port_cl = l.port_ml + 2;
  l.port_chunk = node.shared.port_base + 300 + k;
  return l;
}

[[noreturn]] void shared_error(const std::string& what) {
  throw JobError(JobExit::shared_failed, "shared scratch: " + what);
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

// MooseFS 3.0 speaks IPv4 only.
std::string ipv4_of(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || !found)
    throw JobError(JobExit::bad_request,
                   fmt::format("shared scratch: node \"{}\" has no IPv4 address: {}", host,
                               rc != 0 ? gai_strerror(rc) : "none"));
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, text, sizeof text);
  freeaddrinfo(found);
  return text;
}

std::set<std::string> local_ipv4() {
  std::set<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
    out.insert(text);
  }
  freeifaddrs(list);
  return out;
}

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buffer[4096];
  if (getpwuid_r(uid, &pw, buffer, sizeof buffer, &found) != 0 || !found)
    throw JobError(JobExit::bad_request,
                   fmt::format("shared scratch: no user with uid {} (the MooseFS daemons run as "
                               "the job's user)",
                               uid));
  return pw.pw_name;
}

std::string group_name(gid_t gid) {
  group gr{};
  group* found = nullptr;
  char buffer[4096];
  if (getgrgid_r(gid, &gr, buffer, sizeof buffer, &found) != 0 || !found)
    throw JobError(JobExit::bad_request, fmt::format("shared scratch: no group with gid {}", gid));
  return gr.gr_name;
}

// The daemons print their progress; the line that says why comes before
// their closing "error occurred during initialization".
std::string first_error(const std::string& output) {
  std::istringstream in(output);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    for (const char* word : {"can't", "cannot", "error", "fail"})
      if (lower.find(word) != std::string::npos) return line;
    last = line;
  }
  return last.empty() ? "no output" : last;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) shared_error(fmt::format("cannot write {}", path));
}

void make_dir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
    shared_error(fmt::format("cannot create {}: {}", path, strerror(errno)));
}

void give(const std::string& path, uid_t uid, gid_t gid) {
  if (chown(path.c_str(), uid, gid) != 0)
    shared_error(fmt::format("cannot give {} to {}:{}: {}", path, uid, gid, strerror(errno)));
}

bool daemon_running(const std::string& program, const std::string& cfg) {
  if (access(cfg.c_str(), F_OK) != 0) return false;
  return run_program({program, "-c", cfg, "test"}, seconds(10)).exit_status == 0;
}

void start_daemon(const std::string& program, const std::string& cfg) {
  const ProgramResult r = run_program({program, "-c", cfg, "start"}, kDaemonStart);
  if (r.not_found)
    shared_error(
        fmt::format("{} is not installed (moosefs-master, -chunkserver, -client)", program));
  if (r.exit_status != 0)
    shared_error(fmt::format("{} did not start on {}: {}", program, host_name(),
                             r.timed_out ? "no answer within 30 s" : first_error(r.output)));
}

// Returns "" or what is left.
std::string stop_daemon(const std::string& program, const std::string& cfg) {
  if (access(cfg.c_str(), F_OK) != 0) return "";
  const ProgramResult r = run_program({program, "-c", cfg, "stop"}, kDaemonStop);
  if (r.exit_status != 0) run_program({program, "-c", cfg, "kill"}, seconds(10));
  if (daemon_running(program, cfg)) return fmt::format(" {} of {} still runs;", program, cfg);
  return "";
}

bool mounted(const std::string& path) {
  auto type = mount_type(path);
  return type && type->rfind("fuse", 0) == 0;
}

void write_master(const Layout& l, const std::string& user, const std::string& group,
                  const std::string& master_addr, const std::vector<std::string>& addrs,
                  const NodeConfig& node) {
  make_dir(l.dir + "/master", 0755);
  std::error_code ec;
  fs::copy_file(node.shared.empty_metadata, l.dir + "/master/metadata.mfs",
                fs::copy_options::overwrite_existing, ec);
  if (ec)
    shared_error(fmt::format("cannot copy the empty metadata {}: {}", node.shared.empty_metadata,
                             ec.message()));
  std::string exports;
  for (const std::string& a : addrs) exports += a + " / rw,alldirs,maproot=0\n";
  write_text(l.dir + "/exports.cfg", exports);
  write_text(l.dir + "/topology.cfg", "");
  write_text(
      l.dir + "/master.cfg",
      fmt::format("WORKING_USER = {0}\nWORKING_GROUP = {1}\nDATA_PATH = {2}/master\n"
                  "EXPORTS_FILENAME = {2}/exports.cfg\nTOPOLOGY_FILENAME = {2}/topology.cfg\n"
                  "MATOML_LISTEN_HOST = {3}\nMATOML_LISTEN_PORT = {4}\n"
                  "MATOCS_LISTEN_HOST = {3}\nMATOCS_LISTEN_PORT = {5}\n"
                  "MATOCL_LISTEN_HOST = {3}\nMATOCL_LISTEN_PORT = {6}\n"
                  "SYSLOG_IDENT = tierfs-mfsmaster-{7}\n",
                  user, group, l.dir, master_addr, l.port_ml, l.port_cs, l.port_cl,
                  fs::path(l.dir).filename().string()));
}

void write_chunkserver(const Layout& l, const std::string& user, const std::string& group,
                       const std::string& master_addr, const std::string& my_addr,
                       const std::string& chunks) {
  write_text(l.dir + "/hdd.cfg", chunks + "\n");
  write_text(l.dir + "/chunkserver.cfg",
             fmt::format("WORKING_USER = {0}\nWORKING_GROUP = {1}\nDATA_PATH = {2}\n"
                         "HDD_CONF_FILENAME = {2}/hdd.cfg\nHDD_LEAVE_SPACE_DEFAULT = 4MiB\n"
                         "MASTER_HOST = {3}\nMASTER_PORT = {4}\nMASTER_RECONNECTION_DELAY = 1\n"
                         "BIND_HOST = {5}\nCSSERV_LISTEN_HOST = {5}\nCSSERV_LISTEN_PORT = {6}\n"
                         "SYSLOG_IDENT = tierfs-mfschunkserver-{7}\n",
                         user, group, l.dir, master_addr, l.port_cs, my_addr, l.port_chunk,
                         fs::path(l.dir).filename().string()));
}

// mfsmount fails at once while the master is not up yet: retried.
void mount_shared(const Layout& l, const std::string& master_addr, unsigned timeout_s,
                  unsigned io_retries) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(timeout_s);
  std::string why;
  for (;;) {
    const ProgramResult r =
        run_program({"mfsmount", l.mountpoint, "-H", master_addr, "-P", std::to_string(l.port_cl),
                     "-o", fmt::format("mfsioretries={}", io_retries)},
                    seconds(timeout_s));
    if (r.not_found) shared_error("mfsmount is not installed (moosefs-client)");
    if (r.exit_status == 0 && mounted(l.mountpoint)) return;
    why = first_error(r.output);
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(500));
  }
  shared_error(fmt::format("mfsmount of {}:{} failed on {} within {} s: {}", master_addr, l.port_cl,
                           host_name(), timeout_s, why));
}

struct Placement {
  std::vector<std::string> addrs;  // of every node, in order
  std::string master;              // addrs[0]
  std::string mine;
};

Placement place(const SharedRequest& request) {
  if (request.nodes.empty())
    throw JobError(JobExit::bad_request, "shared scratch: no nodes given (--nodes)");
  if (request.job_id.find_first_not_of("0123456789") != std::string::npos)
    throw JobError(JobExit::bad_request,
                   fmt::format("shared scratch: job id \"{}\" is not a number (its ports "
                               "derive from it)",
                               request.job_id));
  Placement p;
  const std::set<std::string> local = local_ipv4();
  for (const std::string& n : request.nodes) {
    p.addrs.push_back(ipv4_of(n));
    if (p.mine.empty() && local.count(p.addrs.back())) p.mine = p.addrs.back();
  }
  p.master = p.addrs.front();
  if (p.mine.empty())
    throw JobError(JobExit::bad_request,
                   fmt::format("shared scratch: none of the job's nodes ({}) is an address of "
                               "this node ({})",
                               fmt::join(request.nodes, ","), host_name()));
  return p;
}

void start_parts(const NodeConfig& node, const SharedRequest& request, const Placement& p,
                 const Layout& l, const std::string& scratch) {
  const std::string user = user_name(request.uid);
  const std::string group = group_name(request.gid);
  make_dir(node.shared.state_dir, 0755);
  make_dir(l.dir, 0755);
  const std::string chunks = scratch + "/.moosefs";
  make_dir(chunks, 0700);
  give(chunks, request.uid, request.gid);
  make_dir(node.shared.base, 0755);
  make_dir(l.mountpoint, 0700);
  const bool first = p.mine == p.master;
  if (first && !daemon_running("mfsmaster", l.dir + "/master.cfg")) {
    // A master that ran for this job and died left the namespace in its
    // metadata: a fresh empty file system over it would lose every file.
    std::error_code ec;
    if (!fs::is_empty(l.dir + "/master", ec) && !ec)
      shared_error(
          fmt::format("the job's master is not running but left its metadata in {}/master "
                      "(kept; `mfsmaster -a -c {}/master.cfg` restores it)",
                      l.dir, l.dir));
    write_master(l, user, group, p.master, p.addrs, node);
    give(l.dir + "/master", request.uid, request.gid);
    give(l.dir + "/master/metadata.mfs", request.uid, request.gid);
    start_daemon("mfsmaster", l.dir + "/master.cfg");
  }
  if (!daemon_running("mfschunkserver", l.dir + "/chunkserver.cfg")) {
    write_chunkserver(l, user, group, p.master, p.mine, chunks);
    give(l.dir, request.uid, request.gid);
    start_daemon("mfschunkserver", l.dir + "/chunkserver.cfg");
  }
  if (!mounted(l.mountpoint)) {
    mount_shared(l, p.master, node.shared.mount_timeout_s, node.shared.io_retries);
    if (first) {
      if (chown(l.mountpoint.c_str(), request.uid, request.gid) != 0 ||
          chmod(l.mountpoint.c_str(), 0700) != 0)
        shared_error(fmt::format("cannot give {} to {}:{}: {}", l.mountpoint, request.uid,
                                 request.gid, strerror(errno)));
      const ProgramResult r = run_program(
          {"mfssetgoal", "-r", std::to_string(node.shared.goal), l.mountpoint}, seconds(30));
      if (r.exit_status != 0)
        shared_error(fmt::format("mfssetgoal {} on {} failed: {}", node.shared.goal, l.mountpoint,
                                 first_error(r.output)));
    }
  }
}

}  // namespace

void check_shared_request(const SharedRequest& request) {
  place(request);
  user_name(request.uid);
  group_name(request.gid);
}

std::string start_shared(const NodeConfig& node, const SharedRequest& request,
                         const std::string& scratch) {
  const Placement p = place(request);
  const Layout l = layout_of(node, request.job_id);
  const bool was_running = fs::exists(l.dir);
  try {
    start_parts(node, request, p, l, scratch);
  } catch (const JobError& e) {
    // A first start undoes everything; a restart keeps what ran before it.
    try {
      if (was_running)
        stop_chunkserver(node, request.job_id);
      else
        stop_shared(node, request.job_id);
    } catch (const JobError& cleanup) {
      throw JobError(e.status(), fmt::format("{} (and {})", e.what(), cleanup.what()));
    }
    throw;
  }
  return l.mountpoint;
}

void stop_chunkserver(const NodeConfig& node, const std::string& job_id) {
  const Layout l = layout_of(node, job_id);
  const std::string left = stop_daemon("mfschunkserver", l.dir + "/chunkserver.cfg");
  if (!left.empty())
    throw JobError(JobExit::cleanup_left,
                   fmt::format("job {}:{}", job_id, left.substr(0, left.size() - 1)));
}

bool stop_shared(const NodeConfig& node, const std::string& job_id) {
  check_job_id(job_id);
  const Layout l = layout_of(node, job_id);
  const bool had_mount = mount_type(l.mountpoint).has_value();
  if (!had_mount && !fs::exists(l.dir) && !fs::exists(l.mountpoint)) return false;
  std::string left;
  // The mount first: its users go before the daemons that serve it.
  if (had_mount && umount2(l.mountpoint.c_str(), UMOUNT_NOFOLLOW) != 0)
    umount2(l.mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  left += stop_daemon("mfschunkserver", l.dir + "/chunkserver.cfg");
  left += stop_daemon("mfsmaster", l.dir + "/master.cfg");
  if (mount_type(l.mountpoint)) left += fmt::format(" {} is still mounted;", l.mountpoint);
  if (rmdir(l.mountpoint.c_str()) != 0 && errno != ENOENT)
    left += fmt::format(" {}: {};", l.mountpoint, strerror(errno));
  if (left.empty()) {
    std::error_code ec;
    fs::remove_all(l.dir, ec);
    if (ec) left += fmt::format(" {}: {};", l.dir, ec.message());
  }
  if (!left.empty()) {
    left.pop_back();
    throw JobError(JobExit::cleanup_left, fmt::format("job {}:{}", job_id, left));
  }
  return true;
}

std::optional<std::string> shared_mountpoint(const NodeConfig& node, const std::string& job_id) {
  const Layout l = layout_of(node, job_id);
  if (mounted(l.mountpoint)) return l.mountpoint;
  return std::nullopt;
}

}  // namespace tierfs::jobs
