#include "remote_server.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <boost/asio/post.hpp>

namespace nlb {

namespace {

using boost::asio::ip::udp;

std::int64_t realtime_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Commands that only read: not worth a log line each (monitoring polls them).
bool read_only(const std::string& command) {
    return command == "query" || command == "status" || command == "params" || command == "map" ||
           command == "stats" || command == "diff";
}

remote::HostKeys host_keys(const RemoteServer::Keys& keys) {
    if (keys.rotation.empty())
        return remote::HostKeys(remote::ClusterKey(keys.cluster));
    return remote::HostKeys(remote::ClusterKey(keys.cluster), remote::ClusterKey(keys.rotation));
}

} // namespace

std::string RemoteServer::replay_state_path(const std::string& socket_path) {
    return socket_path + ".replay";
}

RemoteServer::RemoteServer(boost::asio::io_context& io, Identity identity, const Keys& keys,
                           std::string replay_state, Handler handler, Members members,
                           EventLog& log)
    : io_(io), identity_(std::move(identity)), keys_(host_keys(keys)),
      guard_(remote::kWindowMs, std::move(replay_state), realtime_ms()),
      handler_(std::move(handler)), members_(std::move(members)), log_(log), socket_(io),
      // One byte over the limit, so that a larger datagram is seen to be one.
      buffer_(remote::kMaxRequestSize + 1) {
    // Not fatal: the start is the floor then (ReplayGuard), and the next request rewrites it.
    if (!guard_.load_error().empty())
        log_.warn("remote control: replay state " + guard_.load_error() +
                  ": ignored, refusing requests stamped before now");
    boost::asio::ip::address_v4 ip(ntohl(identity_.cluster_ip));
    const std::string what =
        "remote control: bind " + ip.to_string() + ":" + std::to_string(remote::kPort) + ": ";
    boost::system::error_code ec;
    socket_.open(udp::v4(), ec);
    if (!ec)
        socket_.non_blocking(true, ec);
    if (!ec) {
        // Bounded: a flood fills this and the kernel drops the rest, counted (SO_RXQ_OVFL).
        int size = kReceiveBuffer, one = 1;
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
        socket_.bind(udp::endpoint(ip, remote::kPort), ec);
    }
    if (ec)
        throw std::runtime_error(what + ec.message());
    wait();
}

RemoteServer::~RemoteServer() {
    *closed_ = true;
    boost::system::error_code ec;
    socket_.close(ec);
}

void RemoteServer::wait() {
    socket_.async_wait(udp::socket::wait_read,
                       [this, closed = closed_](const boost::system::error_code& ec) {
                           if (*closed || ec == boost::asio::error::operation_aborted)
                               return;
                           read_batch();
                       });
}

void RemoteServer::read_batch() {
    for (std::size_t i = 0; i < kBatch; ++i) {
        sockaddr_in from{};
        iovec iov{buffer_.data(), buffer_.size()};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint32_t))];
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof(from);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        // MSG_TRUNC: the datagram's real length, however much of it fits the buffer.
        ssize_t n = ::recvmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait(); // drained: the next datagram wakes us
                return;
            }
            continue; // a pending socket error, consumed by this call
        }
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                std::uint32_t dropped = 0;
                std::memcpy(&dropped, CMSG_DATA(c), sizeof(dropped));
                counters_.dropped_queue_full = dropped;
            }
        counters_.received++;
        udp::endpoint sender(boost::asio::ip::address_v4(ntohl(from.sin_addr.s_addr)),
                             ntohs(from.sin_port));
        serve(std::span<const std::uint8_t>(buffer_.data(),
                                            std::min(static_cast<std::size_t>(n), buffer_.size())),
              sender);
    }
    // A full batch: more may be queued. Go behind every handler that is ready now
    // (heartbeats, timers, the control socket), then read on.
    boost::asio::post(io_, [this, closed = closed_] {
        if (!*closed)
            read_batch();
    });
}

// A signed request refused for its time leaves its sender with nothing but a timeout: the
// clocks disagree (stale), or the sender's clock is behind the newest request this host ran,
// or this host's clock was set back past it (before_start). Said at most once a minute: a
// copy of a request seen on the wire, replayed, is refused the same way.
void RemoteServer::log_refused_time(const remote::Received& r,
                                    const boost::asio::ip::udp::endpoint& from, std::int64_t now) {
    const auto at = std::chrono::steady_clock::now();
    if (clock_logged_ && at - *clock_logged_ < std::chrono::minutes(1))
        return;
    clock_logged_ = at;
    const std::int64_t stamp = r.header.timestamp_ms;
    const std::string who = "remote control: a signed request from " + from.address().to_string() +
                            " was refused: stamped ";
    if (r.drop == remote::Drop::stale)
        log_.warn(who + std::to_string(std::abs(stamp - now) / 1000) + " s " +
                  (stamp > now ? "ahead of" : "behind") +
                  " this host's clock, past the 30 s allowed (are both clocks synchronised? "
                  "or a copy of an old request); dropped_stale counts them");
    else
        log_.warn(who + std::to_string(guard_.floor() - stamp) +
                  " ms before the newest request this host ran or its start (" +
                  guard_.state_file() +
                  "): the sender's clock is behind, or this host's was set back (or a copy of "
                  "a request run before); dropped_before_start counts them");
}

