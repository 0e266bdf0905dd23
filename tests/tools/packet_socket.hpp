// A send-only AF_PACKET socket on one interface, handing batches of whole frames to it with
// sendmmsg: how the floods of the tests put forged frames on a segment (nlb-flood always;
// nlb-synflood and nlb-bench-veth, through TrafficgenSender, where the kernel refuses them
// live frames). Pacing and what to count stay each tool's own.
#pragma once

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace nlb::test {

class PacketSocket {
  public:
    static constexpr unsigned kBatch = 256; // frames per sendmmsg at most

    // Throws std::runtime_error naming the step that failed.
    explicit PacketSocket(unsigned ifindex) {
        fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); // protocol 0: receives nothing
        if (fd_ < 0)
            throw std::runtime_error(std::string("packet socket: ") + std::strerror(errno));
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_ifindex = static_cast<int>(ifindex);
        if (bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
            const int err = errno;
            close(fd_);
            throw std::runtime_error(std::string("bind packet socket: ") + std::strerror(err));
        }
    }
    ~PacketSocket() { close(fd_); }
    PacketSocket(const PacketSocket&) = delete;
    PacketSocket& operator=(const PacketSocket&) = delete;

    // Best effort: a socket without it still sends (SO_SNDBUF, PACKET_QDISC_BYPASS).
    void option(int level, int name, int value) {
        setsockopt(fd_, level, name, &value, sizeof(value));
    }

    // Hands frame(0) .. frame(n - 1) to the interface (n at most kBatch; frame(k) returns a
    // contiguous byte container). Returns how many went, or 0 when the interface's queue is
    // full for now (ENOBUFS, EAGAIN, EINTR: wait a moment and send again); throws on anything
    // else.
    template <typename FrameAt> unsigned send(unsigned n, FrameAt frame) {
        n = n < kBatch ? n : kBatch;
        for (unsigned k = 0; k < n; ++k) {
            const auto& f = frame(k);
            iov_[k] = {const_cast<std::uint8_t*>(f.data()), f.size()};
            msgs_[k] = {};
            msgs_[k].msg_hdr.msg_iov = &iov_[k];
            msgs_[k].msg_hdr.msg_iovlen = 1;
        }
        const int r = sendmmsg(fd_, msgs_.data(), n, 0);
        if (r >= 0)
            return static_cast<unsigned>(r);
        if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
            return 0;
        throw std::runtime_error(std::string("sendmmsg: ") + std::strerror(errno));
    }

  private:
    int fd_ = -1;
    std::array<iovec, kBatch> iov_{};
    std::array<mmsghdr, kBatch> msgs_{};
};

} // namespace nlb::test
