// What the traffic generator (bpf/trafficgen.bpf.c) does to frame number n of its template,
// done in user space for the tools that send from a packet socket where the kernel refuses
// live frames: the same flows in the same order, whichever way the frames left.
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace nlb::test {

// F is an Ethernet + IPv4 (IHL 5) + TCP or UDP frame: its source address becomes
// src_base + n % src_count (host byte order), its source port 1024 + (n * 7919) % 60000, and
// its IPv4 header checksum is fixed; the L4 checksum is left as it was.
inline void trafficgen_frame(std::vector<std::uint8_t>& f, std::uint32_t src_base,
                             std::uint32_t src_count, std::uint64_t n) {
    constexpr std::size_t kIp = 14, kL4 = kIp + 20;
    const std::uint32_t saddr =
        htonl(src_base + static_cast<std::uint32_t>(n % (src_count ? src_count : 1)));
    std::memcpy(&f[kIp + 12], &saddr, 4);
    const std::uint16_t sport = htons(static_cast<std::uint16_t>(1024 + (n * 7919) % 60000));
    std::memcpy(&f[kL4], &sport, 2);
    f[kIp + 10] = f[kIp + 11] = 0;
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < 20; i += 2)
        sum += static_cast<std::uint32_t>(f[kIp + i] << 8 | f[kIp + i + 1]);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    f[kIp + 10] = static_cast<std::uint8_t>(~sum >> 8);
    f[kIp + 11] = static_cast<std::uint8_t>(~sum);
}

} // namespace nlb::test
