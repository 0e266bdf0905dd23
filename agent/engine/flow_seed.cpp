#include "flow_seed.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>
#include <string_view>

#include "digest.hpp"

namespace nlb {

const char* describe(SeedSource source) {
    switch (source) {
    case SeedSource::fixed:
        return "the fixed default";
    case SeedSource::key:
        return "derived from cluster.key_file";
    case SeedSource::config:
        return "set by cluster.hash_seed";
    }
    return "unknown";
}

std::uint32_t flow_seed_from_key(std::span<const std::uint8_t> key) {
    // No message the agent signs with the key itself is these 13 bytes (a heartbeat is at
    // least 104, magic first; remote control signs with a key of its own), so no MAC on the
    // wire is the one the seed is cut from.
    constexpr std::string_view label = "nlb flow seed";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(label.data()), label.size(), mac, &len) ||
        len < 4)
        throw std::runtime_error("hash seed: libcrypto's HMAC-SHA256 failed");
    const std::uint32_t seed = (std::uint32_t{mac[0]} << 24) | (std::uint32_t{mac[1]} << 16) |
                               (std::uint32_t{mac[2]} << 8) | mac[3];
    return seed ? seed : 1;
}

std::uint64_t flow_seed_digest(std::uint32_t cluster_ip, std::uint32_t seed) {
    // The cluster IP salts it: one table of the 2^32 digests does not serve every cluster.
    return DigestBuilder().u32(0x6e6c6273).u32(cluster_ip).u32(seed).finish(); // "nlbs"
}

} // namespace nlb
