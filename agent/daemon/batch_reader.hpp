// Reading a datagram socket the agent's way: at most kBatch datagrams per wakeup (non-blocking
// recvmmsg: what is queued comes in one call, not one system call a datagram), then behind
// every handler that is ready, so that a flood on one socket never starves timers or the
// other sockets. The heartbeat socket and the second path's socket both read through one.
//
// With a linger, datagrams that come often are read in batches: a host of a 64-host cluster
// receives 63 heartbeats a period, spread over it, and a wakeup of the agent (scheduler,
// epoll, the syscalls around the read) costs more than handling the frame it brings. When a
// datagram wakes the reader within a linger of its last wakeup, the reader stops watching the
// socket and reads it again one linger later, and keeps doing so while each turn finds
// something; a turn that finds nothing watches the socket again. So a datagram is handled at
// most a linger after it came, a socket that hears something every linger or more often
// wakes the agent once a linger, and one that hears rarely still once a datagram, never twice.
// Not watching is what saves the wakeups: the io_context's epoll wakes its thread for every
// datagram on a descriptor registered with it, whether or not anyone waits. So a lingering
// reader is given a bare descriptor (start(executor, fd, ...)), which it registers itself
// only while it waits.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace nlb {

class BatchReader {
  public:
    using Handler = std::function<void(std::span<const std::uint8_t> payload)>;
    static constexpr std::size_t kBatch = 64;
    static constexpr std::size_t kDatagram = 2048; // longer ones are cut (an MTU is 1500)

    BatchReader() {
        for (std::size_t i = 0; i < kBatch; ++i) {
            iov_[i] = {buffers_.data() + i * kDatagram, kDatagram};
            msgs_[i].msg_hdr.msg_iov = &iov_[i];
            msgs_[i].msg_hdr.msg_iovlen = 1;
            msgs_[i].msg_hdr.msg_name = &sources_[i];
            msgs_[i].msg_hdr.msg_control = controls_[i].bytes;
        }
    }
    ~BatchReader() { stop(); }
    BatchReader(const BatchReader&) = delete;
    BatchReader& operator=(const BatchReader&) = delete;

