// Loading of the TOML configuration with toml++: typed reads that remember
// where each value stood, so that every error is one "FILE:LINE:COLUMN: what"
// line. Machine checks (nodes, devices, files, overlaps) and the resolution
// of tier sizes live in config_validate.cc.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <regex>
#include <set>

#include "tierfs/core/config.h"
#include "tierfs/core/config_internal.h"
#include "tierfs/core/units.h"

namespace tierfs {

ConfigError::ConfigError(const std::string& file, SourcePos pos, const std::string& what)
    : std::runtime_error(pos.line > 0
                             ? fmt::format("{}:{}:{}: {}", file, pos.line, pos.column, what)
                             : fmt::format("{}: {}", file, what)),
      file_(file),
      pos_(pos) {}

const TierConfig* Config::tier(std::string_view name) const {
  for (const TierConfig& t : tiers)
    if (t.name == name) return &t;
  return nullptr;
}

bool Config::any_persistent() const {
  for (const TierConfig& t : tiers)
    if (t.persistent) return true;
  return false;
}

bool Config::any_bytes_outlive_machine() const {
  for (const TierConfig& t : tiers)
    for (const TierRegion& r : t.regions)
      if (r.spec.kind != numa::RegionKind::numa) return true;
  return false;
}

int Config::tier_index(std::string_view name) const {
  for (size_t i = 0; i < tiers.size(); ++i)
    if (tiers[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace config_detail {

SourcePos pos_of(const toml::source_region& source) {
  return SourcePos{static_cast<int>(source.begin.line), static_cast<int>(source.begin.column)};
}

namespace {

const char* type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date";
    default:
      return "nothing";
  }
}

// Typed access to one TOML table; `where` names it in messages ("[mount]", "tier \"dram\"").
class TableReader {
 public:
  TableReader(const Reader& reader, const toml::table& table, std::string where)
      : reader_(reader), table_(table), where_(std::move(where)) {}

  void allow_only(std::initializer_list<std::string_view> keys) const {
    for (auto&& [key, node] : table_) {
      bool known = false;
      for (std::string_view k : keys) known = known || key.str() == k;
      if (!known)
        reader_.fail(pos_of(key.source()),
                     fmt::format("unknown key \"{}\" in {}", key.str(), where_));
    }
  }

  const toml::node* find(std::string_view key) const { return table_.get(key); }

  SourcePos pos(std::string_view key) const {
    const toml::node* node = find(key);
    return node ? pos_of(node->source()) : pos_of(table_.source());
  }

  [[noreturn]] void wrong_type(std::string_view key, const toml::node& node,
                               const char* wanted) const {
    reader_.fail(pos_of(node.source()), fmt::format("\"{}\" in {} must be {}, not {}", key, where_,
                                                    wanted, type_name(node.type())));
  }

  std::optional<std::string> string(std::string_view key) const {
    const toml::node* node = find(key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_string()) wrong_type(key, *node, "a string");
    return std::string(node->as_string()->get());
  }

  std::optional<bool> boolean(std::string_view key) const {
    const toml::node* node = find(key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_boolean()) wrong_type(key, *node, "true or false");
    return node->as_boolean()->get();
  }

  std::optional<int64_t> integer(std::string_view key) const {
    const toml::node* node = find(key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_integer()) wrong_type(key, *node, "an integer");
    return node->as_integer()->get();
  }

  // A percent: an integer (80) or a string with a percent sign ("80%"), as an
  // administrator writes a watermark. The range is the caller's to check.
  std::optional<int64_t> percent(std::string_view key) const {
    const toml::node* node = find(key);
    if (node == nullptr) return std::nullopt;
    if (node->is_integer()) return node->as_integer()->get();
    if (!node->is_string()) wrong_type(key, *node, "a percent (80 or \"80%\")");
    const std::string& text = node->as_string()->get();
    int64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr + 1 != end || *ptr != '%')
      reader_.fail(pos_of(node->source()),
                   fmt::format("\"{}\" in {} must be a percent such as 80 or \"80%\", not \"{}\"",
                               key, where_, text));
    return value;
  }

  // A size: a string with a binary unit ("2MiB") or a plain non-negative integer of bytes.
  std::optional<uint64_t> size(std::string_view key) const {
    const toml::node* node = find(key);
    if (node == nullptr) return std::nullopt;
    return reader_.size_value(*node, key, where_);
  }

  const std::string& where() const { return where_; }
  const toml::table& table() const { return table_; }

 private:
  const Reader& reader_;
  const toml::table& table_;
  std::string where_;
};

std::optional<FeatureMode> feature_mode(const Reader& reader, const TableReader& t,
                                        const char* key) {
  auto text = t.string(key);
  if (!text) return std::nullopt;
  for (FeatureMode mode : {FeatureMode::automatic, FeatureMode::off, FeatureMode::required})
    if (*text == feature_mode_name(mode)) return mode;
  reader.fail(t.pos(key),
              fmt::format("{} \"{}\" is not \"auto\", \"off\" or \"required\"", key, *text));
}

void parse_mount(const Reader& reader, const toml::node& node, MountOptions& mount) {
  if (!node.is_table()) reader.fail(pos_of(node.source()), "[mount] must be a table");
  const TableReader t(reader, *node.as_table(), "[mount]");
  t.allow_only({"cache", "allow_other", "default_permissions", "max_io", "threads", "bpf",
                "io_uring", "fsname", "sandbox", "state_dir", "set_node_weights",
                "kernel_path_headroom"});
  if (auto cache = t.string("cache")) {
    if (*cache == "none")
      mount.cache = CacheMode::none;
    else if (*cache == "kernel")
      mount.cache = CacheMode::kernel;
    else
      reader.fail(t.pos("cache"),
                  fmt::format("cache \"{}\" is not \"none\" or \"kernel\"", *cache));
  }
  if (auto v = t.boolean("allow_other")) mount.allow_other = *v;
  if (auto v = t.boolean("default_permissions")) mount.default_permissions = *v;
  if (auto v = t.boolean("sandbox")) mount.sandbox = *v;
  if (auto v = t.boolean("set_node_weights")) mount.set_node_weights = *v;
  if (auto v = t.percent("kernel_path_headroom")) {
    if (*v < 0 || *v > 100)
      reader.fail(t.pos("kernel_path_headroom"),
                  fmt::format("kernel_path_headroom {} must be a percent from 0 to 100", *v));
    mount.kernel_path_headroom = static_cast<unsigned>(*v);
  }
  // The server checks no owner, group or mode itself: that is the kernel's
  // job under default_permissions, so other users only get in with it on.
  if (mount.allow_other && !mount.default_permissions)
    reader.fail(t.pos("allow_other"),
                "allow_other needs default_permissions = true: the server does not check "
                "permissions itself, so every user could read, change and delete every file");
  if (auto v = t.size("max_io")) {
    if (*v < (4u << 10) || *v > (16u << 20) || (*v & (*v - 1)) != 0)
      reader.fail(
          t.pos("max_io"),
          fmt::format("max_io {} must be a power of two from 4KiB to 16MiB", format_size(*v)));
    mount.max_io_bytes = *v;
  }
  if (auto v = t.integer("threads")) {
    if (*v < 0 || *v > 1024)
      reader.fail(t.pos("threads"), fmt::format("threads {} must be from 0 to 1024", *v));
    mount.threads = static_cast<unsigned>(*v);
  }
  if (auto v = feature_mode(reader, t, "bpf")) mount.bpf = *v;
  if (auto v = feature_mode(reader, t, "io_uring")) mount.io_uring = *v;
  if (auto v = t.string("fsname")) {
    if (v->empty() || v->find_first_of(", \t\n") != std::string::npos)
      reader.fail(t.pos("fsname"), "fsname must be a non-empty word without commas or spaces");
    mount.fsname = *v;
  }
  if (auto v = t.string("state_dir")) {
    mount.state_dir_pos = t.pos("state_dir");
    if (v->empty() || v->front() != '/')
      reader.fail(mount.state_dir_pos,
                  fmt::format("state_dir \"{}\" must be an absolute path", *v));
    if (v->find('\0') != std::string::npos || v->size() >= PATH_MAX)
      reader.fail(mount.state_dir_pos, "state_dir is not a usable path");
    while (v->size() > 1 && v->back() == '/') v->pop_back();
    mount.state_dir = *v;
  }
}

TierRegion parse_region(const Reader& reader, const toml::node& node, const std::string& tier) {
  TierRegion region;
  region.pos = pos_of(node.source());
  std::string text;
  uint64_t offset = 0;
  SourcePos take_over_pos;
  if (node.is_string()) {
    text = std::string(node.as_string()->get());
  } else if (node.is_table()) {
    const TableReader t(reader, *node.as_table(), fmt::format("a region of tier \"{}\"", tier));
    t.allow_only({"region", "offset", "take_over"});
    auto spec = t.string("region");
    if (!spec)
      reader.fail(region.pos, fmt::format("a region of tier \"{}\" has no \"region\" key", tier));
    text = *spec;
    offset = t.size("offset").value_or(0);
    region.take_over = t.boolean("take_over").value_or(false);
    take_over_pos = t.pos("take_over");
  } else {
    reader.fail(region.pos, fmt::format("regions of tier \"{}\" must be strings like \"numa:0\" or "
                                        "tables {{ region = \"...\", offset = \"...\" }}",
                                        tier));
  }
  try {
    region.spec = numa::parse_region_spec(text);
  } catch (const std::invalid_argument& e) {
    reader.fail(region.pos, fmt::format("{} (tier \"{}\")", e.what(), tier));
  }
  region.offset_bytes = offset;
  if (offset != 0 && region.spec.kind == numa::RegionKind::numa)
    reader.fail(region.pos, fmt::format("region \"{}\" of tier \"{}\": numa regions take no offset",
                                        text, tier));
  if (region.take_over && region.spec.kind != numa::RegionKind::file)
    reader.fail(take_over_pos,
                fmt::format("region \"{}\" of tier \"{}\": take_over is for file: regions only",
                            text, tier));
  return region;
}

// A persistent tier outlives the server: its regions must, and its metadata needs a home.
void check_persistent(const Reader& reader, const TableReader& t, const TierConfig& tier,
                      const MountOptions& mount) {
  for (const TierRegion& region : tier.regions)
    if (region.spec.kind == numa::RegionKind::numa)
      reader.fail(t.pos("persistent"),
                  fmt::format("tier \"{}\" is persistent but region \"{}\" is memory that goes "
                              "with the server; only file: and dax: regions can be persistent",
                              tier.name, region.spec.text));
  if (mount.state_dir.empty())
    reader.fail(t.pos("persistent"),
                fmt::format("tier \"{}\" is persistent: set [mount] state_dir to a directory on "
                            "persistent storage (e.g. /var/lib/tierfs/NAME) to keep its metadata",
                            tier.name));
}

// high_watermark alone gets a low mark 10 points under it.
void parse_watermarks(const Reader& reader, const TableReader& t, TierConfig& tier) {
  const auto high = t.percent("high_watermark");
  const auto low = t.percent("low_watermark");
  if (high && (*high < 1 || *high > 100))
    reader.fail(t.pos("high_watermark"),
                fmt::format("high_watermark {} of tier \"{}\" must be a percent from 1 to 100",
                            *high, tier.name));
  if (low && !high)
    reader.fail(t.pos("low_watermark"),
                fmt::format("low_watermark of tier \"{}\" needs a high_watermark", tier.name));
  if (low && (*low < 0 || *low >= *high))
    reader.fail(t.pos("low_watermark"),
                fmt::format("low_watermark {} of tier \"{}\" must be from 0 to under its "
                            "high_watermark {}",
                            *low, tier.name, *high));
  if (!high) return;
  tier.high_watermark = static_cast<unsigned>(*high);
  tier.low_watermark =
      low ? static_cast<unsigned>(*low) : static_cast<unsigned>(std::max<int64_t>(*high - 10, 0));
}

void parse_mover(const Reader& reader, const toml::node& node, MoverOptions& mover) {
  if (!node.is_table()) reader.fail(pos_of(node.source()), "[mover] must be a table");
  const TableReader t(reader, *node.as_table(), "[mover]");
  t.allow_only({"rate", "interval_ms", "promote_reads"});
  if (auto v = t.size("rate")) mover.rate_bytes_per_s = *v;
  if (auto v = t.integer("interval_ms")) {
    if (*v < 10 || *v > 3600000)
      reader.fail(t.pos("interval_ms"),
                  fmt::format("interval_ms {} in [mover] must be from 10 to 3600000", *v));
    mover.interval_ms = static_cast<uint64_t>(*v);
  }
  if (auto v = t.integer("promote_reads")) {
    if (*v < 1 || *v > 1000000)
      reader.fail(t.pos("promote_reads"),
                  fmt::format("promote_reads {} in [mover] must be from 1 to 1000000", *v));
    mover.promote_reads = static_cast<unsigned>(*v);
  }
}

TierConfig parse_tier(const Reader& reader, const toml::node& node, size_t index,
                      const MountOptions& mount) {
  if (!node.is_table()) reader.fail(pos_of(node.source()), "each [[tier]] must be a table");
  TierConfig tier;
  tier.pos = pos_of(node.source());
  const std::string unnamed = fmt::format("[[tier]] number {}", index + 1);
  const TableReader first(reader, *node.as_table(), unnamed);
  auto name = first.string("name");
  if (!name) reader.fail(tier.pos, fmt::format("{} has no \"name\"", unnamed));
  static const std::regex kName("[A-Za-z0-9_-]{1,32}");
  if (name->size() > 32 || !std::regex_match(*name, kName))
    reader.fail(first.pos("name"),
                fmt::format("tier name \"{}\" must be 1-32 letters, digits, '-' or '_'", *name));
  tier.name = *name;
  const TableReader t(reader, *node.as_table(), fmt::format("tier \"{}\"", tier.name));
  t.allow_only({"name", "regions", "size", "granularity", "weights", "hugepages", "create",
                "persistent", "high_watermark", "low_watermark", "data_path"});

  const toml::node* regions = t.find("regions");
  if (regions == nullptr)
    reader.fail(tier.pos, fmt::format("tier \"{}\" has no \"regions\"", tier.name));
  if (!regions->is_array()) t.wrong_type("regions", *regions, "an array");
  if (regions->as_array()->empty())
    reader.fail(pos_of(regions->source()), fmt::format("tier \"{}\" has no regions", tier.name));
  if (regions->as_array()->size() > TIERFS_MAX_WAYS)
    reader.fail(pos_of(regions->source()),
                fmt::format("tier \"{}\" has {} regions, at most {} are allowed", tier.name,
                            regions->as_array()->size(), TIERFS_MAX_WAYS));
  for (const toml::node& r : *regions->as_array())
    tier.regions.push_back(parse_region(reader, r, tier.name));

  if (auto size = t.size("size")) tier.size_bytes = *size;
  tier.size_pos = t.pos("size");
  if (t.find("size") && tier.size_bytes == 0)
    reader.fail(t.pos("size"), fmt::format("size of tier \"{}\" is zero", tier.name));
  if (auto g = t.size("granularity")) {
    const uint64_t gran = *g;
    if ((gran & (gran - 1)) != 0 || gran == 0)
      reader.fail(t.pos("granularity"),
                  fmt::format("granularity \"{}\" of tier \"{}\" is not a power of two",
                              format_size(gran), tier.name));
    if (gran < (uint64_t{1} << TIERFS_MIN_GRANULARITY_SHIFT) ||
        gran > (uint64_t{1} << TIERFS_MAX_GRANULARITY_SHIFT))
      reader.fail(t.pos("granularity"),
                  fmt::format("granularity \"{}\" of tier \"{}\" is outside 4KiB..1GiB",
                              format_size(gran), tier.name));
    tier.granularity_bytes = gran;
  }
  if (const toml::node* w = t.find("weights")) {
    if (!w->is_array()) t.wrong_type("weights", *w, "an array of integers");
    if (tier.regions.size() < 2)
      reader.fail(pos_of(w->source()),
                  fmt::format("weights on tier \"{}\" need at least two regions", tier.name));
    if (w->as_array()->size() != tier.regions.size())
      reader.fail(pos_of(w->source()),
                  fmt::format("tier \"{}\" has {} weights for {} regions", tier.name,
                              w->as_array()->size(), tier.regions.size()));
    for (const toml::node& weight : *w->as_array()) {
      if (!weight.is_integer() || weight.as_integer()->get() < 1 ||
          weight.as_integer()->get() > TIERFS_MAX_WEIGHT)
        reader.fail(
            pos_of(weight.source()),
            fmt::format("weights of tier \"{}\" must be integers from 1 to 255", tier.name));
      tier.weights.push_back(static_cast<uint32_t>(weight.as_integer()->get()));
    }
  } else if (tier.regions.size() >= 2) {
    tier.weights.assign(tier.regions.size(), 1);
  }
  tier.hugepages = t.boolean("hugepages").value_or(false);
  tier.create_files = t.boolean("create").value_or(false);
  tier.persistent = t.boolean("persistent").value_or(false);
  if (tier.persistent) check_persistent(reader, t, tier, mount);
  parse_watermarks(reader, t, tier);
  if (auto path = t.string("data_path")) {
    tier.data_path_pos = t.pos("data_path");
    if (*path == "auto")
      tier.data_path = DataPathMode::automatic;
    else if (*path == "kernel")
      tier.data_path = DataPathMode::kernel;
    else if (*path == "server")
      tier.data_path = DataPathMode::server;
    else
      reader.fail(tier.data_path_pos,
                  fmt::format("data_path \"{}\" of tier \"{}\" must be \"auto\", \"kernel\" or "
                              "\"server\"",
                              *path, tier.name));
  }
  return tier;
}

PlacementRule parse_rule(const Reader& reader, const toml::node& node, size_t index) {
  if (!node.is_table()) reader.fail(pos_of(node.source()), "each [[placement]] must be a table");
  PlacementRule rule;
  rule.pos = pos_of(node.source());
  const TableReader t(reader, *node.as_table(), fmt::format("[[placement]] number {}", index + 1));
  t.allow_only({"path", "min_size", "tier", "pin"});
  rule.pin = t.boolean("pin").value_or(false);
  rule.path_glob = t.string("path").value_or("");
  rule.min_size_bytes = t.size("min_size");
  if (rule.path_glob.empty() && !rule.min_size_bytes)
    reader.fail(rule.pos, fmt::format("{} needs \"path\" or \"min_size\"", t.where()));
  auto tier = t.string("tier");
  if (!tier) reader.fail(rule.pos, fmt::format("{} has no \"tier\"", t.where()));
  rule.tier = *tier;
  return rule;
}

}  // namespace

namespace {

// Whatever the user wrote is quoted at most this long in a message, so that a
// 10MB value cannot become a 10MB error line.
constexpr size_t kMaxQuoted = 64;

std::string shortened(std::string_view text) {
  if (text.size() <= kMaxQuoted) return std::string(text);
  return fmt::format("{}... ({} bytes)", text.substr(0, kMaxQuoted), text.size());
}

// Shortens every quoted run and every long unquoted word (a path) in `what`.
std::string with_short_values(const std::string& what) {
  std::string out;
  size_t i = 0;
  while (i < what.size()) {
    const char c = what[i];
    if (c == '"') {
      const size_t end = what.find('"', i + 1);
      if (end == std::string::npos) break;
      out += '"' + shortened(std::string_view(what).substr(i + 1, end - i - 1)) + '"';
      i = end + 1;
    } else if (c != ' ') {
      size_t end = what.find_first_of(" \"", i);
      if (end == std::string::npos) end = what.size();
      out += shortened(std::string_view(what).substr(i, end - i));
      i = end;
    } else {
      out += c;
      ++i;
    }
  }
  if (i < what.size()) out += shortened(std::string_view(what).substr(i));
  return out;
}

}  // namespace

[[noreturn]] void Reader::fail(SourcePos pos, const std::string& what) const {
  throw ConfigError(source, pos, with_short_values(what));
}

uint64_t Reader::size_value(const toml::node& node, std::string_view key,
                            const std::string& where) const {
  if (node.is_integer()) {
    if (node.as_integer()->get() < 0)
      fail(pos_of(node.source()), fmt::format("{} in {} must not be negative", key, where));
    return static_cast<uint64_t>(node.as_integer()->get());
  }
  if (!node.is_string())
    fail(pos_of(node.source()), fmt::format("{} in {} must be a size like \"2MiB\", not {}", key,
                                            where, type_name(node.type())));
  const std::string text(node.as_string()->get());
  auto bytes = parse_size(text);
  if (!bytes)
    fail(pos_of(node.source()),
         fmt::format(
             "{} \"{}\" in {} is not a size: use a whole number with B, KiB, MiB, GiB, TiB or PiB",
             key, text, where));
  return *bytes;
}

Config parse_document(const Reader& reader, const toml::table& doc) {
  Config config;
  config.source = reader.source;
  for (auto&& [key, node] : doc) {
    const std::string_view k = key.str();
    if (k != "mount" && k != "tier" && k != "placement" && k != "defaults" && k != "mover")
      reader.fail(pos_of(key.source()),
                  fmt::format("unknown key \"{}\": expected [mount], [[tier]], "
                              "[[placement]], [defaults] or [mover]",
                              k));
  }
  if (const toml::node* mount = doc.get("mount")) parse_mount(reader, *mount, config.mount);
  const toml::node* tiers = doc.get("tier");
  if (tiers == nullptr)
    reader.fail(SourcePos{1, 1}, "no [[tier]]: a configuration needs at least one tier");
  if (!tiers->is_array_of_tables())
    reader.fail(pos_of(tiers->source()), "\"tier\" must be written as [[tier]] tables");
  if (tiers->as_array()->empty())
    reader.fail(pos_of(tiers->source()), "no [[tier]]: a configuration needs at least one tier");
  for (const toml::node& t : *tiers->as_array()) {
    TierConfig tier = parse_tier(reader, t, config.tiers.size(), config.mount);
    if (config.tier(tier.name) != nullptr)
      reader.fail(tier.pos, fmt::format("tier \"{}\" is defined twice", tier.name));
    config.tiers.push_back(std::move(tier));
  }
  if (const toml::node* mover = doc.get("mover")) parse_mover(reader, *mover, config.mover);
  // Demotion needs a tier below: marks on the last tier could never be acted on.
  if (config.tiers.back().high_watermark != 0)
    reader.fail(pos_of(tiers->as_array()->back().as_table()->get("high_watermark")->source()),
                fmt::format("tier \"{}\" is the last tier: its high_watermark has no tier below "
                            "to demote to",
                            config.tiers.back().name));
  if (const toml::node* rules = doc.get("placement")) {
    if (!rules->is_array_of_tables())
      reader.fail(pos_of(rules->source()), "\"placement\" must be written as [[placement]] tables");
    for (const toml::node& r : *rules->as_array())
      config.placement.push_back(parse_rule(reader, r, config.placement.size()));
  }
  config.default_tier = config.tiers.front().name;
  SourcePos default_pos{1, 1};
  if (const toml::node* defaults = doc.get("defaults")) {
    if (!defaults->is_table())
      reader.fail(pos_of(defaults->source()), "[defaults] must be a table");
    const TableReader t(reader, *defaults->as_table(), "[defaults]");
    t.allow_only({"tier"});
    if (auto tier = t.string("tier")) {
      config.default_tier = *tier;
      default_pos = t.pos("tier");
    }
  }
  for (const PlacementRule& rule : config.placement)
    if (config.tier(rule.tier) == nullptr)
      reader.fail(rule.pos,
                  fmt::format("placement rule names tier \"{}\", which is not defined", rule.tier));
  if (config.tier(config.default_tier) == nullptr)
    reader.fail(default_pos,
                fmt::format("default tier \"{}\" is not defined", config.default_tier));
  return config;
}

}  // namespace config_detail

Config parse_config(std::string_view text, const std::string& source_name,
                    const numa::Topology& topology) {
  return parse_config(text, source_name, topology, probe_kernel_facts());
}

Config parse_config(std::string_view text, const std::string& source_name,
                    const numa::Topology& topology, const KernelFacts& facts) {
  const config_detail::Reader reader{source_name};
  toml::table doc;
  try {
    doc = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    std::string what(e.description());
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    reader.fail(config_detail::pos_of(e.source()), what);
  }
  Config config = config_detail::parse_document(reader, doc);
  config_detail::validate_against_machine(reader, config, topology);
  config_detail::resolve_data_paths(reader, config, facts);
  return config;
}

Config load_config(const std::string& path, const numa::Topology& topology) {
  // open(2) and fstat, not an ifstream: that opens a directory, reads nothing
  // and reports "no [[tier]]"; O_NONBLOCK so that a FIFO cannot hang the mount.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw ConfigError(path, SourcePos{},
                      fmt::format("cannot read the configuration file: {}", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } const closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0)
    throw ConfigError(path, SourcePos{},
                      fmt::format("cannot read the configuration file: {}", std::strerror(errno)));
  if (S_ISDIR(st.st_mode))
    throw ConfigError(path, SourcePos{}, "is a directory, not a configuration file");
  if (!S_ISREG(st.st_mode))
    throw ConfigError(path, SourcePos{}, "is not a regular file, so not a configuration file");
  std::string text;
  char chunk[65536];
  for (;;) {
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw ConfigError(
          path, SourcePos{},
          fmt::format("cannot read the configuration file: {}", std::strerror(errno)));
    text.append(chunk, static_cast<size_t>(n));
  }
  return parse_config(text, path, topology);
}

}  // namespace tierfs
