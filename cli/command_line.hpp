// nlbadm's command line → what to do: a request for the agent (docs/control.md), a local
// command (ip2mac, keygen), or help. Pure: no I/O, so every command and every usage error is
// unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster_mac.hpp"
#include "dataplane_tables.hpp"

namespace nlb::cli {

inline constexpr const char* kDefaultSocket = "/run/nlb/nlb.sock";

// Exit codes of docs/control.md.
enum ExitCode : int {
    kExitOk = 0,
    kExitRefused = 1,     // the agent (with --cluster: a host) refused or failed the command
    kExitUsage = 2,       // unknown command, bad argument
    kExitUnreachable = 3, // no agent at the socket, or it did not answer (--cluster: some host)
};

// --timeout bounds (ms): long enough for a datagram across a segment, short enough that a
// script notices a dead cluster.
inline constexpr std::chrono::milliseconds kDefaultRemoteTimeout{1000};
inline constexpr std::chrono::milliseconds kMinRemoteTimeout{100};
inline constexpr std::chrono::milliseconds kMaxRemoteTimeout{30000};

// --cluster IP --key-file FILE [--host PRIORITY] [--timeout MS]: the command goes over UDP to
// the agents of the cluster (docs/remote.md) instead of the local socket.
struct RemoteOptions {
    IpAddress cluster; // IPv4
    std::string key_file;
    std::uint8_t host = 0; // one host by priority; 0: every host
    std::chrono::milliseconds timeout = kDefaultRemoteTimeout;
};

// A bad command line; what() is the message after "nlbadm: ", one line.
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

enum class Action {
    help,    // print help_text(topic)
    version, // print "nlbadm VERSION"
    agent,   // send `request` to the agent
    ip2mac,  // local: the cluster MAC of `cluster_ip` in `mode`
    keygen,  // local: a new random cluster key
};

struct Invocation {
    Action action = Action::help;
    std::string socket = kDefaultSocket;
    bool json = false;
    std::string command;    // canonical name: "query" for "status"; "" for general help
    nlohmann::json request; // Action::agent
    std::optional<RemoteOptions> remote; // Action::agent with --cluster
    IpAddress cluster_ip;                // Action::ip2mac
    ClusterMode mode = ClusterMode::unicast;
    std::optional<std::string> out; // Action::keygen --out FILE; none: stdout
    // push, diff: the configuration file whose shared part goes in the request (nlbadm reads
    // it: this parser does no I/O).
    std::optional<std::string> file;
};

// args: argv[1..]. Throws UsageError.
Invocation parse_command_line(const std::vector<std::string>& args);

// General help (topic "") or one command's help ("enable"). Ends with a newline.
std::string help_text(std::string_view topic = "");

} // namespace nlb::cli