    // `socket` (an Asio datagram socket) outlives the reader or is closed after stop(). The
    // handler may stop or destroy the reader (and its owner).
    template <class Socket> void start(Socket& socket, Handler handler) {
        handler_ = std::move(handler);
        fd_ = socket.native_handle();
        stamp_arrivals();
        executor_ = socket.get_executor();
        wait_ = [&socket](std::function<void(const boost::system::error_code&)> then) {
            socket.async_wait(Socket::wait_read, std::move(then));
        };
        wait();
    }
    // `fd` (a datagram socket no io_context knows) stays open until after stop(); the reader
    // registers it with `executor`'s io_context only while it waits, so it may linger.
    void start(const boost::asio::any_io_executor& executor, int fd, Handler handler) {
        unwatch(); // a descriptor watched before must not be closed by its watcher's end
        handler_ = std::move(handler);
        fd_ = fd;
        stamp_arrivals();
        executor_ = executor;
        timer_ = std::make_unique<boost::asio::steady_timer>(executor_);
        watch_ = std::make_unique<boost::asio::posix::stream_descriptor>(executor_);
        wait_ = [this](std::function<void(const boost::system::error_code&)> then) {
            boost::system::error_code ec;
            if (!polling_ && !watch_->is_open())
                watch_->assign(fd_, ec); // epoll: a datagram already queued is reported
            if (!polling_ && !ec) {
                watch_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                   std::move(then));
                return;
            }
            // The io_context's epoll refused the descriptor (out of memory, or the watch limit):
            // read on a timer from now on, as a lingering reader does. Not retried: Asio keeps
            // the state of a failed registration until the io_context ends.
            polling_ = true;
            poll_after(std::max(linger_, std::chrono::nanoseconds(std::chrono::milliseconds(10))));
        };
        wait();
    }
    void stop() {
        *closed_ = true;
        if (timer_)
            timer_->cancel();
        unwatch();
    }
    // 0 (the default): every datagram wakes the reader at once. Only a reader started on a
    // bare descriptor lingers.
    void set_linger(std::chrono::nanoseconds linger) { linger_ = linger; }
    // Called after the datagrams one turn read (at least one), before the reader waits again:
    // what the handler took in one at a time is decided on once (ConvergenceEngine's
    // begin_frames). It may stop or destroy the reader.
    void on_batch_end(std::function<void()> done) { batch_end_ = std::move(done); }
    // Reads what is queued now, at most `max` datagrams, as one turn does (handler, then one
    // batch end if it read any), outside the reader's own turns, whose wait it leaves as it
    // is: a wakeup that then finds the socket empty waits again. For a caller about to decide
    // on what the socket has brought: the agent's timer, before a late tick of the engine,
    // which would otherwise count peers dead whose frames queued while the agent was held up.
    // Not while the handler runs. False when it stopped at `max`: more may wait.
    bool drain(std::size_t max) {
        if (fd_ < 0 || *closed_)
            return true;
        const auto closed = closed_;
        std::size_t handled = 0;
        bool emptied = false;
        while (handled < max) {
            const int n = receive(std::min(kBatch, max - handled));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                emptied = true; // or an error, which the reader's next turn meets again
                break;
            }
            handled += static_cast<std::size_t>(n);
            if (!handle(n))
                return true;
        }
        if (handled > 0 && batch_end_ && !*closed)
            batch_end_();
        return emptied;
    }
    std::uint64_t received() const { return received_; }
    // Turns that read the socket after a wakeup (readable, or a linger's end).
    std::uint64_t wakeups() const { return wakeups_; }
    // The sender of the datagram being handled (valid inside the handler).
    const sockaddr_storage& source() const { return sources_[current_]; }
    // When the datagram being handled came (valid inside the handler), on the steady clock:
    // the kernel's receive timestamp, so that what queued up while the process stalled is
    // known for what it is (ConvergenceEngine::on_heartbeat). The kernel stamps with the wall
    // clock; the age it gives is carried over to the steady clock when the batch is read. A
    // datagram without a stamp came just now.
    std::chrono::steady_clock::time_point arrival() const { return arrival_; }
    // Both clocks, read one after the other.
    struct Clocks {
        std::chrono::nanoseconds wall{0}; // CLOCK_REALTIME
        std::chrono::steady_clock::time_point steady{};
    };
    // A receive stamp (the wall clock) on the steady clock, for a datagram read at `read` from
    // a socket last found empty at `empty_at` (the clocks then: `empty`). The engine judges
    // queued frames by it (ConvergenceEngine::observe): one dated too early may vouch for
    // this host where it should not, one dated too late costs only a needless release. So:
    // - The two clocks move apart only when the wall clock is set (NTP slews both alike): a
    //   step since the socket was last empty (a VM's clock sync after a pause, an operator)
    //   would date the stamps by the wrong clock, and they count as read just now. Reading
    //   the two clocks a moment apart (a preemption) looks like a step too, with that result.
    // - It came after the socket was last found empty, and before it was read.
    static std::chrono::steady_clock::time_point
    steady_arrival(std::chrono::nanoseconds stamp, const Clocks& read, const Clocks& empty,
                   std::chrono::steady_clock::time_point empty_at) {
        using namespace std::chrono_literals;
        const auto offset = read.wall - read.steady.time_since_epoch();
        if (empty.steady != std::chrono::steady_clock::time_point{}) {
            const auto moved = offset - (empty.wall - empty.steady.time_since_epoch());
            if (moved > 1ms || moved < -1ms)
                return read.steady;
        }
        const auto at = std::chrono::steady_clock::time_point(
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(stamp - offset));
        return std::clamp(at, std::min(empty_at, read.steady), read.steady);
    }

  private:
    void wait() {
        wait_([this, closed = closed_](const boost::system::error_code& ec) {
            if (*closed || ec == boost::asio::error::operation_aborted)
                return;
            woken(false);
        });
    }

    // Each datagram read comes with its receive time (arrival()). Without the option the
    // reader still works: every datagram then counts as just come.
    void stamp_arrivals() {
        const int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    }

    // The receive time `m` carries, as arrival() gives it.
    std::chrono::steady_clock::time_point arrival_of(msghdr& m) const {
        if (m.msg_flags & MSG_CTRUNC)
            return read_.steady;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS ||
                c->cmsg_len < CMSG_LEN(sizeof(timespec)))
                continue;
            timespec ts{};
            std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            return steady_arrival(std::chrono::seconds(ts.tv_sec) +
                                      std::chrono::nanoseconds(ts.tv_nsec),
                                  read_, empty_, empty_at_);
        }
        return read_.steady;
    }

    // The descriptor leaves the io_context's epoll (it is not closed: the owner closes it).
    void unwatch() {
        if (watch_ && watch_->is_open())
            watch_->release();
    }

    void linger() {
        unwatch();
        poll_after(linger_);
    }

    void poll_after(std::chrono::nanoseconds delay) {
        timer_->expires_after(delay);
        timer_->async_wait([this, closed = closed_](const boost::system::error_code& ec) {
            if (*closed || ec == boost::asio::error::operation_aborted)
                return;
            woken(true);
        });
    }

    void woken(bool lingered) {
        const auto now = std::chrono::steady_clock::now();
        ++wakeups_;
        // Read again a linger from now if this socket is busy: the last turn found something
        // after a linger, or this datagram came within a linger of the last wakeup.
        next_lingers_ = watch_ && linger_.count() > 0 && (lingered || now - last_wakeup_ < linger_);
        last_wakeup_ = now;
        found_ = 0;
        read_batch();
    }

    void read_batch() {
        const auto closed = closed_; // the handler may destroy *this
        std::size_t handled = 0;
        const auto end_batch = [&] {
            if (handled > 0 && batch_end_)
                batch_end_();
            return !*closed;
        };
        while (handled < kBatch) {
            const int n = receive(kBatch - handled);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                // Drained (EAGAIN), or an error this call consumed (the interface went down):
                // either way the next datagram (or the linger's end) wakes us, and nothing
                // spins: a linger that found nothing waits for a datagram. After an error the
                // descriptor registers afresh, which reports datagrams queued behind it (an
                // edge-triggered watch would wait for the next one). recvmmsg reports an error
                // met after some datagrams at the next call, so a turn reads until one fails.
                const bool drained = errno == EAGAIN || errno == EWOULDBLOCK;
                if (!end_batch())
                    return;
                if (next_lingers_ && found_ > 0) {
                    linger();
                } else {
                    if (!drained)
                        unwatch();
                    wait();
                }
                return;
            }
            found_ += static_cast<std::size_t>(n);
            handled += static_cast<std::size_t>(n);
            if (!handle(n))
                return;
        }
        // A full batch: more may be queued. Go behind every ready handler, then read on.
        if (!end_batch())
            return;
        boost::asio::post(executor_, [this, closed] {
            if (!*closed)
                read_batch();
        });
    }

    // One non-blocking recvmmsg of at most `want` (<= kBatch) datagrams: their count, or -1
    // with errno (EAGAIN: the socket is empty, and empty_at_ says since when).
    int receive(std::size_t want) {
        for (std::size_t i = 0; i < want; ++i) {
            msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
            msgs_[i].msg_hdr.msg_controllen = sizeof(Control::bytes);
        }
        const auto called = std::chrono::steady_clock::now();
        const int n =
            ::recvmmsg(fd_, msgs_.data(), static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
        const int saved = errno;
        // Both clocks read once, after the datagrams were: arrival() measures their age.
        timespec wall{};
        ::clock_gettime(CLOCK_REALTIME, &wall);
        read_.wall = std::chrono::seconds(wall.tv_sec) + std::chrono::nanoseconds(wall.tv_nsec);
        read_.steady = std::chrono::steady_clock::now();
        if (n < 0 && (saved == EAGAIN || saved == EWOULDBLOCK)) {
            empty_at_ = called;
            empty_ = read_;
        }
        errno = saved;
        return n;
    }

    // The handler for each of the `n` datagrams receive() read; false once the reader is
    // stopped or gone (the handler may do either).
    bool handle(int n) {
        const auto closed = closed_;
        for (int i = 0; i < n; ++i) {
            ++received_;
            current_ = static_cast<std::size_t>(i);
            arrival_ = arrival_of(msgs_[current_].msg_hdr);
            handler_(std::span<const std::uint8_t>(buffers_.data() + current_ * kDatagram,
                                                   msgs_[current_].msg_len));
            if (*closed)
                return false;
        }
        return true;
    }

    Handler handler_;
    std::function<void()> batch_end_;
    int fd_ = -1;
    boost::asio::any_io_executor executor_;
    std::function<void(std::function<void(const boost::system::error_code&)>)> wait_;
    std::vector<std::uint8_t> buffers_ = std::vector<std::uint8_t>(kBatch * kDatagram);
    std::array<iovec, kBatch> iov_{};
    std::array<mmsghdr, kBatch> msgs_{};
    std::array<sockaddr_storage, kBatch> sources_{};
    struct Control {
        alignas(cmsghdr) unsigned char bytes[CMSG_SPACE(sizeof(timespec))];
    };
    std::array<Control, kBatch> controls_{};
    Clocks read_;  // when the batch was read
    Clocks empty_; // at the last read that found the socket empty
    std::chrono::steady_clock::time_point arrival_{}; // of the datagram being handled
    // Just before the last read that found the socket empty: what is read later came after.
    std::chrono::steady_clock::time_point empty_at_{};
    std::size_t current_ = 0; // the datagram being handled
    std::uint64_t received_ = 0;
    std::uint64_t wakeups_ = 0;
    std::chrono::nanoseconds linger_{0};
    std::chrono::steady_clock::time_point last_wakeup_{};
    bool next_lingers_ = false;
    bool polling_ = false;  // the io_context's epoll refused the descriptor
    std::size_t found_ = 0; // datagrams read since the last wakeup
    std::unique_ptr<boost::asio::steady_timer> timer_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> watch_; // a bare descriptor's
    std::shared_ptr<bool> closed_ = std::make_shared<bool>(false);
};

} // namespace nlb
