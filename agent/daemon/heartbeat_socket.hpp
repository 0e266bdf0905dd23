// Heartbeat transport: an AF_PACKET socket for EtherType 0x886F on the cluster interface,
// driven by the agent's io_context. It moves bytes only; the convergence engine decodes,
// authenticates and judges them.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include "batch_reader.hpp"
#include "cluster_mac.hpp"

namespace nlb {

class HeartbeatSocket {
  public:
    // `source`: the frame's Ethernet source address; `arrival`: when it came
    // (BatchReader::arrival).
    using Handler =
        std::function<void(std::span<const std::uint8_t> payload, const MacAddress& source,
                           std::chrono::steady_clock::time_point arrival)>;

    // Throws std::runtime_error "heartbeats on eth0: <reason>".
    HeartbeatSocket(boost::asio::io_context& io, int ifindex, const MacAddress& destination);
    ~HeartbeatSocket() { close(); }
    HeartbeatSocket(const HeartbeatSocket&) = delete;
    HeartbeatSocket& operator=(const HeartbeatSocket&) = delete;

    // Hands every frame received (Ethernet payload, at most one MTU) to `handler`, at most
    // BatchReader::kBatch per turn of the io_context: under a flood of forged frames this
    // host still sends its own heartbeats on time. `batch_end` follows the frames of each
    // turn (BatchReader::on_batch_end). Either may close or destroy this.
    void start(Handler handler, std::function<void()> batch_end = {});
    // Frames that come often are read in batches, each at most `linger` after it came
    // (BatchReader::set_linger): the agent sets an eighth of its heartbeat period,
    // at most 50 ms.
    void set_linger(std::chrono::nanoseconds linger) { reader_.set_linger(linger); }
    // Reads what is queued now, at most `max` frames, outside the reader's turns
    // (BatchReader::drain).
    bool drain(std::size_t max) { return reader_.drain(max); }
    // Sends one frame to the destination; errors are counted, not thrown (a lost heartbeat is
    // what the protocol tolerates).
    void send(std::span<const std::uint8_t> payload);
    void close();

    std::uint64_t send_errors() const { return send_errors_; }
    // Frames the kernel dropped for want of room in this socket's buffer, since it opened
    // (PACKET_STATISTICS, which resets on each read: summed here).
    std::uint64_t socket_dropped();
    // Frames handed to the handler, whatever the engine made of them.
    std::uint64_t received_frames() const { return reader_.received(); }

  private:
    // A bare descriptor, not an Asio socket: the reader registers it with the io_context only
    // while it waits (BatchReader, the linger).
    int fd_ = -1;
    boost::asio::any_io_executor executor_;
    int ifindex_;
    MacAddress destination_;
    std::uint64_t send_errors_ = 0;
    std::uint64_t socket_dropped_ = 0;
    BatchReader reader_; // stopped (close()) before the descriptor is closed
};

} // namespace nlb
