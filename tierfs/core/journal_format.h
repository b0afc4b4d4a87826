// Frames: the unit the journal appends and checkpoints are made of. A frame
// is an 8-byte header (payload length, crc32c of the payload, both
// little-endian u32) and the payload (records, metadata.h). A frame whose
// header or payload is short, or whose checksum does not match, ends a replay.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tierfs {

inline constexpr size_t kFrameHeaderBytes = 8;
// Larger lengths are damage, not records: no change logs more than this.
inline constexpr uint32_t kMaxFramePayload = 64u << 20;

// crc32c (Castagnoli, iSCSI) from ISA-L.
uint32_t crc32c(std::string_view bytes);

// Appends one frame holding `payload` to `out`.
void append_frame(std::string& out, std::string_view payload);

// Walks the frames of a buffer in order.
class FrameReader {
 public:
  explicit FrameReader(std::string_view bytes) : bytes_(bytes) {}
  // The next frame's payload; nullopt at the end or at the first damaged frame.
  std::optional<std::string_view> next();
  size_t good_bytes() const { return offset_; }  // bytes of whole, valid frames
  // Why the walk stopped: empty at a clean end, else "short frame header",
  // "short frame", "frame length N", "checksum mismatch".
  const std::string& stop_reason() const { return stop_reason_; }

 private:
  std::string_view bytes_;
  size_t offset_ = 0;
  std::string stop_reason_;
};

}  // namespace tierfs
