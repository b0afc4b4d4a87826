// Sizes in binary units: "4KiB", "2MiB", "64GiB" in and out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tierfs {

// Parses "<digits>[ ]<unit>" with unit one of B, KiB, MiB, GiB, TiB, PiB (or
// none = bytes). Returns nullopt for anything else or a value past 2^64-1.
std::optional<uint64_t> parse_size(std::string_view text);

// Largest unit that divides exactly: 2097152 -> "2MiB", 1536 -> "1536B",
// 3221225472 -> "3GiB".
std::string format_size(uint64_t bytes);

// Human display with two decimals in the largest unit below the value: "1.50GiB".
std::string format_size_approx(uint64_t bytes);

}  // namespace tierfs
