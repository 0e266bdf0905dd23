// The agent's side of connection tracking: hands the dataplane the connections its stack
// already had when the socket program started (attach, a restart), scans the tables for the
// engine (on the loop when the scan decides, on a thread of its own when it does not; in the
// kernel where it can: conn_scanner.hpp), and, every kOrphanCheck or more, ends the
// established records whose socket is gone without the socket program seeing it close. The
// counts it keeps go to `stats`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "background_worker.hpp"
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
// records (Agent::periodic): spaced_by_cost within 2 s-10 min, but 2 s again while records
// that closed fill more than an eighth of the established tables (`established_capacity`,
// both families), which only scans empty.
std::chrono::milliseconds quiet_scan_interval(std::chrono::nanoseconds cpu, const ConnScan& scan,
                                              std::uint64_t established_capacity);

// Whether a settled host's quiet scan is due, `since` its last scan: its interval has passed,
// or (2 s after the last at the soonest) the host's stack has recorded more connections since
// than an eighth of one family's established table (`family_capacity`) — those close in time,
// and only a scan deletes their records, so a table that fills faster than the interval
// allows for is scanned as often as it fills, not when the interval says.
bool quiet_scan_due(std::chrono::milliseconds since, std::chrono::milliseconds interval,
                    std::uint64_t recorded_since, std::uint64_t family_capacity);

class ConnectionTracking {
  public:
    // Orphan checks list every socket and copy the established tables out: spaced_by_cost
    // within these (after the first, which finds a predecessor's orphans, they find only
    // closes the socket program missed).
    static constexpr std::chrono::seconds kOrphanCheck{30};
    static constexpr std::chrono::seconds kOrphanCheckMax{600};
    static constexpr std::chrono::milliseconds kQuietScanMin{2000};
    // At 60 s, both IPv4 opening tables full cost 0.3 % of a core where scans copy (170 ms
    // each), three times the thousandth the spacing aims at; quiet_scan_due brings a scan
    // sooner when connections come faster than the interval allows for.
    static constexpr std::chrono::milliseconds kQuietScanMax{600000};
    // The kernel's walk costs about twice the copy's per hash bucket (5.5 against 2.7 ns:
    // 5.8 ms against 2.8 ms for the default tables empty) and half per record (150-235
    // against 290-390 ns): it is the cheaper one from about one record in 50 of the tables'
    // entries (20,000 at the default sizes).
    static constexpr std::uint64_t kKernelScanShare = 50;
    // The connection filter is rebuilt once this share of its bits is set (each "may hold"
    // answer for a key the tables lack is then about 6 % likely to be wrong, and costs the
    // lookups), its fill checked every kQuietScanMin, and rebuilds (a copy of every table)
    // spaced_by_cost within kQuietScanMin and kFilterRebuildMax.
    static constexpr double kFilterRebuildFill = 0.4;
    static constexpr std::chrono::milliseconds kFilterRebuildMax{600000};

    ~ConnectionTracking() { stop(); }

    // After attach or adoption, once the VIP and port tables are written, and after the
    // tables change their hashing (a new flow seed). Waits for background work under way and
    // drops its scan. Logs what it did and, when the socket program is missing, why and what
    // that costs.
    void start(Dataplane& dp, const std::vector<IpAddress>& vips, EventLog& log);
    // Before `dp` goes: the background work and the scan programs hold its tables (both are
    // waited for).
    void stop();

    // A scan the engine may release buckets on (each period while it needs one, and at every
    // release), on the caller's thread: the tables copied out bucket by bucket under the
    // table's lock. A family whose tables the connection filter proves empty is not copied,
    // and with both empty nothing is walked (ConnFilter::holds_nothing). A background scan
    // that started before it is dropped when it finishes.
    ConnScan scan(Dataplane& dp);

    // The work that decides nothing, on a thread of its own: a scan that only refreshes
    // counts and deletes closed records (`quiet_scan`: a settled host's, every
    // quiet_interval()), and the upkeep that is due (upkeep_due: an orphan check, the
    // filter's fill and its rebuild). A full table's scan is 80-120 ms of CPU on a quiet
    // machine and seconds on a starved one: on the agent's loop it held heartbeats and the
    // watchdog's refresh up for as long (a host held up past its watchdog leaves the cluster
    // until it converges again). In the kernel (ConnScanner) once the tables hold enough
    // records for that to be the cheaper walk (kKernelScanShare): there a record deleted and
    // reused at the instant the walk passes it can make it miss the records behind it in
    // that hash bucket until the next scan. Tables found empty under a filter that still has
    // bits get it rebuilt (spaced like every rebuild), so that later scans walk nothing.
    // False when the last one has not finished (nothing starts); `dp` must outlive it
    // (stop()). Where no thread can be made, it runs at the next finished().
    bool start_background(Dataplane& dp, const std::vector<IpAddress>& vips, bool quiet_scan,
                          EventLog& log);
    // An orphan check, or a look at the filter's fill, is due.
    bool upkeep_due() const;
    // Once the background work has finished: logs what it had to say, and returns its scan
    // when it made one and no scan() started since it began (else its view is older than
    // what the engine was told since, and it is dropped). Empty while it runs.
    std::optional<ConnScan> finished(EventLog& log);
    // Started and not yet taken by finished().
    bool background_pending() const { return deferred_ || worker_.pending(); }

