// How long a settled host waits between scans that only count and delete closed records, when
// connections recorded since bring one sooner, and between orphan checks.
#include <catch2/catch.hpp>

#include "connection_tracking.hpp"

using namespace nlb;
using namespace std::chrono_literals;

namespace {
constexpr std::uint64_t kCapacity = 2 * 262144; // both families' established tables
} // namespace

TEST_CASE("a quiet scan waits a thousand times its cost, from 2 s to 10 min") {
    ConnScan s;
    CHECK(quiet_scan_interval(300us, s, kCapacity) == 2s); // small tables: as often as ever
    CHECK(quiet_scan_interval(2ms, s, kCapacity) == 2s);
    CHECK(quiet_scan_interval(23ms, s, kCapacity) == 23s);   // a table a fifth full
    CHECK(quiet_scan_interval(170ms, s, kCapacity) == 170s); // both IPv4 tables full, copied
    CHECK(quiet_scan_interval(3s, s, kCapacity) == 600s);    // a starved host
}

TEST_CASE("connections recorded faster than the interval allows for bring the scan sooner") {
    constexpr std::uint64_t kFamily = kCapacity / 2;
    // Its interval passed: due, whatever was recorded.
    CHECK(quiet_scan_due(170s, 170s, 0, kFamily));
    CHECK_FALSE(quiet_scan_due(169s, 170s, 0, kFamily));
    // An eighth of one family's table recorded since: not yet; one more: due...
    CHECK_FALSE(quiet_scan_due(30s, 170s, kFamily / 8, kFamily));
    CHECK(quiet_scan_due(30s, 170s, kFamily / 8 + 1, kFamily));
    // ...but never sooner than 2 s after the last scan.
    CHECK_FALSE(quiet_scan_due(1999ms, 170s, kFamily, kFamily));
    CHECK(quiet_scan_due(2s, 170s, kFamily, kFamily));
}

TEST_CASE("orphan checks wait a thousand times their cost, from 30 s to 10 min") {
    using C = ConnectionTracking;
    CHECK(spaced_by_cost(5ms, C::kOrphanCheck, C::kOrphanCheckMax) == 30s);
    CHECK(spaced_by_cost(200ms, C::kOrphanCheck, C::kOrphanCheckMax) == 200s);
    CHECK(spaced_by_cost(2s, C::kOrphanCheck, C::kOrphanCheckMax) == 600s);
}

TEST_CASE("closed records crowding the established tables bring scans back to every 2 s") {
    ConnScan s;
    s.closing = kCapacity / 16;
    s.expired = kCapacity / 16; // together an eighth: not yet
    CHECK(quiet_scan_interval(120ms, s, kCapacity) == 120s);
    s.expired++;
    CHECK(quiet_scan_interval(120ms, s, kCapacity) == 2s);
    s.closing = 0;
    s.expired = kCapacity; // one scan ended them all: the next comes soon too
    CHECK(quiet_scan_interval(120ms, s, kCapacity) == 2s);
}
