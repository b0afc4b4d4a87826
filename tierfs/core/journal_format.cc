// Frames with a crc32c from ISA-L (crc32_iscsi picks the CPU's fastest version at run time).
#include "tierfs/core/journal_format.h"

#include <isa-l/crc.h>

#include <algorithm>

namespace tierfs {

namespace {

void put_u32(std::string& out, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                              static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 24)};
  out.append(reinterpret_cast<const char*>(b), 4);
}

uint32_t get_u32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  // ISA-L's crc32_iscsi takes the complemented seed and returns the raw
  // register: complementing both gives the standard crc32c (0xe3069283 for "123456789").
  uint32_t crc = 0xffffffffu;
  auto* p = reinterpret_cast<unsigned char*>(const_cast<char*>(bytes.data()));
  size_t left = bytes.size();
  while (left > 0) {
    const int piece = static_cast<int>(std::min<size_t>(left, 1u << 30));
    crc = crc32_iscsi(p, piece, crc);
    p += piece;
    left -= static_cast<size_t>(piece);
  }
  return ~crc;
}

void append_frame(std::string& out, std::string_view payload) {
  put_u32(out, static_cast<uint32_t>(payload.size()));
  put_u32(out, crc32c(payload));
  out.append(payload);
}

std::optional<std::string_view> FrameReader::next() {
  if (!stop_reason_.empty() || offset_ == bytes_.size()) return std::nullopt;
  const size_t left = bytes_.size() - offset_;
  if (left < kFrameHeaderBytes) {
    stop_reason_ = "short frame header";
    return std::nullopt;
  }
  const uint32_t length = get_u32(bytes_.data() + offset_);
  const uint32_t crc = get_u32(bytes_.data() + offset_ + 4);
  if (length > kMaxFramePayload) {
    stop_reason_ = "frame length " + std::to_string(length);
    return std::nullopt;
  }
  if (left - kFrameHeaderBytes < length) {
    stop_reason_ = "short frame";
    return std::nullopt;
  }
  const std::string_view payload = bytes_.substr(offset_ + kFrameHeaderBytes, length);
  if (crc32c(payload) != crc) {
    stop_reason_ = "checksum mismatch";
    return std::nullopt;
  }
  offset_ += kFrameHeaderBytes + length;
  return payload;
}

}  // namespace tierfs
