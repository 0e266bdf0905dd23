// Heartbeat transport: an AF_PACKET socket for EtherType 0x886F on the cluster interface,
// driven by the agent's io_context. It moves bytes only; the convergence engine decodes,
// authenticates and judges them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/generic/datagram_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include "cluster_mac.hpp"

namespace nlb {

class HeartbeatSocket {
  public:
    using Handler = std::function<void(std::span<const std::uint8_t> payload)>;

    // Frames read per wakeup at most. Under a flood of forged frames the socket never drains;
    // after a batch the next one queues behind every handler that is ready (timers, the
    // control and remote sockets), so this host still sends its own heartbeats on time.
    static constexpr std::size_t kBatch = 64;

    // Throws std::runtime_error "heartbeats on eth0: <reason>".
    HeartbeatSocket(boost::asio::io_context& io, int ifindex, const MacAddress& destination);
    ~HeartbeatSocket();
    HeartbeatSocket(const HeartbeatSocket&) = delete;
    HeartbeatSocket& operator=(const HeartbeatSocket&) = delete;

    // Hands every frame received (Ethernet payload, at most one MTU) to `handler`, at most
    // kBatch per turn of the io_context. The handler may close or destroy this socket.
    void start(Handler handler);
    // Sends one frame to the destination; errors are counted, not thrown (a lost heartbeat is
    // what the protocol tolerates).
    void send(std::span<const std::uint8_t> payload);
    void close();

    std::uint64_t send_errors() const { return send_errors_; }
    // Frames handed to the handler, whatever the engine made of them.
    std::uint64_t received_frames() const { return received_frames_; }

  private:
    void wait();
    void read_batch();

    boost::asio::generic::datagram_protocol::socket socket_;
    int ifindex_;
    MacAddress destination_;
    std::array<std::uint8_t, 2048> buffer_{};
    Handler handler_;
    std::uint64_t send_errors_ = 0;
    std::uint64_t received_frames_ = 0;
    // Set by close() and the destructor; pending waits and posted batches hold a copy, so
    // they never touch a socket that is gone.
    std::shared_ptr<bool> closed_ = std::make_shared<bool>(false);
};

} // namespace nlb
