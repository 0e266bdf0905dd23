#include "remote_client.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <nlb/limits.h>

#include "fd.hpp"

namespace nlb::cli {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Room for the answers of a whole cluster arriving at once (64 hosts, tens of KiB each).
constexpr int kReceiveBuffer = 4 * 1024 * 1024;
// Datagrams read per wakeup before the clock is looked at again.
constexpr int kBatch = 64;

remote::Nonce random_nonce() {
    remote::Nonce n{};
    for (std::size_t got = 0; got < n.size();) {
        ssize_t r = ::getrandom(n.data() + got, n.size() - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
        got += static_cast<std::size_t>(r);
    }
    return n;
}

std::int64_t realtime_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

HostAnswer host_answer(const nlohmann::json& payload) {
    HostAnswer a;
    if (payload.contains("host") && payload["host"].is_object() &&
        payload["host"].contains("address") && payload["host"]["address"].is_string())
        a.address = payload["host"]["address"].get<std::string>();
    a.ok = payload["ok"].get<bool>();
    if (a.ok)
        a.result = payload.contains("result") ? payload["result"] : nlohmann::json(nullptr);
    else if (payload.contains("error") && payload["error"].is_string())
        a.error = payload["error"].get<std::string>();
    else
        a.error = "refused (no reason given)";
    return a;
}

// The address the hosts see our datagrams come from, which the request names as its reply
// address: the source address the kernel's routing picks for the cluster IP (learnt by
// connecting a throwaway socket, which sends nothing), and a port of our own on it. Bound
// explicitly, so that what we send goes out from exactly there. The socket stays unconnected:
// a connected one would stop receiving at the first ICMP error some other host sends.
remote::Endpoint bind_reply_address(int fd, const sockaddr_in& to, const std::string& where) {
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    {
        Fd probe(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (probe.get() < 0 ||
            ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0 ||
            ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&local), &len) != 0)
            throw RemoteUnreachable(where + ": " + std::strerror(errno));
    }
    local.sin_port = 0;
    len = sizeof(local);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0)
        throw RemoteUnreachable(where + ": bind: " + std::strerror(errno));
    return remote::Endpoint{local.sin_addr.s_addr, ntohs(local.sin_port)};
}

} // namespace

ClusterAnswers call_cluster(const RemoteTarget& target, const nlohmann::json& request) {
    const std::string where =
        "remote control: " + target.cluster.to_string() + ":" + std::to_string(target.port);
    Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
        throw RemoteUnreachable(where + ": socket: " + std::strerror(errno));
    int size = kReceiveBuffer;
    // Past net.core.rmem_max only for root; otherwise as much as the system allows.
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));

    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(target.port);
    to.sin_addr.s_addr = target.cluster.words[0];

    const remote::ClusterKey key(target.key);
    remote::Header h;
    h.type = remote::Type::request;
    h.priority = target.host;
    h.cluster_ip = target.cluster.words[0];
    h.timestamp_ms = realtime_ms();
    h.nonce = random_nonce();
    h.reply = bind_reply_address(fd.get(), to, where);
    const auto datagram = remote::encode(h, request.dump(), key);
    if (datagram.size() > remote::kMaxRequestSize)
        throw std::runtime_error("request too large for remote control (" +
                                 std::to_string(datagram.size()) + " bytes)");
    auto send = [&] {
        if (::sendto(fd.get(), datagram.data(), datagram.size(), 0,
                     reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0)
            throw RemoteUnreachable(where + ": " + std::strerror(errno));
    };

    const auto start = Clock::now();
    const auto deadline = start + target.timeout;
    // A lost request is sent again; a host that has it drops the copies as replays.
    const std::array<Clock::time_point, 2> resends = {start + target.timeout / 4,
                                                      start + target.timeout / 2};
    std::size_t next_resend = 0;
    send();

    ClusterAnswers out;
    std::set<int> expected;
    if (target.host)
        expected.insert(target.host);
    constexpr auto kUnset = Clock::time_point::max();
    auto stragglers_until = kUnset; // complete since: the end of the wait for stragglers
    std::vector<std::uint8_t> buffer(remote::kMaxAnswerSize + 1);
    for (;;) {
        const auto now = Clock::now();
        bool complete =
            !out.hosts.empty() && std::all_of(expected.begin(), expected.end(),
                                              [&](int p) { return out.hosts.count(p) > 0; });
        if (complete && target.host)
            break;
        if (!complete)
            stragglers_until = kUnset;
        else if (stragglers_until == kUnset)
            stragglers_until = now + kStragglerWait;
        const auto end = std::min(stragglers_until, deadline);
        if (now >= end)
            break;
        auto wake = end;
        if (!complete && next_resend < resends.size()) {
            if (now >= resends[next_resend]) {
                send();
                ++next_resend;
                continue;
            }
            wake = std::min(wake, resends[next_resend]);
        }
        auto wait = std::chrono::ceil<milliseconds>(wake - now);
        pollfd p{fd.get(), POLLIN, 0};
        int ready = ::poll(&p, 1, static_cast<int>(std::max<milliseconds::rep>(wait.count(), 1)));
        if (ready <= 0)
            continue; // timeout or EINTR: the clock decides
        for (int i = 0; i < kBatch; ++i) {
            ssize_t n = ::recv(fd.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
            if (n < 0)
                break;
            auto got = std::span<const std::uint8_t>(
                buffer.data(), std::min(static_cast<std::size_t>(n), buffer.size()));
            remote::Received r = remote::check_answer(got, target.cluster.words[0], h.nonce,
                                                      h.reply, target.host, key);
            if (r.drop != remote::Drop::none)
                continue;
            const int from = r.header.priority;
            if (out.hosts.count(from))
                continue; // two hosts with one priority: the first answer stands
            out.hosts[from] = host_answer(r.payload);
            expected.insert(from);
            if (!target.host && r.payload.contains("members") && r.payload["members"].is_array())
                for (const auto& m : r.payload["members"])
                    if (m.is_number_integer() && m.get<int>() >= 1 && m.get<int>() <= NLB_MAX_HOSTS)
                        expected.insert(m.get<int>());
        }
    }
    for (int p : expected)
        if (!out.hosts.count(p))
            out.missing.insert(p);
    return out;
}

} // namespace nlb::cli
