// One check of one probe (tcp connect, http GET, exec), on the agent's io_context: every step
// is asynchronous, so a check never blocks the loop that sends heartbeats. The deadline is
// the probe's timeout_ms: a socket is closed, a command killed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "health_config.hpp"

namespace nlb {

struct CheckResult {
    enum class Outcome { passed, failed, timeout };
    Outcome outcome = Outcome::failed;
    std::string detail; // "status 200", "exit 1", "Connection refused", ...
    std::chrono::microseconds latency{0};
    std::string output; // exec with capture_output: the first bytes the command printed
};

const char* to_string(CheckResult::Outcome outcome);

// A probe's configuration resolved for checking: the tcp default address filled in, the exec
// user looked up (at start, so that a check never reads the user database).
struct ProbeTarget {
    ProbeType type = ProbeType::tcp;
    boost::asio::ip::tcp::endpoint endpoint; // tcp, http
    std::string http_host, http_path;
    std::uint16_t expect_status = 200;
    std::vector<std::string> command; // exec
    uid_t uid = 0;
    gid_t gid = 0;
    bool capture_output = false; // exec: keep the start of its standard output (a metric)
    std::chrono::milliseconds timeout{500};
};

// Throws std::runtime_error naming the key ("health.probes[2].user: no such user \"www\"").
ProbeTarget resolve_probe(const ProbeConfig& probe, const IpAddress& dedicated_ip,
                          const std::string& key);

class ProbeCheck {
  public:
    using Done = std::function<void(const CheckResult&)>;
    virtual ~ProbeCheck() = default;
    // Starts one check; `done` runs once on the io_context, unless cancel() comes first.
    static std::shared_ptr<ProbeCheck> start(boost::asio::io_context& io, const ProbeTarget& target,
                                             Done done);
    // No callback after this; a command still running is killed and reaped.
    virtual void cancel() = 0;
    // A check still running ends now as a timeout: its callback runs before this returns
    // (nothing if it had finished). A command is killed and reaped later, off the loop.
    virtual void expire() = 0;
    // Its verdict given, a command still runs: its kill at the deadline was refused (an agent
    // without CAP_KILL, the command another user's). The next check must not start beside it:
    // one more such command every interval, without end.
    virtual bool lingering() const { return false; }
};

} // namespace nlb
