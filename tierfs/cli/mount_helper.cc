// mount.fuse3's calling convention for `tierfs` (see mount_helper.h).
#include "tierfs/cli/mount_helper.h"

#include <grp.h>
#include <pwd.h>

#include <fmt/core.h>
#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace tierfs {

std::optional<std::vector<std::string>> mount_helper_args(
    int argc, char** argv, const std::vector<std::string>& subcommands) {
  if (argc < 3) return std::nullopt;
  const std::string first = argv[1];
  if (first.empty() || first[0] == '-' ||
      std::find(subcommands.begin(), subcommands.end(), first) != subcommands.end())
    return std::nullopt;
  // tierfs SOURCE MOUNTPOINT [-o OPTS]...: SOURCE names the mount in fstab
  // and mtab only; the configuration comes from config=FILE.
  std::vector<std::string> out = {argv[0], "mount"};
  const std::string mountpoint = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-o" && i + 1 < argc) {
      out.push_back("-o");
      out.push_back(argv[++i]);
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      out.push_back("-o");
      out.push_back(arg.substr(2));
    } else {
      throw std::runtime_error(fmt::format(
          "as a mount helper (tierfs SOURCE MOUNTPOINT -o OPTIONS), \"{}\" is not understood",
          arg));
    }
  }
  out.push_back(mountpoint);
  return out;
}

namespace {

// A number, or a name that the user or group database knows.
unsigned long id_of(const std::string& key, const std::string& value) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(value.c_str(), &end, 10);
  if (!value.empty() && *end == '\0' && value[0] != '-' && n < 0xffffffffUL) return n;
  if (key == "uid") {
    if (const passwd* pw = getpwnam(value.c_str())) return pw->pw_uid;
  } else if (const group* gr = getgrnam(value.c_str())) {
    return gr->gr_gid;
  }
  throw std::runtime_error(
      fmt::format("mount option {}={}: no such {}", key, value, key == "uid" ? "user" : "group"));
}

}  // namespace

TierfsMountOptions take_tierfs_options(std::vector<std::string>& options) {
  TierfsMountOptions out;
  std::vector<std::string> rest;
  for (const std::string& option : options) {
    const size_t eq = option.find('=');
    const std::string key = option.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : option.substr(eq + 1);
    if (key == "fresh") {
      if (eq != std::string::npos)
        throw std::runtime_error("mount option fresh takes no value (fresh, not fresh=...)");
      out.fresh = true;
      continue;
    }
    const bool known =
        key == "config" || key == "uid" || key == "gid" || key == "mode" || key == "log_file";
    if (!known) {
      rest.push_back(option);
      continue;
    }
    if (value.empty())
      throw std::runtime_error(fmt::format("mount option {} needs a value ({}=...)", key, key));
    if (key == "config") {
      out.config_file = value;
    } else if (key == "log_file") {
      out.log_file = value;
    } else if (key == "uid") {
      out.root_uid = static_cast<uid_t>(id_of(key, value));
    } else if (key == "gid") {
      out.root_gid = static_cast<gid_t>(id_of(key, value));
    } else {
      char* end = nullptr;
      const unsigned long mode = std::strtoul(value.c_str(), &end, 8);
      if (*end != '\0' || mode > 07777)
        throw std::runtime_error(
            fmt::format("mount option mode={}: not an octal mode such as 0700", value));
      out.root_mode = static_cast<mode_t>(mode);
    }
  }
  options = std::move(rest);
  return out;
}

}  // namespace tierfs
