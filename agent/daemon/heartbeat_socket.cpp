#include "heartbeat_socket.hpp"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <boost/asio/generic/basic_endpoint.hpp>

#include <nlb/limits.h>

namespace nlb {

namespace {

using Protocol = boost::asio::generic::datagram_protocol;

Protocol::endpoint packet_endpoint(int ifindex, const MacAddress* dest) {
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(NLB_ETH_P_HEARTBEAT);
    sll.sll_ifindex = ifindex;
    if (dest) {
        sll.sll_halen = 6;
        std::memcpy(sll.sll_addr, dest->data(), 6);
    }
    return Protocol::endpoint(&sll, sizeof(sll), htons(NLB_ETH_P_HEARTBEAT));
}

} // namespace

HeartbeatSocket::HeartbeatSocket(boost::asio::io_context& io, int ifindex,
                                 const MacAddress& destination)
    : socket_(io), ifindex_(ifindex), destination_(destination) {
    // SOCK_DGRAM: the kernel builds the Ethernet header with the NIC's own MAC as source.
    int fd = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(NLB_ETH_P_HEARTBEAT));
    if (fd < 0)
        throw std::runtime_error("heartbeats: open packet socket: " +
                                 std::string(std::strerror(errno)));
    int one = 1;
    // Our own heartbeats would come back as PACKET_OUTGOING copies.
    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    auto local = packet_endpoint(ifindex, nullptr);
    if (::bind(fd, local.data(), static_cast<socklen_t>(local.size())) != 0) {
        int err = errno;
        ::close(fd);
        throw std::runtime_error("heartbeats: bind to interface " + std::to_string(ifindex) +
                                 ": " + std::strerror(err));
    }
    socket_.assign(Protocol(AF_PACKET, 0), fd);
}

void HeartbeatSocket::start(Handler handler) {
    reader_.start(socket_, [this, handler = std::move(handler)](std::span<const std::uint8_t> f) {
        const auto& from = reinterpret_cast<const sockaddr_ll&>(reader_.source());
        MacAddress source{};
        if (from.sll_halen == source.size())
            std::memcpy(source.data(), from.sll_addr, source.size());
        handler(f, source);
    });
}

void HeartbeatSocket::send(std::span<const std::uint8_t> payload) {
    boost::system::error_code ec;
    socket_.send_to(boost::asio::buffer(payload.data(), payload.size()),
                    packet_endpoint(ifindex_, &destination_), 0, ec);
    if (ec)
        send_errors_++;
}

void HeartbeatSocket::close() {
    reader_.stop();
    boost::system::error_code ec;
    socket_.close(ec);
}

} // namespace nlb
