// What the traffic generator (bpf/trafficgen.bpf.c) does to frame number n of its template,
// and a sender of such frames, in user space for the tools that send from a packet socket
// where the kernel refuses live frames: the same flows in the same order, whichever way the
// frames left.
#pragma once

#include <arpa/inet.h>
#include <linux/if_packet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "packet_socket.hpp"

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

// The generator's frames out of a packet socket on one interface (no qdisc), a batch at a
// time, each frame rewritten from the template here. Pacing stays the caller's.
class TrafficgenSender {
  public:
    // Throws std::runtime_error as PacketSocket does.
    TrafficgenSender(unsigned ifindex, const std::vector<std::uint8_t>& frame,
                     std::uint32_t src_base, std::uint32_t src_count)
        : out_(ifindex), frames_(PacketSocket::kBatch, frame), src_base_(src_base),
          src_count_(src_count) {
        out_.option(SOL_PACKET, PACKET_QDISC_BYPASS, 1);
    }

    // Frames first .. first + n - 1 (n at most PacketSocket::kBatch): how many went, or 0
    // when the interface's queue is full for now; throws as PacketSocket::send does.
    unsigned send(std::uint64_t first, unsigned n) {
        n = n < PacketSocket::kBatch ? n : PacketSocket::kBatch;
        for (unsigned k = 0; k < n; ++k)
            trafficgen_frame(frames_[k], src_base_, src_count_, first + k);
        return out_.send(
            n, [&](unsigned k) -> const auto& { return frames_[k]; });
    }

  private:
    PacketSocket out_;
    std::vector<std::vector<std::uint8_t>> frames_;
    std::uint32_t src_base_;
    std::uint32_t src_count_;
};

} // namespace nlb::test
