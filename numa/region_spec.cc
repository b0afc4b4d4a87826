// Parsing of region specs: "numa:N", "dax:/dev/daxX.Y", "file:PATH".
#include <charconv>
#include <stdexcept>
#include <string>

#include "numa/region.h"

namespace tierfs::numa {

RegionSpec parse_region_spec(std::string_view text) {
  RegionSpec spec;
  spec.text = std::string(text);
  const auto colon = text.find(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument("region \"" + spec.text +
                                "\" has no kind: expected numa:N, dax:/dev/daxX.Y or file:PATH");
  const std::string_view kind = text.substr(0, colon);
  const std::string_view rest = text.substr(colon + 1);
  if (kind == "numa") {
    int node = -1;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), node);
    if (rest.empty() || ec != std::errc() || ptr != rest.data() + rest.size() || node < 0)
      throw std::invalid_argument("region \"" + spec.text + "\": NUMA node must be a number >= 0");
    spec.kind = RegionKind::numa;
    spec.node = node;
  } else if (kind == "dax") {
    if (rest.empty() || rest.front() != '/')
      throw std::invalid_argument("region \"" + spec.text +
                                  "\": dax needs an absolute device path");
    spec.kind = RegionKind::dax;
    spec.path = std::string(rest);
  } else if (kind == "file") {
    if (rest.empty() || rest.front() != '/')
      throw std::invalid_argument("region \"" + spec.text + "\": file needs an absolute path");
    spec.kind = RegionKind::file;
    spec.path = std::string(rest);
  } else {
    throw std::invalid_argument("region \"" + spec.text + "\" has unknown kind \"" +
                                std::string(kind) + "\": expected numa, dax or file");
  }
  return spec;
}

}  // namespace tierfs::numa
