// The agents' second path (docs/convergence.md, "Contact"): a UDP socket on this host's
// dedicated IP, port NLB_CONTACT_PORT, that carries the same signed heartbeats as the
// segment, unicast to each peer's dedicated IP. It moves bytes only; the engine authenticates
// and judges them. Reads are bounded per wakeup (BatchReader).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include "batch_reader.hpp"
#include "rules.hpp"

namespace nlb {

class ContactSocket {
  public:
    using Handler = std::function<void(std::span<const std::uint8_t> payload)>;

    // Binds `local` (the dedicated IP, NLB_CONTACT_PORT). Throws std::runtime_error
    // "second path on 10.0.0.11:2505: <reason>".
    ContactSocket(boost::asio::io_context& io, const ContactAddress& local);
    ContactSocket(const ContactSocket&) = delete;
    ContactSocket& operator=(const ContactSocket&) = delete;

    // `batch_end` follows the datagrams of each turn (BatchReader::on_batch_end).
    void start(Handler handler, std::function<void()> batch_end = {});
    // Reads what is queued now, at most `max` datagrams (BatchReader::drain).
    bool drain(std::size_t max) { return reader_.drain(max); }
    // Errors are counted, not thrown: a lost datagram is what the protocol tolerates.
    void send(const ContactAddress& to, std::span<const std::uint8_t> payload);
    void close();

    std::uint64_t send_errors() const { return send_errors_; }
    std::uint64_t received() const { return reader_.received(); }
    // When the datagram being handled came (BatchReader::arrival; valid inside the handler).
    std::chrono::steady_clock::time_point arrival() const { return reader_.arrival(); }
    // Datagrams the kernel dropped at this socket since it opened: for want of room in its
    // buffer, or (rarely) a bad checksum.
    std::uint64_t socket_dropped();

  private:
    boost::asio::ip::udp::socket socket_;
    std::uint64_t send_errors_ = 0;
    BatchReader reader_; // after socket_: stopped before the socket goes
};

// "10.0.0.11:2505", "[2001:db8::11]:2505".
std::string to_string(const ContactAddress& address);

} // namespace nlb