    // The latest scan handed out (by scan() or finished()), and when (CLOCK_MONOTONIC ns;
    // 0 before the first).
    const ConnScan& last() const { return last_; }
    std::uint64_t last_at_ns() const { return last_at_ns_; }
    // After the last background scan: when a settled host scans next (quiet_scan_interval).
    std::chrono::milliseconds quiet_interval() const { return shown_.quiet_interval; }
    std::uint64_t seeded() const { return seeded_; }
    // Whether background scans can run in the kernel (ConnScanner), and how many did.
    bool in_kernel() const { return shown_.in_kernel; }
    std::uint64_t kernel_scans() const { return shown_.kernel_scans; }
    // Background scans finished, and of them those dropped for a scan() that began later.
    std::uint64_t background_scans() const { return shown_.background_scans; }
    std::uint64_t background_dropped() const { return background_dropped_; }
    // Scans answered by the connection filter alone: every table empty.
    std::uint64_t empty_scans() const { return empty_scans_ + shown_.empty_scans; }
    std::uint64_t orphans_ended() const { return shown_.orphans_ended; }
    // Of the connection filter, as of the last check: the share of the active half's bits
    // set (0 before the first rebuild) and how many rebuilds this agent made.
    double filter_fill() const { return shown_.filter_fill; }
    std::uint64_t filter_rebuilds() const { return shown_.filter_rebuilds; }

  private:
    // What the background work counts and schedules; the loop reads a copy made when it
    // finished.
    struct Counts {
        std::chrono::milliseconds quiet_interval = kQuietScanMin;
        bool in_kernel = false;
        std::uint64_t background_scans = 0;
        std::uint64_t kernel_scans = 0;
        std::uint64_t empty_scans = 0;
        std::uint64_t orphans_ended = 0;
        double filter_fill = 0;
        std::uint64_t filter_rebuilds = 0;
    };
    // The background work's own state: touched by its thread while it runs, by the loop
    // only while none runs.
    struct Background {
        std::unique_ptr<ConnScanner> scanner;
        Counts counts;
        std::uint64_t next_orphan_check_ns = 0;
        std::uint64_t next_filter_check_ns = 0;
        std::uint64_t next_filter_rebuild_ns = 0;
        std::uint64_t records = 0;    // found by the last scan: which walk is cheaper
        std::optional<ConnScan> scan; // this run's, if it scanned
        std::vector<std::string> warnings;
    };

    // Loading the scan programs parses the kernel's BTF: about 0.1 s of CPU on a quiet
    // machine, 1.3-5 s measured when 8 agents restarted at once beside 56 running ones on
    // 2 cores, and all of it came before the engine started. It runs on a thread of its own
    // (it reads only the tables' descriptors); until it is done, scans copy.
    void take_loaded(EventLog& log);
    // Waits for the background work, if any, and drops what it found.
    void wait_background();
    void log_warnings(EventLog& log);
    // The inputs of one background run, copied for its thread.
    struct Job {
        const DataplaneMaps* maps = nullptr;
        ConnFilter* filter = nullptr;
        std::vector<IpAddress> vips;
        TableSizes sizes;
        bool socket_program = false;
        bool scan = false;
        std::uint64_t made_ns = 0; // monotonic_ns(): the VIPs are as of then
    };
    // Throws nothing: what goes wrong becomes a warning.
    static void run(Background& bg, const Job& job);
    static void run_steps(Background& bg, const Job& job);
    static void rebuild_filter(Background& bg, ConnFilter& filter, const DataplaneMaps& maps);
    std::future<std::unique_ptr<ConnScanner>> loading_;
    const DataplaneMaps* loading_for_ = nullptr;
    Background bg_;
    // Where no thread can be made: the job, run by the next finished() on the loop.
    std::function<void()> deferred_;
    std::uint64_t job_generation_ = 0;
    std::uint64_t generation_ = 0; // scan() and start() calls: what makes a background scan stale
    Counts shown_;
    ConnScan last_;
    std::uint64_t last_at_ns_ = 0;
    std::uint64_t seeded_ = 0;
    std::uint64_t empty_scans_ = 0; // of scan()
    std::uint64_t background_dropped_ = 0;
    // Last: destroyed first, once stop() made sure no job uses the members above.
    BackgroundWorker worker_;
};

// CLOCK_MONOTONIC in ns: the clock the dataplane stamps records with (its coarse variant).
std::uint64_t monotonic_ns();

} // namespace nlb
