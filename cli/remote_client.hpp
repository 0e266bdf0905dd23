// nlbadm's side of remote control (docs/remote.md): one signed request datagram to the
// cluster IP, naming as its reply address the socket it is sent from, resent a couple of
// times within the timeout (a host that already has it drops the copies as replays), and the
// authenticated answers to that address that echo its nonce collected until every expected
// host has answered or the time is up. Everything else that arrives is ignored.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataplane_tables.hpp"
#include "remote_protocol.hpp"

namespace nlb::cli {

// The request could not be sent at all (exit code 3): "remote control: send to
// 10.0.0.100:2504: Network is unreachable".
class RemoteUnreachable : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct RemoteTarget {
    IpAddress cluster; // IPv4
    std::uint16_t port = remote::kPort;
    std::vector<std::uint8_t> key; // the cluster key file's bytes
    std::uint8_t host = 0;         // one host by priority; 0: every host
    std::chrono::milliseconds timeout{1000};
};

struct HostAnswer {
    std::string address; // the host's dedicated IP, as it says
    bool ok = false;
    nlohmann::json result; // ok: the command's result
    std::string error;     // not ok: the host's one-line error
};

struct ClusterAnswers {
    std::map<int, HostAnswer> hosts; // by priority
    // Expected and silent: with --host that host; otherwise the members the answers named.
    std::set<int> missing;
};

// Once every expected host has answered, answers from hosts nobody named as a member (a
// stopped host) are still awaited this long, within the timeout.
inline constexpr std::chrono::milliseconds kStragglerWait{200};

// Throws RemoteUnreachable when the request cannot be sent.
ClusterAnswers call_cluster(const RemoteTarget& target, const nlohmann::json& request);

} // namespace nlb::cli
