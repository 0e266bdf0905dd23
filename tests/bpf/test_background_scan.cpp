// The agent's connection tracking (agent/daemon/connection_tracking.hpp) against a real
// dataplane attached in a namespace of its own: a settled host's scan runs on a thread of its
// own and hands the loop what the tables hold; a scan that decides, made meanwhile on the
// loop, makes the older background result go unused. At start, a filter over new tables is
// valid at once, and one over tables an earlier agent left is rebuilt by the first job.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <sys/stat.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "connection_tracking.hpp"
#include "dataplane_loader.hpp"
#include "event_log.hpp"
#include "private_netns.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_background_scan {

namespace {

constexpr std::uint32_t kRecords = 100000;

std::uint64_t day_ahead() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (std::uint64_t(ts.tv_sec) + 86400) * 1000000000ULL + std::uint64_t(ts.tv_nsec);
}

// Key of made-up client connection i (198.18.0.0/15).
nlb_conn_key4 client_key(std::uint32_t i) {
    return nlb_conn_key4{.saddr = htonl(0xc6120000u | (i >> 8)),
                         .daddr = htonl(0xc6130001u),
                         .sport = htons(std::uint16_t(1024 + (i & 0xff))),
                         .dport = htons(9)};
}

// Opening records of clients 0..n-1, stamped a day ahead so that no scan ages them out,
// bucket i % NLB_BUCKETS of rule slot 0; their keys recorded in the filter first, as the
// dataplane does.
void fill(Dataplane& dp, std::uint32_t n) {
    std::vector<nlb_conn_key4> keys(n);
    std::vector<nlb_conn> values(n);
    const std::uint64_t stamp = day_ahead();
    for (std::uint32_t i = 0; i < n; ++i) {
        keys[i] = client_key(i);
        values[i].opened_ns = stamp;
        values[i].bucket = static_cast<std::uint16_t>(i % NLB_BUCKETS);
        dp.conn_filter().record(keys[i]);
    }
    std::uint32_t count = n;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    REQUIRE(bpf_map_update_batch(dp.maps().fds().conns4, keys.data(), values.data(), &count,
                                 &opts) == 0);
    REQUIRE(count == n);
}

// finished() once the background work is done (bounded: 20 s).
std::optional<ConnScan> wait_finished(ConnectionTracking& t, EventLog& log, bool& done) {
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < limit) {
        std::optional<ConnScan> s = t.finished(log);
        if (!t.background_pending()) {
            done = true;
            return s;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    done = false;
    return std::nullopt;
}

bool have_bpffs() {
    struct stat st {};
    if (stat("/sys/fs/bpf", &st) == 0)
        return true;
    WARN("no bpffs at /sys/fs/bpf: skipped");
    return false;
}

// A dataplane on `lo` of a namespace of its own, tracked as the agent tracks it, its tables
// holding kRecords records.
struct Tracked {
    PrivateNetns ns;
    std::unique_ptr<Dataplane> dp;
    EventLog log;
    ConnectionTracking t;
    explicit Tracked(const std::string& name)
        : ns(name), dp(Dataplane::attach("lo", ns.pin_dir, XdpMode::generic)) {
        t.start(*dp, {}, log);
        fill(*dp, kRecords);
    }
    ~Tracked() {
        t.stop(); // its background work reads the tables
        dp->detach();
    }
    Tracked(const Tracked&) = delete;
    Tracked& operator=(const Tracked&) = delete;
};

} // namespace

TEST_CASE("background scan: the loop gets what the tables hold, the walk runs beside it") {
    if (!have_bpffs())
        return;
    Tracked h("bgscan");
    ConnectionTracking& t = h.t;
    Dataplane& dp = *h.dp;
    EventLog& log = h.log;

    REQUIRE(t.start_background(dp, {}, true, log));
    CHECK_FALSE(t.start_background(dp, {}, true, log)); // one at a time, until taken
    CHECK(t.background_pending());
    bool done = false;
    const std::optional<ConnScan> s = wait_finished(t, log, done);
    REQUIRE(done);
    REQUIRE(s);
    CHECK(s->opening == kRecords);
    CHECK(s->live == kRecords);
    CHECK(s->live_buckets[0].count() == NLB_BUCKETS);
    CHECK(s->live_buckets[1].none());
    CHECK(t.last().opening == kRecords);
    CHECK(t.background_scans() == 1);
    CHECK(t.background_dropped() == 0);
}

