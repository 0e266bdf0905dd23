#include "contact_socket.hpp"

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
    if (!ec)
        socket_.set_option(udp::socket::reuse_address(true), ec);
    if (!ec)
        socket_.bind(at, ec);
    if (ec)
        throw std::runtime_error("second path on " + to_string(local) + ": " + ec.message());
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
