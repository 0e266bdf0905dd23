#include "fake_cluster.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include "remote_protocol.hpp"

namespace nlb::cli::test {

FakeCluster::FakeCluster(Options options) : options_(std::move(options)) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw std::runtime_error("fake cluster: cannot bind a loopback UDP socket");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
}

FakeCluster::~FakeCluster() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
}

void FakeCluster::serve() {
    using namespace nlb::remote;
    const ClusterKey key(options_.key);
    const ClusterKey other_key(std::vector<std::uint8_t>(32, 0xee));
    std::vector<ReplayGuard> guards(options_.hosts.size(), ReplayGuard(kWindowMs));
    std::vector<std::uint8_t> buffer(kMaxRequestSize + 1);
    int lost = 0;
    while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 10) <= 0)
            continue;
        sockaddr_in from{};
        socklen_t len = sizeof(from);
        ssize_t n = ::recvfrom(fd_, buffer.data(), buffer.size(), 0,
                               reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0)
            continue;
        datagrams_++;
        if (lost < options_.lose_first) {
            ++lost;
            continue;
        }
        auto send = [&](const std::vector<std::uint8_t>& d) {
            ::sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
        };
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        for (std::size_t i = 0; i < options_.hosts.size(); ++i) {
            const Host& host = options_.hosts[i];
            const Endpoint source{from.sin_addr.s_addr, ntohs(from.sin_port)};
            Received r = check_request(
                std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(n)), source,
                options_.cluster_ip, static_cast<std::uint8_t>(host.priority), HostKeys(key), now,
                guards[i]);
            if (r.drop != Drop::none || host.silent)
                continue;
            last_reply_ = std::uint64_t{ntohl(r.header.reply.ip)} << 16 | r.header.reply.port;
            last_source_ = std::uint64_t{ntohl(source.ip)} << 16 | source.port;
            const std::string command = r.payload["command"].get<std::string>();
            nlohmann::json response =
                host.ok ? nlohmann::json{{"ok", true}, {"result", {{"host", host.priority}}}}
                        : nlohmann::json{{"ok", false},
                                         {"error", command + ": refused by host " +
                                                       std::to_string(host.priority)}};
            Header h;
            h.type = Type::answer;
            h.priority = static_cast<std::uint8_t>(host.priority);
            h.cluster_ip = options_.cluster_ip;
            h.timestamp_ms = now;
            h.nonce = r.header.nonce;
            h.reply = r.header.reply;
            const std::string payload = answer_payload(
                command, response,
                Responder{static_cast<std::uint8_t>(host.priority), host.address, host.members});
            if (options_.send_junk) {
                Header stale = h;
                stale.nonce[0] ^= 1; // an answer to another command
                send(encode(stale,
                            answer_payload(command, {{"ok", false}, {"error", "stale"}},
                                           Responder{h.priority, "0.0.0.0", {}}),
                            key));
                send(encode(h, R"({"ok":false,"error":"forged"})", other_key));
                Header as_request = h;
                as_request.type = Type::request;
                send(encode(as_request, payload, key));
                Header nobody = h;
                nobody.priority = 0;
                send(encode(nobody, payload, key));
                Header elsewhere = h; // an answer meant for another nlbadm
                elsewhere.reply.port ^= 1;
                send(encode(elsewhere, payload, key));
                send(std::vector<std::uint8_t>(100, 0x42));
            }
            send(encode(h, payload, key));
        }
    }
}

} // namespace nlb::cli::test