TEST_CASE("background scan: a deciding scan made meanwhile leaves its result unused") {
    if (!have_bpffs())
        return;
    Tracked h("bgdrop");
    ConnectionTracking& t = h.t;
    Dataplane& dp = *h.dp;
    EventLog& log = h.log;

    REQUIRE(t.start_background(dp, {}, true, log));
    // A release's scan, on the loop, while the background one walks the same tables.
    const ConnScan deciding = t.scan(dp);
    CHECK(deciding.opening == kRecords);
    bool done = false;
    CHECK_FALSE(wait_finished(t, log, done));
    REQUIRE(done);
    CHECK(t.background_dropped() == 1);
    CHECK(t.last().opening == kRecords); // the deciding scan's
    // The next background scan, with no deciding scan after its start, is the one the loop
    // gets.
    REQUIRE(t.start_background(dp, {}, true, log));
    const std::optional<ConnScan> next = wait_finished(t, log, done);
    REQUIRE(done);
    REQUIRE(next);
    CHECK(next->opening == kRecords);
    CHECK(t.background_dropped() == 1);

    // Upkeep alone hands the loop no scan, and drops none: here the filter's fill, due 2 s
    // after the first job's look, and grown since by keys the dataplane would have added.
    const double fill_before = t.filter_fill();
    CHECK_FALSE(t.upkeep_due());
    for (std::uint32_t i = kRecords; i < 2 * kRecords; ++i)
        dp.conn_filter().record(client_key(i));
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    CHECK(t.upkeep_due());
    REQUIRE(t.start_background(dp, {}, false, log));
    CHECK_FALSE(wait_finished(t, log, done));
    REQUIRE(done);
    CHECK(t.filter_fill() > fill_before);
    CHECK_FALSE(t.upkeep_due());
    CHECK(t.background_dropped() == 1);
    CHECK(t.background_scans() == 2);
}

TEST_CASE("background scan: stop waits for a walk under way before the tables go") {
    if (!have_bpffs())
        return;
    Tracked h("bgstop");
    ConnectionTracking& t = h.t;
    Dataplane& dp = *h.dp;
    EventLog& log = h.log;
    REQUIRE(t.start_background(dp, {}, true, log));
    t.stop(); // returns once the walk is over: the tables may go now (~Tracked detaches)
    CHECK_FALSE(t.background_pending());
    CHECK(t.background_scans() == 1);
}

TEST_CASE("start: a dataplane on new tables has a valid, empty filter and rebuilds nothing") {
    // The way to an agent's first heartbeat: no wait for program runs, no walk of its tables.
    if (!have_bpffs())
        return;
    PrivateNetns ns("bgnew");
    std::unique_ptr<Dataplane> dp = Dataplane::attach("lo", ns.pin_dir, XdpMode::generic);
    EventLog log;
    ConnectionTracking t;
    t.start(*dp, {}, log);
    CHECK(dp->conn_filter().valid());
    CHECK(dp->conn_filter().rebuilds() == 0);
    CHECK(dp->conn_filter().holds_nothing(NLB_FAMILY_V4));
    CHECK(dp->conn_filter().holds_nothing(NLB_FAMILY_V6));
    t.scan(*dp);
    CHECK(t.empty_scans() == 1); // walked nothing
    // Nor does the first background job rebuild it.
    CHECK(t.upkeep_due());
    REQUIRE(t.start_background(*dp, {}, false, log));
    bool done = false;
    wait_finished(t, log, done);
    REQUIRE(done);
    CHECK(t.filter_rebuilds() == 0);
    CHECK(dp->conn_filter().valid());
    // What the dataplane records from here on, it adds: a valid filter never hides a record.
    fill(*dp, 1000);
    CHECK_FALSE(dp->conn_filter().holds_nothing(NLB_FAMILY_V4));
    CHECK(t.scan(*dp).opening == 1000);
    t.stop();
    dp->detach();
}

TEST_CASE("start: an adopted dataplane's filter is rebuilt by the first background job") {
    // The tables an earlier agent left hold records this process's filter never saw.
    if (!have_bpffs())
        return;
    PrivateNetns ns("bgadopt");
    std::unique_ptr<Dataplane> dp = Dataplane::attach("lo", ns.pin_dir, XdpMode::generic);
    fill(*dp, kRecords);
    dp.reset(); // the agent exits; its dataplane stays pinned
    dp = Dataplane::adopt(ns.pin_dir);
    REQUIRE(dp);
    EventLog log;
    ConnectionTracking t;
    t.start(*dp, {}, log);
    // Not at start: packets and scans consult the tables meanwhile.
    CHECK_FALSE(dp->conn_filter().valid());
    CHECK(t.scan(*dp).opening == kRecords);
    CHECK(t.upkeep_due());
    REQUIRE(t.start_background(*dp, {}, false, log));
    bool done = false;
    wait_finished(t, log, done);
    REQUIRE(done);
    CHECK(dp->conn_filter().valid());
    CHECK(t.filter_rebuilds() == 1);
    std::size_t hidden = 0;
    for (std::uint32_t i = 0; i < kRecords; ++i)
        hidden += !dp->conn_filter().may_hold(client_key(i));
    CHECK(hidden == 0);
    CHECK(t.scan(*dp).opening == kRecords);
    t.stop();
    dp->detach();
}

} // namespace test_background_scan
