// Reading a datagram socket the agent's way: at most kBatch datagrams per wakeup
// (non-blocking recv), then behind every handler that is ready, so that a flood on one socket
// never starves timers or the other sockets. The heartbeat socket and the second path's
// socket both read through one.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

namespace nlb {

class BatchReader {
  public:
    using Handler = std::function<void(std::span<const std::uint8_t> payload)>;
    static constexpr std::size_t kBatch = 64;

    BatchReader() = default;
    ~BatchReader() { *closed_ = true; }
    BatchReader(const BatchReader&) = delete;
    BatchReader& operator=(const BatchReader&) = delete;

    // `socket` (an Asio datagram socket) outlives the reader or is closed after stop(). The
    // handler may stop or destroy the reader (and its owner).
    template <class Socket> void start(Socket& socket, Handler handler) {
        handler_ = std::move(handler);
        fd_ = socket.native_handle();
        executor_ = socket.get_executor();
        wait_ = [&socket](std::function<void(const boost::system::error_code&)> then) {
            socket.async_wait(Socket::wait_read, std::move(then));
        };
        wait();
    }
    void stop() { *closed_ = true; }
    std::uint64_t received() const { return received_; }
    // The sender of the datagram being handled (valid inside the handler).
    const sockaddr_storage& source() const { return source_; }

  private:
    void wait() {
        wait_([this, closed = closed_](const boost::system::error_code& ec) {
            if (*closed || ec == boost::asio::error::operation_aborted)
                return;
            read_batch();
        });
    }

    void read_batch() {
        const auto closed = closed_; // the handler may destroy *this
        for (std::size_t i = 0; i < kBatch; ++i) {
            socklen_t len = sizeof(source_);
            const ssize_t n = ::recvfrom(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT,
                                         reinterpret_cast<sockaddr*>(&source_), &len);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                // Drained (EAGAIN), or an error this call consumed (the interface went down):
                // either way the next datagram wakes us, and nothing spins.
                wait();
                return;
            }
            ++received_;
            handler_(std::span<const std::uint8_t>(buffer_.data(), static_cast<std::size_t>(n)));
            if (*closed)
                return;
        }
        // A full batch: more may be queued. Go behind every ready handler, then read on.
        boost::asio::post(executor_, [this, closed] {
            if (!*closed)
                read_batch();
        });
    }

    Handler handler_;
    int fd_ = -1;
    boost::asio::any_io_executor executor_;
    std::function<void(std::function<void(const boost::system::error_code&)>)> wait_;
    std::array<std::uint8_t, 2048> buffer_{};
    sockaddr_storage source_{};
    std::uint64_t received_ = 0;
    std::shared_ptr<bool> closed_ = std::make_shared<bool>(false);
};

} // namespace nlb
