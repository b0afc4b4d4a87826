// The metadata log's encoding choice, measured: a checkpoint of N files in
// the binary records (tierfs/core/metadata.h) against the same content as
// nlohmann JSON (one object per inode and per name): bytes, and time to
// encode and to decode back into a MetadataImage.
#include <benchmark/benchmark.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tierfs/core/journal_format.h"
#include "tierfs/core/metadata.h"

namespace tierfs {
namespace {

// N small files of one extent each in directories of 1000, as bench/journal_bench.py makes.
MetadataImage image_of(size_t files) {
  MetadataImage image;
  image.inodes[1] = InodeMeta{1, S_IFDIR | 0755, 0, 0, 0, 4096, 1, 1, 1, 1, 2, 0, {}, {}, {}};
  const size_t dirs = (files + 999) / 1000;
  for (size_t d = 0; d < dirs; ++d) {
    const uint64_t ino = 2 + d;
    image.inodes[ino] = InodeMeta{ino, S_IFDIR | 0755, 0, 0, 0, 4096, 1, 1, 1, 1, 2, 0, {}, {}, {}};
    image.entries[1]["d" + std::to_string(d)] = ino;
    image.inodes[1].nlink++;
  }
  for (size_t i = 0; i < files; ++i) {
    const uint64_t ino = 2 + dirs + i;
    InodeMeta m{ino, S_IFREG | 0644, 0, 0, 0, 7, 1, 1, 1, 1, 1, 0, {}, {}, {}};
    m.extents.push_back({0, 4096, i * 4096, 0, 0});
    image.inodes[ino] = m;
    image.entries[2 + i / 1000]["f" + std::to_string(i)] = ino;
  }
  return image;
}

nlohmann::json json_of(const MetadataImage& image) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [ino, m] : image.inodes) {
    nlohmann::json extents = nlohmann::json::array();
    for (const tierfs_extent& e : m.extents)
      extents.push_back({e.file_offset, e.length, e.tier_address, e.tier, e.flags});
    out.push_back({{"ino", ino},
                   {"mode", m.mode},
                   {"uid", m.uid},
                   {"gid", m.gid},
                   {"rdev", m.rdev},
                   {"size", m.size},
                   {"atime", m.atime_ns},
                   {"mtime", m.mtime_ns},
                   {"ctime", m.ctime_ns},
                   {"btime", m.btime_ns},
                   {"nlink", m.nlink},
                   {"tier", m.preferred_tier},
                   {"extents", extents}});
  }
  for (const auto& [dir, names] : image.entries)
    for (const auto& [name, ino] : names)
      out.push_back({{"dir", dir}, {"name", name}, {"ino", ino}});
  return out;
}

void image_from_json(const nlohmann::json& records, MetadataImage& image) {
  for (const auto& r : records) {
    if (r.contains("dir")) {
      image.entries[r["dir"].get<uint64_t>()][r["name"].get<std::string>()] =
          r["ino"].get<uint64_t>();
      continue;
    }
    InodeMeta& m = image.inodes[r["ino"].get<uint64_t>()];
    m.ino = r["ino"];
    m.mode = r["mode"];
    m.size = r["size"];
    m.nlink = r["nlink"];
    m.mtime_ns = r["mtime"];
    for (const auto& e : r["extents"])
      m.extents.push_back({e[0].get<uint64_t>(), e[1].get<uint64_t>(), e[2].get<uint64_t>(),
                           e[3].get<uint32_t>(), e[4].get<uint32_t>()});
  }
}

void BM_DecodeBinary(benchmark::State& state) {
  const MetadataImage image = image_of(static_cast<size_t>(state.range(0)));
  std::string bytes;
  encode_image(image, bytes, size_t{1} << 20);
  for (auto _ : state) {
    MetadataImage back;
    FrameReader frames(bytes);
    while (auto payload = frames.next()) apply_records(back, *payload);
    benchmark::DoNotOptimize(back.inodes.size());
  }
  state.counters["bytes"] = static_cast<double>(bytes.size());
}

void BM_DecodeJson(benchmark::State& state) {
  const MetadataImage image = image_of(static_cast<size_t>(state.range(0)));
  const std::string text = json_of(image).dump();
  for (auto _ : state) {
    MetadataImage back;
    image_from_json(nlohmann::json::parse(text), back);
    benchmark::DoNotOptimize(back.inodes.size());
  }
  state.counters["bytes"] = static_cast<double>(text.size());
}

void BM_EncodeBinary(benchmark::State& state) {
  const MetadataImage image = image_of(static_cast<size_t>(state.range(0)));
  size_t size = 0;
  for (auto _ : state) {
    std::string bytes;
    encode_image(image, bytes, size_t{1} << 20);
    size = bytes.size();
    benchmark::DoNotOptimize(bytes.data());
  }
  state.counters["bytes"] = static_cast<double>(size);
}

void BM_EncodeJson(benchmark::State& state) {
  const MetadataImage image = image_of(static_cast<size_t>(state.range(0)));
  size_t size = 0;
  for (auto _ : state) {
    std::string text = json_of(image).dump();
    size = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(size);
}

BENCHMARK(BM_DecodeBinary)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeJson)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeBinary)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeJson)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tierfs

BENCHMARK_MAIN();
