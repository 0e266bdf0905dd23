#include "connection_tracking.hpp"

#include <time.h>

#include <exception>

#include "socket_table.hpp"

namespace nlb {

std::uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000ULL + std::uint64_t(ts.tv_nsec);
}

void ConnectionTracking::start(Dataplane& dp, const std::vector<IpAddress>& vips,
                               EventLog& log) {
    if (!dp.socket_program())
        log.warn("connection tracking: no socket program (" + dp.socket_program_error() +
                 "): connections are tracked from their SYN only, in a table a SYN flood can "
                 "empty");
    try {
        const auto sockets = vip_connections(vips);
        const SeedResult r = dp.seed_established(sockets);
        seeded_ += r.recorded;
        log.event("connections_adopted", {{"sockets", sockets.size()},
                                          {"recorded", r.recorded},
                                          {"table_full", r.full}});
    } catch (const std::exception& e) {
        log.warn(std::string("connection tracking: ") + e.what() +
                 " (connections opened before the agent started are tracked from their "
                 "packets only)");
    }
    next_orphan_check_ns_ = monotonic_ns() + 1000000000ULL *
                                                 static_cast<std::uint64_t>(kOrphanCheck.count());
}

ConnScan ConnectionTracking::scan(Dataplane& dp, const std::vector<IpAddress>& vips,
                                  EventLog& log) {
    std::uint64_t now = monotonic_ns();
    if (now >= next_orphan_check_ns_) {
        next_orphan_check_ns_ =
            now + 1000000000ULL * static_cast<std::uint64_t>(kOrphanCheck.count());
        try {
            // Records stamp the coarse clock, which lags this one by up to a tick: only records
            // surely older than the listing can be missing from it for lack of a socket.
            const std::uint64_t listed_at = now - 50000000ULL;
            const auto sockets = vip_connections(vips);
            orphans_ended_ += end_orphans(dp.maps(), sockets, listed_at, monotonic_ns());
        } catch (const std::exception& e) {
            log.warn(std::string("connection tracking: ") + e.what());
        }
        now = monotonic_ns();
    }
    last_ = scan_connections(dp.maps(), now, dp.socket_program());
    return last_;
}

} // namespace nlb
