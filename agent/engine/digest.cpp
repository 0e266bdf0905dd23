#include "digest.hpp"

#include <openssl/sha.h>

namespace nlb {

DigestBuilder& DigestBuilder::u8(std::uint8_t v) {
    buffer_.push_back(v);
    return *this;
}

DigestBuilder& DigestBuilder::u16(std::uint16_t v) {
    return u8(static_cast<std::uint8_t>(v >> 8)).u8(static_cast<std::uint8_t>(v));
}

DigestBuilder& DigestBuilder::u32(std::uint32_t v) {
    return u16(static_cast<std::uint16_t>(v >> 16)).u16(static_cast<std::uint16_t>(v));
}

DigestBuilder& DigestBuilder::u64(std::uint64_t v) {
    return u32(static_cast<std::uint32_t>(v >> 32)).u32(static_cast<std::uint32_t>(v));
}

DigestBuilder& DigestBuilder::bytes(std::span<const std::uint8_t> v) {
    buffer_.insert(buffer_.end(), v.begin(), v.end());
    return *this;
}

std::uint64_t DigestBuilder::finish() const {
    return digest64(buffer_);
}

std::uint64_t digest64(std::span<const std::uint8_t> data) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data.data(), data.size(), md);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | md[i];
    return v == 0 ? 1 : v;
}

std::string digest_text(std::uint64_t digest) {
    static const char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, digest >>= 4)
        out[static_cast<std::size_t>(i)] = digits[digest & 0xf];
    return out;
}

} // namespace nlb
