#include "contact_socket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <boost/asio/post.hpp>

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
    if (!ec)
        socket_.set_option(udp::socket::reuse_address(true), ec);
    if (!ec)
        socket_.bind(at, ec);
    if (ec)
        throw std::runtime_error("second path on " + to_string(local) + ": " + ec.message());
}

ContactSocket::~ContactSocket() {
    *closed_ = true;
}

void ContactSocket::start(Handler handler) {
    handler_ = std::move(handler);
    wait();
}

void ContactSocket::wait() {
    socket_.async_wait(udp::socket::wait_read,
                       [this, closed = closed_](const boost::system::error_code& ec) {
                           if (*closed || ec == boost::asio::error::operation_aborted)
                               return;
                           read_batch();
                       });
}

void ContactSocket::read_batch() {
    const auto closed = closed_; // the handler may destroy *this
    for (std::size_t i = 0; i < kBatch; ++i) {
        const ssize_t n =
            ::recv(socket_.native_handle(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            wait(); // drained, or an error this call consumed: the next datagram wakes us
            return;
        }
        ++received_;
        handler_(std::span<const std::uint8_t>(buffer_.data(), static_cast<std::size_t>(n)));
        if (*closed)
            return;
    }
    // A full batch: let timers and the other sockets have their turn, then read on.
    boost::asio::post(socket_.get_executor(), [this, closed] {
        if (!*closed)
            read_batch();
    });
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
    *closed_ = true;
    boost::system::error_code ec;
    socket_.close(ec);
}

} // namespace nlb
