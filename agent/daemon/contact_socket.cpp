#include "contact_socket.hpp"

#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>


namespace nlb {

namespace {

using boost::asio::ip::udp;

udp::endpoint endpoint_of(const ContactAddress& a) {
    if (a.family == 6) {
        boost::asio::ip::address_v6::bytes_type bytes;
        std::memcpy(bytes.data(), a.address.data(), 16);
        return {boost::asio::ip::address_v6(bytes), a.port};
    }
    boost::asio::ip::address_v4::bytes_type bytes;
    std::memcpy(bytes.data(), a.address.data(), 4);
    return {boost::asio::ip::address_v4(bytes), a.port};
}

} // namespace

std::string to_string(const ContactAddress& a) {
    const auto e = endpoint_of(a);
    const std::string ip = e.address().to_string();
    return (a.family == 6 ? "[" + ip + "]" : ip) + ":" + std::to_string(a.port);
}

ContactSocket::ContactSocket(boost::asio::io_context& io, const ContactAddress& local)
    : socket_(io) {
    const auto at = endpoint_of(local);
    boost::system::error_code ec;
    socket_.open(at.protocol(), ec);
    // Bound alone, without SO_REUSEADDR: with it, any local process (an unprivileged one too)
    // that sets it as well binds the same address and port, and the kernel hands the peers'
    // datagrams to that socket instead of this one. UDP has no TIME_WAIT for a restarted agent
    // to wait out.
    if (!ec)
        socket_.bind(at, ec);
    if (ec)
        throw std::runtime_error("second path on " + to_string(local) + ": " + ec.message());
    // During a convergence every peer sends every heartbeat here too: at 64 hosts and 100 ms,
    // 630 datagrams a second, which the default buffer (net.core.rmem_default, 208 KB here:
    // under 100 of them) could not hold through a stall of a sixth of a second (measured:
    // 200-840 dropped per host while 64 agents started together). 4 MB (the kernel doubles
    // it) holds a second of them at up to 4.5 KB each; only what is queued takes memory.
    // FORCE needs CAP_NET_ADMIN (the unit grants it); the plain option is the fallback,
    // clamped to net.core.rmem_max, and drops then show in socket_dropped().
    const int rcvbuf = 4 << 20;
    const int fd = socket_.native_handle();
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
}

std::uint64_t ContactSocket::socket_dropped() {
    // The socket's own drop count (what /proc/net/udp shows in its last column).
    std::uint32_t info[SK_MEMINFO_VARS]{};
    socklen_t len = sizeof(info);
    if (!socket_.is_open() ||
        ::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_MEMINFO, info, &len) != 0 ||
        len <= SK_MEMINFO_DROPS * sizeof(std::uint32_t))
        return 0;
    return info[SK_MEMINFO_DROPS];
}

void ContactSocket::start(Handler handler, std::function<void()> batch_end) {
    reader_.on_batch_end(std::move(batch_end));
    reader_.start(socket_, std::move(handler));
}

void ContactSocket::send(const ContactAddress& to, std::span<const std::uint8_t> payload) {
    if (to.family != 4 && to.family != 6)
        return;
    boost::system::error_code ec;
    socket_.send_to(boost::asio::buffer(payload.data(), payload.size()), endpoint_of(to), 0, ec);
    if (ec)
        ++send_errors_;
}

void ContactSocket::close() {
    reader_.stop();
    boost::system::error_code ec;
    socket_.close(ec);
}

} // namespace nlb
