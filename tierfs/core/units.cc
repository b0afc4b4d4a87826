// Binary-unit size parsing and formatting.
#include "tierfs/core/units.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>

namespace tierfs {
namespace {

struct Unit {
  std::string_view name;
  unsigned shift;
};
constexpr std::array<Unit, 6> kUnits{
    {{"PiB", 50}, {"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}};

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin) return std::nullopt;
  std::string_view rest(ptr, static_cast<size_t>(end - ptr));
  if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty()) return value;
  for (const Unit& unit : kUnits) {
    if (rest != unit.name) continue;
    if (unit.shift > 0 && value > (UINT64_MAX >> unit.shift)) return std::nullopt;
    return value << unit.shift;
  }
  return std::nullopt;
}

std::string format_size(uint64_t bytes) {
  for (const Unit& unit : kUnits) {
    const uint64_t mask = (uint64_t{1} << unit.shift) - 1;
    if (bytes != 0 && (bytes & mask) == 0)
      return fmt::format("{}{}", bytes >> unit.shift, unit.name);
  }
  return fmt::format("{}B", bytes);
}

std::string format_size_approx(uint64_t bytes) {
  for (const Unit& unit : kUnits) {
    if (unit.shift == 0) break;
    if (bytes >= (uint64_t{1} << unit.shift))
      return fmt::format(
          "{:.2f}{}", static_cast<double>(bytes) / static_cast<double>(uint64_t{1} << unit.shift),
          unit.name);
  }
  return fmt::format("{}B", bytes);
}

}  // namespace tierfs
