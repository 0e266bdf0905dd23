#include "heartbeat_socket.hpp"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <nlb/limits.h>

namespace nlb {

namespace {

sockaddr_ll packet_address(int ifindex, const MacAddress* dest) {
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(NLB_ETH_P_HEARTBEAT);
    sll.sll_ifindex = ifindex;
    if (dest) {
        sll.sll_halen = 6;
        std::memcpy(sll.sll_addr, dest->data(), 6);
    }
    return sll;
}

} // namespace

HeartbeatSocket::HeartbeatSocket(boost::asio::io_context& io, int ifindex,
                                 const MacAddress& destination)
    : executor_(io.get_executor()), ifindex_(ifindex), destination_(destination) {
    // SOCK_DGRAM: the kernel builds the Ethernet header with the NIC's own MAC as source.
    int fd = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(NLB_ETH_P_HEARTBEAT));
    if (fd < 0)
        throw std::runtime_error("heartbeats: open packet socket: " +
                                 std::string(std::strerror(errno)));
    int one = 1;
    // Our own heartbeats would come back as PACKET_OUTGOING copies.
    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    // Room for what the dataplane lets through while the reader lingers (BatchReader): unknown
    // sources' burst (NLB_HB_UNTRUSTED_BURST, 1,000 frames) and 50 ms of their budget (200)
    // beside every member's frames come to about 1,300 frames, which at up to 4.5 KB of
    // buffer each (a page and the skb) fit in 8 MB (the kernel doubles what is asked, for its
    // own overhead); the default (net.core.rmem_default, 208 KB here) held under 50. Only
    // what is queued takes memory. FORCE needs CAP_NET_ADMIN (the unit grants it); the plain
    // option is the fallback, clamped to net.core.rmem_max, and drops then show in
    // socket_dropped().
    const int rcvbuf = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    const sockaddr_ll local = packet_address(ifindex, nullptr);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
        int err = errno;
        ::close(fd);
        throw std::runtime_error("heartbeats: bind to interface " + std::to_string(ifindex) + ": " +
                                 std::strerror(err));
    }
    fd_ = fd;
}

void HeartbeatSocket::start(Handler handler, std::function<void()> batch_end) {
    reader_.on_batch_end(std::move(batch_end));
    reader_.start(executor_, fd_,
                  [this, handler = std::move(handler)](std::span<const std::uint8_t> f) {
                      const auto& from = reinterpret_cast<const sockaddr_ll&>(reader_.source());
                      MacAddress source{};
                      if (from.sll_halen == source.size())
                          std::memcpy(source.data(), from.sll_addr, source.size());
                      handler(f, source, reader_.arrival());
                  });
}

void HeartbeatSocket::send(std::span<const std::uint8_t> payload) {
    if (fd_ < 0) {
        send_errors_++;
        return;
    }
    const sockaddr_ll to = packet_address(ifindex_, &destination_);
    // Blocking, as the Asio socket's send was: a join's map chunks go out in one burst, and
    // a full send buffer must delay them, not drop them.
    ssize_t n;
    do // a signal (SIGHUP, SIGTERM) while the send waits for room must not lose the frame
        n = ::sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof(to));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        send_errors_++;
}

std::uint64_t HeartbeatSocket::socket_dropped() {
    tpacket_stats st{};
    socklen_t len = sizeof(st);
    if (fd_ >= 0 && ::getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
        socket_dropped_ += st.tp_drops;
    return socket_dropped_;
}

void HeartbeatSocket::close() {
    reader_.stop();
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = -1;
}

} // namespace nlb