void RemoteServer::serve(std::span<const std::uint8_t> datagram, const udp::endpoint& from) {
    const std::int64_t now = realtime_ms();
    const remote::Endpoint source{htonl(from.address().to_v4().to_uint()), from.port()};
    remote::Received r = remote::check_request(datagram, source, identity_.cluster_ip,
                                               identity_.priority, keys_, now, guard_);
    if (r.drop == remote::Drop::unsaved && !unsaved_logged_) {
        // Once until a request passes again, not once per request: the counter says how many.
        log_.error("remote control: replay state " + guard_.save_error() +
                   ": requests refused until it can be written");
        unsaved_logged_ = true;
    }
    if (r.drop == remote::Drop::stale || r.drop == remote::Drop::before_start)
        log_refused_time(r, from, now);
    if (r.drop == remote::Drop::replay && answer_again(r.header))
        return;
    if (r.drop != remote::Drop::none) {
        counters_.dropped[static_cast<std::size_t>(r.drop)]++;
        return;
    }
    unsaved_logged_ = false;
    const std::string command = r.payload["command"].get<std::string>();
    nlohmann::json response;
    if (command == "attach" || command == "detach" || command == "prepare-restart") {
        response = {{"ok", false},
                    {"error", command + ": local only (run nlbadm " + command + " on the host)"}};
    } else {
        try {
            // Who sent it, for the handler (a push is allowed from afar only with
            // cluster.remote_config, and logged with its source). Set here, never taken
            // from the request.
            r.payload["remote_from"] = from.address().to_string();
            response = handler_(r.payload);
        } catch (const std::exception& e) {
            response = {{"ok", false}, {"error", e.what()}};
        }
    }
    if (!read_only(command))
        log_.event("remote_command", {{"command", command},
                                      {"from", from.address().to_string()},
                                      {"ok", response.value("ok", false)}});

    remote::Header h;
    h.type = remote::Type::answer;
    h.priority = identity_.priority;
    h.cluster_ip = identity_.cluster_ip;
    h.timestamp_ms = now;
    h.nonce = r.header.nonce;
    h.reply = r.header.reply;
    const std::string payload = remote::answer_payload(
        command, std::move(response),
        remote::Responder{identity_.priority, identity_.address, members_()});
    KeptAnswer& kept = kept_[next_kept_];
    next_kept_ = (next_kept_ + 1) % kept_.size();
    kept = {h.nonce, h.reply, remote::encode(h, payload, keys_[r.signed_with]), 0};
    if (send_answer(kept.answer, h.reply))
        counters_.answered++;
}

bool RemoteServer::send_answer(const std::vector<std::uint8_t>& answer,
                               const remote::Endpoint& reply) {
    // To the address the request's MAC covers (equal to its source, checked): an answer, up
    // to 60 times a request's size, never goes where the key holder did not ask for it.
    const udp::endpoint to(boost::asio::ip::address_v4(ntohl(reply.ip)), reply.port);
    boost::system::error_code ec;
    socket_.send_to(boost::asio::buffer(answer), to, 0, ec);
    if (ec)
        counters_.send_errors++;
    return !ec;
}

// A copy of a request this host answered, authentic and from the address it names (checked
// before the replay memory): its answer goes again, as it was, to that address, at most
// kAnswerAgain times. Bounded so that copies replayed by someone on the path (who can forge
// that source) make at most that many more answers, to where the key holder asked for them.
bool RemoteServer::answer_again(const remote::Header& request) {
    for (KeptAnswer& kept : kept_)
        if (!kept.answer.empty() && kept.nonce == request.nonce && kept.reply == request.reply) {
            if (kept.sent_again >= kAnswerAgain)
                return false;
            ++kept.sent_again;
            if (send_answer(kept.answer, kept.reply))
                counters_.answered_again++;
            return true;
        }
    return false;
}

nlohmann::json RemoteServer::counters() const {
    nlohmann::json out = {{"received", counters_.received},
                          {"answered", counters_.answered},
                          {"answered_again", counters_.answered_again},
                          {"send_errors", counters_.send_errors},
                          {"dropped_queue_full", counters_.dropped_queue_full}};
    for (std::size_t d = 1; d < remote::kDropReasons; ++d) {
        const auto reason = static_cast<remote::Drop>(d);
        const std::string name = reason == remote::Drop::other_host
                                     ? "ignored_other_host"
                                     : std::string("dropped_") + remote::to_string(reason);
        out[name] = counters_.dropped[d];
    }
    return out;
}

} // namespace nlb
