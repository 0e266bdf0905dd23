// The agents' second path (docs/convergence.md, "Contact"): a UDP socket on this host's
// dedicated IP, port NLB_CONTACT_PORT, that carries the same signed heartbeats as the
// segment, unicast to each peer's dedicated IP. It moves bytes only; the engine authenticates
// and judges them. Reads are bounded per wakeup like the heartbeat socket's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include "rules.hpp"

namespace nlb {

class ContactSocket {
  public:
    using Handler = std::function<void(std::span<const std::uint8_t> payload)>;
    static constexpr std::size_t kBatch = 64;

    // Binds `local` (the dedicated IP, NLB_CONTACT_PORT). Throws std::runtime_error
    // "second path on 10.0.0.11:2505: <reason>".
    ContactSocket(boost::asio::io_context& io, const ContactAddress& local);
    ~ContactSocket();
    ContactSocket(const ContactSocket&) = delete;
    ContactSocket& operator=(const ContactSocket&) = delete;

    void start(Handler handler);
    // Errors are counted, not thrown: a lost datagram is what the protocol tolerates.
    void send(const ContactAddress& to, std::span<const std::uint8_t> payload);
    void close();

    std::uint64_t send_errors() const { return send_errors_; }
    std::uint64_t received() const { return received_; }

  private:
    void wait();
    void read_batch();

    boost::asio::ip::udp::socket socket_;
    std::array<std::uint8_t, 2048> buffer_{};
    Handler handler_;
    std::shared_ptr<bool> closed_ = std::make_shared<bool>(false);
    std::uint64_t send_errors_ = 0, received_ = 0;
};

// "10.0.0.11:2505", "[2001:db8::11]:2505".
std::string to_string(const ContactAddress& address);

} // namespace nlb
