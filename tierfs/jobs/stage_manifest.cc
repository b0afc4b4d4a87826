// Parsing of stage manifests with toml++ (see stage_manifest.h).
#include "tierfs/jobs/stage_manifest.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace tierfs::jobs {

namespace {

SourcePos pos_of(const toml::source_region& source) {
  return SourcePos{static_cast<int>(source.begin.line), static_cast<int>(source.begin.column)};
}

[[noreturn]] void fail_at(const std::string& source, SourcePos pos, const std::string& what) {
  throw ConfigError(source, pos, what);
}

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (!path.empty() && path.front() == '/') return path;
  return base_dir + "/" + path;
}

}  // namespace

std::optional<uint64_t> parse_xxh3_hex(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string xxh3_hex(uint64_t value) {
  return fmt::format("{:016x}", value);
}

StageManifest parse_stage_manifest(std::string_view text, const std::string& source_name,
                                   const std::string& base_dir) {
  auto fail = [&](SourcePos pos, const std::string& what) { fail_at(source_name, pos, what); };
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(source_name, pos_of(e.source()), std::string(e.description()));
  }
  StageManifest manifest;
  manifest.source = source_name;
  for (auto&& [key, node] : root) {
    const std::string_view k = key.str();
    const SourcePos pos = pos_of(key.source());
    if (k == "threads") {
      auto v = node.value<int64_t>();
      if (!node.is_integer() || !v || *v < 1 || *v > 256)
        fail(pos, "threads must be a whole number from 1 to 256");
      manifest.threads = static_cast<unsigned>(*v);
    } else if (k == "report") {
      if (!node.is_string() || node.value<std::string>()->empty())
        fail(pos, "report must be a file name");
      manifest.report = resolve(*node.value<std::string>(), base_dir);
    } else if (k == "copy") {
      const toml::array* copies = node.as_array();
      if (!copies || !copies->is_array_of_tables())
        fail(pos, "copy must be an array of tables ([[copy]])");
      for (const toml::node& item : *copies) {
        const toml::table& t = *item.as_table();
        StageEntry entry;
        entry.pos = pos_of(t.source());
        for (auto&& field : t) {
          // Named references, not a structured binding: the lambda below uses them.
          const toml::key& ek = field.first;
          const toml::node& ev = field.second;
          const SourcePos epos = pos_of(ek.source());
          const std::string_view name = ek.str();
          auto text_value = [&]() -> std::string {
            if (!ev.is_string() || ev.value<std::string>()->empty())
              fail_at(source_name, epos, fmt::format("{} must be a non-empty string", name));
            return *ev.value<std::string>();
          };
          if (name == "source") {
            entry.source = resolve(text_value(), base_dir);
          } else if (name == "destination") {
            entry.destination = resolve(text_value(), base_dir);
          } else if (name == "xxh3") {
            const std::string hex = text_value();
            entry.xxh3 = parse_xxh3_hex(hex);
            if (!entry.xxh3)
              fail(epos, fmt::format("xxh3 \"{}\" is not 16 hex digits (XXH3-64)", hex));
          } else {
            fail(epos, fmt::format("unknown key \"{}\" in [[copy]] (known: source, "
                                   "destination, xxh3)",
                                   name));
          }
        }
        if (entry.source.empty()) fail(entry.pos, "[[copy]] needs a source");
        if (entry.destination.empty()) fail(entry.pos, "[[copy]] needs a destination");
        manifest.entries.push_back(std::move(entry));
      }
    } else {
      fail(pos, fmt::format("unknown key \"{}\" (known: threads, report, [[copy]])", k));
    }
  }
  if (manifest.entries.empty()) fail(SourcePos{}, "the manifest has no [[copy]] entry");
  return manifest;
}

StageManifest load_stage_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path, SourcePos{}, "cannot read the stage manifest");
  std::stringstream text;
  text << in.rdbuf();
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  return parse_stage_manifest(text.str(), path, dir);
}

}  // namespace tierfs::jobs
