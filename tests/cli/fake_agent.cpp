#include "fake_agent.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace nlb::cli::test {

namespace {

// Every wait is bounded, so a broken client fails the test instead of hanging it.
constexpr int kWaitMs = 10000;

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, kWaitMs) > 0;
}

} // namespace

FakeAgent::FakeAgent(std::string response, Behaviour behaviour)
    : response_(std::move(response)), behaviour_(behaviour) {
    char dir[] = "/tmp/nlb-test-cli-XXXXXX";
    if (!::mkdtemp(dir))
        throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    path_ = dir_ + "/nlb.sock";
    int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    if (listener < 0 ||
        ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0 ||
        ::listen(listener, 1) < 0)
        throw std::runtime_error("fake agent: cannot listen on " + path_);
    thread_ = std::thread([this, listener] { serve(listener); });
}

FakeAgent::~FakeAgent() {
    if (thread_.joinable())
        thread_.join();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
}

std::string FakeAgent::received() {
    if (thread_.joinable())
        thread_.join();
    return received_;
}

void FakeAgent::serve(int listener) {
    int fd = readable(listener) ? ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
    ::close(listener);
    if (fd < 0)
        return;
    char buffer[4096];
    // Read the request line.
    while (received_.find('\n') == std::string::npos && readable(fd)) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n <= 0)
            break;
        received_.append(buffer, static_cast<std::size_t>(n));
    }
    if (behaviour_ == Behaviour::answer) {
        // Two pieces with a pause: the client must read up to the newline, not one chunk.
        std::string line = response_ + "\n";
        std::size_t half = line.size() / 2;
        (void)!::write(fd, line.data(), half);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        (void)!::write(fd, line.data() + half, line.size() - half);
    }
    if (behaviour_ != Behaviour::close_silent) {
        // Keep the connection open until the client closes it: it must not wait for EOF.
        while (readable(fd)) {
            ssize_t n = ::read(fd, buffer, sizeof(buffer));
            if (n <= 0)
                break;
            received_.append(buffer, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
}

} // namespace nlb::cli::test
