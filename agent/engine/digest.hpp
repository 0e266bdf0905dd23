// 64-bit digests (SHA-256, first 8 bytes, big-endian) of byte strings built field by field:
// fingerprints and map digests every host must compute identically.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace nlb {

class DigestBuilder {
  public:
    DigestBuilder& u8(std::uint8_t v);
    DigestBuilder& u16(std::uint16_t v);
    DigestBuilder& u32(std::uint32_t v);
    DigestBuilder& u64(std::uint64_t v);
    DigestBuilder& bytes(std::span<const std::uint8_t> v);
    // Never 0: 0 means "nothing" on the wire.
    std::uint64_t finish() const;

  private:
    std::vector<std::uint8_t> buffer_;
};

std::uint64_t digest64(std::span<const std::uint8_t> data);

// A digest as query, the log and refusals show it: 16 hex digits.
std::string digest_text(std::uint64_t digest);

} // namespace nlb
