// Stand-ins for the agents of a cluster on one loopback UDP socket: each fake host checks a
// request as a real one does (its own replay memory, its priority) and answers with a signed
// answer, so that the tests drive nlbadm's remote client over a real socket.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace nlb::cli::test {

class FakeCluster {
  public:
    struct Host {
        int priority = 1;
        std::string address;
        std::vector<int> members;
        bool ok = true;      // false: refuses with error "<command>: refused by host N"
        bool silent = false; // never answers
    };
    struct Options {
        std::uint32_t cluster_ip = 0; // network byte order; the socket is on 127.0.0.1
        std::vector<std::uint8_t> key;
        std::vector<Host> hosts;
        int lose_first = 0;     // requests dropped unread, as a lossy network would
        bool send_junk = false; // before each real answer: answers nlbadm must ignore
    };

    explicit FakeCluster(Options options);
    ~FakeCluster();
    FakeCluster(const FakeCluster&) = delete;
    FakeCluster& operator=(const FakeCluster&) = delete;

    std::uint16_t port() const { return port_; }
    int datagrams() const { return datagrams_; } // every request datagram that arrived
    // The last request that passed: the reply address it named, and where it came from.
    std::pair<std::uint64_t, std::uint64_t> last_reply_and_source() const {
        return {last_reply_, last_source_};
    }

  private:
    void serve();

    Options options_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> datagrams_{0};
    // ip << 16 | port, 0 until a request passes
    std::atomic<std::uint64_t> last_reply_{0}, last_source_{0};
    std::thread thread_;
};

} // namespace nlb::cli::test
