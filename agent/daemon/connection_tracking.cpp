#include "connection_tracking.hpp"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <future>
#include <system_error>

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

// CLOCK_MONOTONIC ns `wait` after `now_ns`: when a spaced job is due next.
std::uint64_t after(std::uint64_t now_ns, std::chrono::milliseconds wait) {
    return now_ns + static_cast<std::uint64_t>(wait.count()) * 1000000ULL;
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

bool quiet_scan_due(std::chrono::milliseconds since, std::chrono::milliseconds interval,
                    std::uint64_t recorded_since, std::uint64_t family_capacity) {
    return since >= interval ||
           (since >= ConnectionTracking::kQuietScanMin && 8 * recorded_since > family_capacity);
}

void ConnectionTracking::start(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log) {
    // A scan under way saw the tables as they were (another seed's buckets): dropped.
    wait_background();
    ++generation_;
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
    const bool current = (bg_.scanner && &bg_.scanner->maps() == &dp.maps()) ||
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
    const std::uint64_t now = monotonic_ns();
    bg_.next_orphan_check_ns = after(now, kOrphanCheck);
    // A filter over tables an earlier agent left is rebuilt by the first background job,
    // at the next period: after the seeding and once this agent's programs replaced any
    // predecessor's, so every key recorded from then on is added by the dataplane and every
    // earlier one is in the tables. Not here: the rebuild waits out every program run
    // (membarrier) and walks four tables, on the way to the first heartbeat (0.1-0.4 s on
    // a loaded machine); until then packets and scans consult the tables, as without one.
    // A filter over new tables is valid already (ConnFilter::validate_new).
    bg_.next_filter_check_ns = now;
    bg_.next_filter_rebuild_ns = now;
    shown_ = bg_.counts;
    log_warnings(log); // with those of the background work start() waited for
}

void ConnectionTracking::stop() {
    wait_background();
    loading_ = {}; // waits for the load: the future of std::async joins its thread
    loading_for_ = nullptr;
    bg_.scanner.reset();
    bg_.counts.in_kernel = shown_.in_kernel = false;
}

void ConnectionTracking::wait_background() {
    if (!background_pending())
        return;
    deferred_ = nullptr; // never started: nothing to wait for, nothing to run for a result dropped
    if (worker_.pending())
        worker_.collect();
    bg_.scan.reset();
    shown_ = bg_.counts; // its warnings wait for the next log_warnings
}

void ConnectionTracking::log_warnings(EventLog& log) {
    for (const std::string& w : bg_.warnings)
        log.warn(w);
    bg_.warnings.clear();
}

void ConnectionTracking::take_loaded(EventLog& log) {
    if (!loading_.valid() ||
        loading_.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
        return;
    loading_for_ = nullptr;
    try {
        bg_.scanner = loading_.get();
    } catch (const std::exception& e) {
        log.warn(std::string("connection tracking: scan programs: ") + e.what() +
                 " (scans copy the tables out)");
        return;
    }
    bg_.counts.in_kernel = bg_.scanner->in_kernel();
    if (!bg_.scanner->in_kernel())
        log.warn("connection tracking: scans copy the tables out (" + bg_.scanner->error() +
                 "): a full table costs about twice the CPU");
}

void ConnectionTracking::rebuild_filter(Background& bg, ConnFilter& filter,
                                        const DataplaneMaps& maps) {
    const std::chrono::nanoseconds cpu_before = thread_cpu();
    try {
        const FilterRebuild r = filter.rebuild(maps);
        ++bg.counts.filter_rebuilds;
        if (!r.waited)
            bg.warnings.push_back("connection filter: the kernel would not wait out running "
                                  "programs (membarrier); paused 50 ms instead");
    } catch (const std::exception& e) {
        bg.warnings.push_back(std::string(e.what()) +
                              " (packets in moved buckets look the tables up)");
    }
    bg.counts.filter_fill = filter.fill();
    const std::uint64_t now = monotonic_ns();
    const std::chrono::milliseconds wait =
        spaced_by_cost(thread_cpu() - cpu_before, kQuietScanMin, kFilterRebuildMax);
    bg.next_filter_rebuild_ns = after(now, wait);
    bg.next_filter_check_ns = after(now, kQuietScanMin);
}

ConnScan ConnectionTracking::scan(Dataplane& dp) {
    ++generation_;
    // A family whose tables the filter shows empty is not copied, and with both empty nothing
    // is walked: a cluster that serves only UDP, or only IPv4, has empty tables there, and
    // every host of it scans at each release (a 64-host cluster's convergence: 64 walks of
    // empty tables, a millisecond and more of CPU each on a quiet machine, at the moment
    // every host is busy). The filter may be rebuilt meanwhile on the background thread:
    // holds_nothing then answers false, and the family is walked.
    const ScanFamilies families = families_to_walk(dp.conn_filter());
    if (!families.v4 && !families.v6) {
        last_ = ConnScan{};
        ++empty_scans_;
    } else {
        last_ = scan_by_copy(dp.maps(), monotonic_ns(), dp.socket_program(), families);
    }
    last_at_ns_ = monotonic_ns();
    return last_;
}

bool ConnectionTracking::upkeep_due() const {
    if (background_pending())
        return false;
    const std::uint64_t now = monotonic_ns();
    return now >= bg_.next_orphan_check_ns || now >= bg_.next_filter_check_ns;
}

bool ConnectionTracking::start_background(Dataplane& dp, const std::vector<IpAddress>& vips,
                                          bool quiet_scan, EventLog& log) {
    if (background_pending())
        return false;
    take_loaded(log);
    Job job{&dp.maps(),          &dp.conn_filter(), vips,          dp.table_sizes(),
            dp.socket_program(), quiet_scan,        monotonic_ns()};
    job_generation_ = generation_;
    auto work = [this, job = std::move(job)] { run(bg_, job); };
    try {
        worker_.submit(work);
    } catch (const std::system_error& e) {
        log.warn(std::string("connection tracking: no thread for the background scan (") +
                 e.what() + "): it runs on the agent's loop");
        deferred_ = std::move(work);
    }
    return true;
}

std::optional<ConnScan> ConnectionTracking::finished(EventLog& log) {
    if (deferred_) {
        const std::function<void()> work = std::move(deferred_);
        deferred_ = nullptr;
        work();
    } else if (worker_.ready()) {
        worker_.collect();
    } else {
        return std::nullopt;
    }
    shown_ = bg_.counts;
    log_warnings(log);
    std::optional<ConnScan> scan = std::move(bg_.scan);
    bg_.scan.reset();
    if (!scan)
        return std::nullopt;
    if (job_generation_ != generation_) {
        ++background_dropped_;
        return std::nullopt;
    }
    last_ = *scan;
    last_at_ns_ = monotonic_ns();
    return scan;
}

void ConnectionTracking::run(Background& bg, const Job& job) {
    try {
        run_steps(bg, job);
    } catch (const std::exception& e) { // out of memory: the next run tries again
        bg.scan.reset();
        bg.warnings.emplace_back(std::string("connection tracking: background work: ") + e.what());
    }
}

void ConnectionTracking::run_steps(Background& bg, const Job& job) {
    std::uint64_t now = monotonic_ns();
    if (now >= bg.next_orphan_check_ns) {
        const std::chrono::nanoseconds check_before = thread_cpu();
        try {
            // Records stamp the coarse clock, which lags this one by up to a tick: only records
            // surely older than the listing can be missing from it for lack of a socket. And
            // older than the job: a VIP added since it was made is not in its list.
            const std::uint64_t listed_at = std::min(now, job.made_ns) - 50000000ULL;
            const auto sockets = vip_connections(job.vips, true);
            bg.counts.orphans_ended += end_orphans(*job.maps, sockets, listed_at, monotonic_ns(),
                                                   [&] { return vip_connections(job.vips, true); });
        } catch (const std::exception& e) {
            bg.warnings.push_back(std::string("connection tracking: ") + e.what());
        }
        now = monotonic_ns();
        const std::chrono::milliseconds wait =
            spaced_by_cost(thread_cpu() - check_before, kOrphanCheck, kOrphanCheckMax);
        bg.next_orphan_check_ns = after(now, wait);
    }
    if (job.scan) {
        const std::chrono::nanoseconds cpu_before = thread_cpu();
        const ScanFamilies families = families_to_walk(*job.filter);
        ConnScan found;
        if (!families.v4 && !families.v6) {
            ++bg.counts.empty_scans;
        } else if (!bg.scanner || !bg.scanner->in_kernel() ||
                   kKernelScanShare * bg.records <
                       2ULL * (job.sizes.opening + job.sizes.established)) {
            found = scan_by_copy(*job.maps, now, job.socket_program, families);
        } else {
            found = bg.scanner->scan(now, job.socket_program);
            if (bg.scanner->in_kernel()) {
                ++bg.counts.kernel_scans;
            } else {
                bg.counts.in_kernel = false;
                bg.warnings.push_back("connection tracking: " + bg.scanner->error() +
                                      "; scans copy the tables out from now on");
            }
        }
        ++bg.counts.background_scans;
        if (!found.complete) {
            // A part of the records: nothing to judge by, not even their number (the interval,
            // the filter's rebuild); the next scan will do.
            bg.warnings.push_back(std::string("connection tracking: a quiet scan's table read "
                                              "failed midway (") +
                                  std::strerror(found.error) + "): its result dropped");
            now = monotonic_ns();
        } else {
            bg.records = found.opening + found.established + found.closing;
            bg.counts.quiet_interval =
                quiet_scan_interval(thread_cpu() - cpu_before, found, 2ULL * job.sizes.established);
            bg.scan = std::move(found);
            now = monotonic_ns();
            // Tables found empty under a filter that still has bits (of connections that
            // ended): a rebuild clears them, and the scans after it walk nothing.
            if ((families.v4 || families.v6) && bg.records == 0 &&
                now >= bg.next_filter_rebuild_ns) {
                rebuild_filter(bg, *job.filter, *job.maps);
                now = monotonic_ns();
            }
        }
    }
    if (now >= bg.next_filter_check_ns) {
        bg.counts.filter_fill = job.filter->fill();
        bg.next_filter_check_ns = after(now, kQuietScanMin);
        if ((bg.counts.filter_fill >= kFilterRebuildFill || !job.filter->valid()) &&
            now >= bg.next_filter_rebuild_ns)
            rebuild_filter(bg, *job.filter, *job.maps);
    }
}

} // namespace nlb
