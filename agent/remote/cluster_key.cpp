#include "cluster_key.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace nlb::remote {

namespace {

// The label that separates remote control's key from every other use of the cluster key.
constexpr std::string_view kLabel = "nlb remote control v1";

void hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
                 std::uint8_t* out) {
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out,
              &len) ||
        len != 32)
        throw std::runtime_error("remote control HMAC: libcrypto failed");
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

} // namespace

std::optional<std::vector<std::uint8_t>> parse_key(std::string_view text) {
    // Whitespace anywhere is ignored, as the agent's reader does (a key split over lines).
    std::string hex;
    for (char c : text)
        if (!std::isspace(static_cast<unsigned char>(c)))
            hex.push_back(c);
    if (hex.size() < 2 * kMinKeyBytes || hex.size() > 2 * kMaxKeyBytes || hex.size() % 2)
        return std::nullopt;
    std::vector<std::uint8_t> key;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        key.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
    }
    return key;
}

std::vector<std::uint8_t> read_key_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        throw std::runtime_error(path + ": " + std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    // The mode of what was opened, not of the path: nothing can swap the file in between.
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        throw std::runtime_error(path + ": " + std::strerror(errno));
    // Whoever can read the key can forge heartbeats and remote commands; whoever can write
    // it can lock the host out of its cluster. Refused rather than warned about, as ssh does
    // with private keys: a warning in a log is read too late.
    if (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH))
        throw std::runtime_error(path + " is " +
                                 (st.st_mode & (S_IRGRP | S_IROTH) ? "readable" : "writable") +
                                 " by group or others: chmod 600 " + path);
    // A key file is a line; anything much longer is not one (and is not read whole).
    char buffer[1025];
    std::size_t got = 0;
    while (got < sizeof(buffer)) {
        const ssize_t n = ::read(fd, buffer + got, sizeof(buffer) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw std::runtime_error(path + ": " + std::strerror(errno));
        if (n == 0)
            break;
        got += static_cast<std::size_t>(n);
    }
    auto key = got < sizeof(buffer) ? parse_key(std::string_view(buffer, got)) : std::nullopt;
    if (!key)
        throw std::runtime_error(path + ": expected 64 to 128 hex digits (as nlbadm keygen makes)");
    return *key;
}

ClusterKey::ClusterKey(std::span<const std::uint8_t> cluster_key) {
    hmac_sha256(cluster_key,
                std::span(reinterpret_cast<const std::uint8_t*>(kLabel.data()), kLabel.size()),
                key_.data());
}

ClusterKey::Mac ClusterKey::mac(std::span<const std::uint8_t> data) const {
    Mac out{};
    hmac_sha256(key_, data, out.data());
    return out;
}

bool ClusterKey::verify(std::span<const std::uint8_t> data,
                        std::span<const std::uint8_t> mac) const {
    if (mac.size() != 32)
        return false;
    Mac expected = this->mac(data);
    return CRYPTO_memcmp(expected.data(), mac.data(), expected.size()) == 0;
}

} // namespace nlb::remote
