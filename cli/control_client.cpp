#include "control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fd.hpp"

namespace nlb::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::string hint(int error) {
    if (error == EACCES || error == EPERM)
        return " (only root may control nlb-agent)";
    return " (is nlb-agent running?)";
}

// Waits until fd is ready for `events` or the deadline passes; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0)
            return false;
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return true; // let the following read or write report the error
    }
}

} // namespace

nlohmann::json call_agent(const std::string& socket_path, const nlohmann::json& request,
                          std::chrono::milliseconds timeout) {
    const std::string where = "nlb-agent at " + socket_path;
    auto unreachable = [&](int error) {
        return AgentUnreachable("cannot reach " + where + ": " + std::strerror(error) +
                                hint(error));
    };

    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof(address.sun_path))
        throw AgentUnreachable("cannot reach " + where + ": path too long");
    std::memcpy(address.sun_path, socket_path.data(), socket_path.size());

    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
        throw unreachable(errno);
    auto deadline = Clock::now() + timeout;
    auto timed_out = [&] {
        return AgentUnreachable(where + " did not answer within " +
                                std::to_string(timeout.count()) + " ms");
    };
    // A connect to a listener whose backlog is full (an agent whose loop is held up, and
    // earlier callers' connections queued) waits until it accepts, without end unless the
    // socket has a send timeout; then it fails with EAGAIN.
    const auto ms = timeout.count() > 0 ? timeout.count() : 1;
    const timeval limit{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) < 0)
        throw unreachable(errno);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) < 0) {
        if (errno == EAGAIN || errno == EINPROGRESS)
            throw timed_out();
        throw unreachable(errno);
    }

    std::string line = request.dump() + "\n";
    for (std::size_t sent = 0; sent < line.size();) {
        if (!wait_for(fd.get(), POLLOUT, deadline))
            throw timed_out();
        ssize_t n = ::send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw AgentUnreachable(where + ": sending the request: " + std::strerror(errno));
        sent += static_cast<std::size_t>(n);
    }

    std::string answer;
    char buffer[65536];
    for (;;) {
        if (auto newline = answer.find('\n'); newline != std::string::npos) {
            answer.resize(newline);
            break;
        }
        if (answer.size() > kMaxAnswer)
            throw BadAnswer(where + " sent an answer over " + std::to_string(kMaxAnswer) +
                            " bytes");
        if (!wait_for(fd.get(), POLLIN, deadline))
            throw timed_out();
        ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw AgentUnreachable(where + ": reading the answer: " + std::strerror(errno));
        if (n == 0)
            throw AgentUnreachable(where + " closed the connection without answering");
        answer.append(buffer, static_cast<std::size_t>(n));
    }

    nlohmann::json response;
    try {
        response = nlohmann::json::parse(answer);
    } catch (const nlohmann::json::parse_error&) {
        throw BadAnswer(where + " sent an answer that is not JSON");
    }
    if (!response.is_object() || !response.contains("ok") || !response["ok"].is_boolean())
        throw BadAnswer(where + " sent an answer without \"ok\"");
    return response;
}

} // namespace nlb::cli
