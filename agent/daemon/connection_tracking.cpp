#include "connection_tracking.hpp"

#include <time.h>

#include <algorithm>
#include <exception>
#include <future>

#include "socket_table.hpp"

namespace nlb {

std::uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000ULL + std::uint64_t(ts.tv_nsec);
}

namespace {

std::chrono::nanoseconds thread_cpu() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

} // namespace

std::chrono::milliseconds spaced_by_cost(std::chrono::nanoseconds cpu,
                                         std::chrono::milliseconds min,
                                         std::chrono::milliseconds max) {
    return std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(cpu * 1000), min, max);
}

std::chrono::milliseconds quiet_scan_interval(std::chrono::nanoseconds cpu, const ConnScan& scan,
                                              std::uint64_t established_capacity) {
    if (8 * (scan.closing + scan.expired) > established_capacity)
        return ConnectionTracking::kQuietScanMin;
    return spaced_by_cost(cpu, ConnectionTracking::kQuietScanMin,
                          ConnectionTracking::kQuietScanMax);
}

void ConnectionTracking::start(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log) {
    if (!dp.socket_program())
        log.warn("connection tracking: no socket program (" + dp.socket_program_error() +
                 "): connections are tracked from their SYN only, in a table a SYN flood can "
                 "empty");
    try {
        const auto sockets = vip_connections(vips);
        const SeedResult r = dp.seed_established(sockets);
        seeded_ += r.recorded;
        log.event("connections_adopted",
                  {{"sockets", sockets.size()}, {"recorded", r.recorded}, {"table_full", r.full}});
    } catch (const std::exception& e) {
        log.warn(std::string("connection tracking: ") + e.what() +
                 " (connections opened before the agent started are tracked from their "
                 "packets only)");
    }
    const bool current = (scanner_ && &scanner_->maps() == &dp.maps()) ||
                         (loading_.valid() && loading_for_ == &dp.maps());
    if (!current) {
        stop(); // its links hold the tables it was attached to
        const DataplaneMaps& maps = dp.maps();
        try {
            loading_ = std::async(std::launch::async,
                                  [&maps] { return std::make_unique<ConnScanner>(maps); });
            loading_for_ = &maps;
        } catch (const std::exception& e) {
            log.warn(std::string("connection tracking: load the scan programs: ") + e.what() +
                     " (scans copy the tables out)");
        }
    }
    next_orphan_check_ns_ =
        monotonic_ns() + 1000000000ULL * static_cast<std::uint64_t>(kOrphanCheck.count());
    // After the seeding and once this agent's programs replaced any predecessor's: every
    // key recorded from here on is added by the dataplane, every earlier one is in the tables.
    rebuild_filter(dp, log);
}

void ConnectionTracking::stop() {
    loading_ = {}; // waits for the load: the future of std::async joins its thread
    loading_for_ = nullptr;
    scanner_.reset();
}

void ConnectionTracking::take_loaded(EventLog& log) {
    if (!loading_.valid() ||
        loading_.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
        return;
    loading_for_ = nullptr;
    try {
        scanner_ = loading_.get();
    } catch (const std::exception& e) {
        log.warn(std::string("connection tracking: scan programs: ") + e.what() +
                 " (scans copy the tables out)");
        return;
    }
    if (!scanner_->in_kernel())
        log.warn("connection tracking: scans copy the tables out (" + scanner_->error() +
                 "): a full table costs about twice the CPU");
}

void ConnectionTracking::rebuild_filter(Dataplane& dp, EventLog& log) {
    const std::chrono::nanoseconds cpu_before = thread_cpu();
    try {
        const FilterRebuild r = dp.conn_filter().rebuild(dp.maps());
        ++filter_rebuilds_;
        if (!r.waited)
            log.warn("connection filter: the kernel would not wait out running programs "
                     "(membarrier); paused 50 ms instead");
    } catch (const std::exception& e) {
        log.warn(std::string(e.what()) + " (packets in moved buckets look the tables up)");
    }
    filter_fill_ = dp.conn_filter().fill();
    const std::uint64_t now = monotonic_ns();
    const std::chrono::milliseconds wait =
        spaced_by_cost(thread_cpu() - cpu_before, kQuietScanMin, kFilterRebuildMax);
    next_filter_rebuild_ns_ = now + static_cast<std::uint64_t>(wait.count()) * 1000000ULL;
    next_filter_check_ns_ = now + static_cast<std::uint64_t>(kQuietScanMin.count()) * 1000000ULL;
}

ConnScan ConnectionTracking::scan(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log,
                                  bool decides) {
    std::uint64_t now = monotonic_ns();
    if (now >= next_orphan_check_ns_) {
        const std::chrono::nanoseconds check_before = thread_cpu();
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
        const std::chrono::milliseconds wait =
            spaced_by_cost(thread_cpu() - check_before, kOrphanCheck, kOrphanCheckMax);
        next_orphan_check_ns_ = now + static_cast<std::uint64_t>(wait.count()) * 1000000ULL;
    }
    take_loaded(log);
    const std::chrono::nanoseconds cpu_before = thread_cpu();
    const std::uint64_t records = last_.opening + last_.established + last_.closing;
    const std::uint64_t entries = 2ULL * (dp.table_sizes().opening + dp.table_sizes().established);
    // A family whose tables the filter shows empty is not copied, and with both empty nothing
    // is walked: a cluster that serves only UDP, or only IPv4, has empty tables there, and
    // every host of it scans at each release (a 64-host cluster's convergence: 64 walks of
    // empty tables, a millisecond and more of CPU each on a quiet machine, at the moment
    // every host is busy).
    const ScanFamilies families = families_to_walk(dp.conn_filter());
    if (!families.v4 && !families.v6) {
        last_ = ConnScan{};
        ++empty_scans_;
    } else if (decides || !in_kernel() || kKernelScanShare * records < entries) {
        last_ = scan_by_copy(dp.maps(), now, dp.socket_program(), families);
    } else {
        last_ = scanner_->scan(now, dp.socket_program());
        if (scanner_->in_kernel())
            ++kernel_scans_;
        else
            log.warn("connection tracking: " + scanner_->error() +
                     "; scans copy the tables out from now on");
    }
    quiet_interval_ =
        quiet_scan_interval(thread_cpu() - cpu_before, last_, 2ULL * dp.table_sizes().established);
    now = monotonic_ns();
    // Tables found empty under a filter that still has bits (of connections that ended): a
    // rebuild clears them, and the scans after it walk nothing. Not in a scan that decides
    // (a release's): the rebuild first waits out running programs.
    if (!decides && (families.v4 || families.v6) &&
        last_.opening + last_.established + last_.closing == 0 && now >= next_filter_rebuild_ns_) {
        rebuild_filter(dp, log);
        now = monotonic_ns();
    }
    if (now >= next_filter_check_ns_) {
        filter_fill_ = dp.conn_filter().fill();
        next_filter_check_ns_ = now + static_cast<std::uint64_t>(kQuietScanMin.count()) * 1000000ULL;
        if ((filter_fill_ >= kFilterRebuildFill || !dp.conn_filter().valid()) &&
            now >= next_filter_rebuild_ns_)
            rebuild_filter(dp, log);
    }
    return last_;
}

} // namespace nlb
