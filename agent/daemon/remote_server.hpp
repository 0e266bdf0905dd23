// Remote control's server side (docs/remote.md): a UDP socket on the cluster IP, port 2504,
// on the agent's io_context. Each datagram goes through remote_protocol's checks; a valid
// request goes to the same handler as the control socket and its response is sent, signed
// with the key the request was, to the reply address the request names (which is where it
// came from). Everything else is dropped and counted, never answered.
//
// A flood must not delay heartbeats or local commands: datagrams are read in batches of at
// most kBatch, then the server queues itself behind every other ready handler before reading
// on, and the socket's receive buffer is bounded (the kernel drops what does not fit, and the
// server counts those drops too).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <nlohmann/json.hpp>

#include "event_log.hpp"
#include "remote_protocol.hpp"

namespace nlb {

class RemoteServer {
  public:
    // The control socket's handler (request → {"ok": ...}); may throw std::exception.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;
    // The hosts this one sees in the cluster, for the answers' member lists.
    using Members = std::function<std::vector<int>()>;

    struct Identity {
        std::uint32_t cluster_ip = 0; // network byte order
        std::uint8_t priority = 0;
        std::string address; // dedicated IP, shown by nlbadm
    };

    struct Keys {
        std::vector<std::uint8_t> cluster;  // cluster.key_file's bytes
        std::vector<std::uint8_t> rotation; // cluster.rotation_key_file's; empty: none
    };

    static constexpr std::size_t kBatch = 32;
    static constexpr int kReceiveBuffer = 256 * 1024;
    // The answers kept for copies of their requests, and how often each is sent again: nlbadm
    // resends a request twice while a host's answer is missing.
    static constexpr std::size_t kKeptAnswers = 16;
    static constexpr int kAnswerAgain = 2;

    // Throws std::runtime_error "remote control: bind 10.0.0.1:2504: Address already in use".
    // Commands that change something are logged to `log` with the sender's address.
    // `replay_state`: the replay memory's state file (ReplayGuard), which outlives this server
    // and the agent; replay_state_path() of the control socket's path.
    RemoteServer(boost::asio::io_context& io, Identity identity, const Keys& keys,
                 std::string replay_state, Handler handler, Members members, EventLog& log);
    ~RemoteServer();
    RemoteServer(const RemoteServer&) = delete;
    RemoteServer& operator=(const RemoteServer&) = delete;

    // {"answered": n, "dropped_bad_mac": n, ...}: every outcome, docs/remote.md.
    nlohmann::json counters() const;

    // Where the replay memory of the agent whose control socket is `socket_path` is kept: the
    // socket's path with ".replay" appended (/run/nlb/nlb.sock.replay). Beside the socket
    // because that directory is the agent's own and writable (the unit's RuntimeDirectory),
    // and distinct for every agent of a machine, as their sockets are.
    static std::string replay_state_path(const std::string& socket_path);

  private:
    void wait();
    void read_batch();
    void serve(std::span<const std::uint8_t> datagram, const boost::asio::ip::udp::endpoint& from);
    void log_refused_time(const remote::Received& r, const boost::asio::ip::udp::endpoint& from,
                          std::int64_t now);
    bool send_answer(const std::vector<std::uint8_t>& answer, const remote::Endpoint& to);
    bool answer_again(const remote::Header& request);

    boost::asio::io_context& io_;
    Identity identity_;
    remote::HostKeys keys_;
    remote::ReplayGuard guard_;
    Handler handler_;
    Members members_;
    EventLog& log_;
    boost::asio::ip::udp::socket socket_;
    std::vector<std::uint8_t> buffer_;
    bool unsaved_logged_ = false; // the replay state's write error is in the log
    // When a signed request refused for its time (stale, before_start) was last logged.
    std::optional<std::chrono::steady_clock::time_point> clock_logged_;
    // Set by the destructor: a batch already queued on the io_context does nothing.
    std::shared_ptr<bool> closed_ = std::make_shared<bool>(false);

    // The last answers sent, oldest overwritten first. A request whose answer was lost comes
    // again as a copy, which the replay memory refuses and nothing runs again: the copy gets
    // the answer already sent instead (docs/remote.md, "A lost answer").
    struct KeptAnswer {
        remote::Nonce nonce{};
        remote::Endpoint reply;
        std::vector<std::uint8_t> answer;
        int sent_again = 0;
    };
    std::array<KeptAnswer, kKeptAnswers> kept_{};
    std::size_t next_kept_ = 0;

    struct Counters {
        std::uint64_t received = 0;
        std::uint64_t answered = 0;
        std::uint64_t answered_again = 0; // a copy of a request answered, its answer resent
        std::array<std::uint64_t, remote::kDropReasons> dropped{}; // by remote::Drop
        std::uint64_t dropped_queue_full = 0; // by the kernel: the receive buffer was full
        std::uint64_t send_errors = 0;
    } counters_;
};

} // namespace nlb
