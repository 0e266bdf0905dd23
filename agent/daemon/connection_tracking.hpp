// The agent's side of connection tracking: hands the dataplane the connections its stack
// already had when the socket program started (attach, a restart), scans the tables for the
// engine every period, and, every kOrphanCheck, ends the established records whose socket is
// gone without the socket program seeing it close. The counts it keeps go to `stats`.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "conn_scanner.hpp"
#include "dataplane_loader.hpp"
#include "event_log.hpp"

namespace nlb {

class ConnectionTracking {
  public:
    static constexpr std::chrono::seconds kOrphanCheck{30};

    // After attach or adoption, once the VIP and port tables are written. Logs what it did
    // and, when the socket program is missing, why and what that costs.
    void start(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log);
    // One scan (each period, and before buckets are released).
    ConnScan scan(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log);

    const ConnScan& last() const { return last_; }
    std::uint64_t seeded() const { return seeded_; }
    std::uint64_t orphans_ended() const { return orphans_ended_; }

  private:
    ConnScan last_;
    std::uint64_t seeded_ = 0;
    std::uint64_t orphans_ended_ = 0;
    std::uint64_t next_orphan_check_ns_ = 0;
};

// CLOCK_MONOTONIC in ns: the clock the dataplane stamps records with (its coarse variant).
std::uint64_t monotonic_ns();

} // namespace nlb
