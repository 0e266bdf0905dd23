// The agent's side of connection tracking: hands the dataplane the connections its stack
// already had when the socket program started (attach, a restart), scans the tables for the
// engine (in the kernel where it can: conn_scanner.hpp), and, every kOrphanCheck or more, ends
// the established records whose socket is gone without the socket program seeing it close. The
// counts it keeps go to `stats`.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "conn_scanner.hpp"
#include "dataplane_loader.hpp"
#include "event_log.hpp"

namespace nlb {

// A periodic job whose cost grows with the tables (a scan walks every record: about 150-230 ns
// a record in the kernel, 80-120 ms for two full IPv4 tables) waits 1,000 times what it last
// cost, within [min, max]: a thousandth of a core where the bounds allow.
std::chrono::milliseconds spaced_by_cost(std::chrono::nanoseconds cpu,
                                         std::chrono::milliseconds min,
                                         std::chrono::milliseconds max);

// How long a settled host waits between scans that only refresh counts and delete closed
// records (Agent::periodic): spaced_by_cost within 2-60 s, but 2 s again while records that
// closed fill more than an eighth of the established tables (`established_capacity`, both
// families), which only scans empty.
std::chrono::milliseconds quiet_scan_interval(std::chrono::nanoseconds cpu, const ConnScan& scan,
                                              std::uint64_t established_capacity);

class ConnectionTracking {
  public:
    // Orphan checks list every socket and copy the established tables out: spaced_by_cost
    // within these (after the first, which finds a predecessor's orphans, they find only
    // closes the socket program missed).
    static constexpr std::chrono::seconds kOrphanCheck{30};
    static constexpr std::chrono::seconds kOrphanCheckMax{600};
    static constexpr std::chrono::milliseconds kQuietScanMin{2000};
    static constexpr std::chrono::milliseconds kQuietScanMax{60000};
    // The kernel's walk costs about twice the copy's per hash bucket (5.5 against 2.7 ns:
    // 5.8 ms against 2.8 ms for the default tables empty) and half per record (150-235
    // against 290-390 ns): it is the cheaper one from about one record in 50 of the tables'
    // entries (20,000 at the default sizes).
    static constexpr std::uint64_t kKernelScanShare = 50;
    // The connection filter is rebuilt once this share of its bits is set (each "may hold"
    // answer for a key the tables lack is then about 6 % likely to be wrong, and costs the
    // lookups), its fill checked at most every kQuietScanMin, and rebuilds (a copy of every
    // table) spaced_by_cost within kQuietScanMin and kFilterRebuildMax.
    static constexpr double kFilterRebuildFill = 0.4;
    static constexpr std::chrono::milliseconds kFilterRebuildMax{600000};

    // After attach or adoption, once the VIP and port tables are written. Logs what it did
    // and, when the socket program is missing, why and what that costs.
    void start(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log);
    // Before `dp` goes: the scan programs hold its tables (a load under way is waited for).
    void stop();
    // One scan (each period, and before buckets are released). `decides`: the engine may
    // release buckets on what it finds, so the tables are copied out bucket by bucket under
    // the table's lock; otherwise (a settled host's counts and expiry) the walk runs in the
    // kernel, where a record deleted and reused at the instant the walk passes it can make it
    // miss the records behind it in that hash bucket until the next scan, once the tables
    // hold enough records for it to be the cheaper walk (kKernelScanShare). A family whose
    // tables the connection filter proves empty is not copied, and with both empty nothing
    // is walked (ConnFilter::holds_nothing); tables found empty under a filter that still
    // has bits get it rebuilt (spaced like every rebuild), so that later scans walk nothing.
    ConnScan scan(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log, bool decides);

    const ConnScan& last() const { return last_; }
    // After the last scan: when a settled host scans next (quiet_scan_interval).
    std::chrono::milliseconds quiet_interval() const { return quiet_interval_; }
    std::uint64_t seeded() const { return seeded_; }
    // Whether a settled host's scans can run in the kernel (ConnScanner), and how many did.
    bool in_kernel() const { return scanner_ && scanner_->in_kernel(); }
    std::uint64_t kernel_scans() const { return kernel_scans_; }
    // Scans answered by the connection filter alone: every table empty.
    std::uint64_t empty_scans() const { return empty_scans_; }
    std::uint64_t orphans_ended() const { return orphans_ended_; }
    // Of the connection filter, as of the last check: the share of the active half's bits
    // set (0 before the first rebuild) and how many rebuilds this agent made.
    double filter_fill() const { return filter_fill_; }
    std::uint64_t filter_rebuilds() const { return filter_rebuilds_; }

  private:
    // Loading the scan programs parses the kernel's BTF: about 0.1 s of CPU on a quiet
    // machine, 1.3-5 s measured when 8 agents restarted at once beside 56 running ones on
    // 2 cores, and all of it came before the engine started. It runs on a thread of its own
    // (it reads only the tables' descriptors); until it is done, scans copy.
    void take_loaded(EventLog& log);
    std::unique_ptr<ConnScanner> scanner_;
    std::future<std::unique_ptr<ConnScanner>> loading_;
    const DataplaneMaps* loading_for_ = nullptr;
    ConnScan last_;
    std::chrono::milliseconds quiet_interval_ = kQuietScanMin;
    std::uint64_t seeded_ = 0;
    std::uint64_t kernel_scans_ = 0;
    std::uint64_t empty_scans_ = 0;
    std::uint64_t orphans_ended_ = 0;
    std::uint64_t next_orphan_check_ns_ = 0;
    void rebuild_filter(Dataplane& dp, EventLog& log);
    double filter_fill_ = 0;
    std::uint64_t filter_rebuilds_ = 0;
    std::uint64_t next_filter_check_ns_ = 0;
    std::uint64_t next_filter_rebuild_ns_ = 0;
};

// CLOCK_MONOTONIC in ns: the clock the dataplane stamps records with (its coarse variant).
std::uint64_t monotonic_ns();

} // namespace nlb
