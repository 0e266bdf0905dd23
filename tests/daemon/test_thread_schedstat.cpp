// The loop thread's schedstat, which a stall's log line reads: the thread's own CPU time grows
// while it works and not while it sleeps or while another thread works.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "thread_schedstat.hpp"

using namespace nlb;
using namespace std::chrono_literals;

namespace {

void spin(std::chrono::milliseconds how_long) {
    const auto until = std::chrono::steady_clock::now() + how_long;
    std::atomic<std::uint64_t> n{0};
    while (std::chrono::steady_clock::now() < until)
        n.fetch_add(1, std::memory_order_relaxed);
}

constexpr std::uint64_t kMs = 1000000;

} // namespace

TEST_CASE("thread schedstat: the thread's own work counts, sleep and other threads do not") {
    const ThreadSchedStat stat;
    const auto start = stat.read();
    if (!start) {
        WARN("no /proc/thread-self/schedstat on this kernel (CONFIG_SCHED_INFO): not checked");
        return;
    }

    spin(60ms); // on a CPU for at least some of it, even on a busy machine
    const auto worked = stat.read();
    REQUIRE(worked);
    CHECK(worked->ran_ns - start->ran_ns >= 10 * kMs);

    std::this_thread::sleep_for(60ms);
    const auto slept = stat.read();
    REQUIRE(slept);
    CHECK(slept->ran_ns - worked->ran_ns < 10 * kMs);

    // Another thread's work is not this one's, though read() runs here.
    std::thread other([] { spin(60ms); });
    other.join();
    const auto joined = stat.read();
    REQUIRE(joined);
    CHECK(joined->ran_ns - slept->ran_ns < 10 * kMs);
}

TEST_CASE("thread schedstat: a stall's share of running and waiting, in ms") {
    const SchedShare share = sched_share({1 * kMs, 2 * kMs}, {5 * kMs + 999999, 9 * kMs}, 480);
    CHECK(share.over_ms == 480);
    CHECK(share.ran_ms == 4);
    CHECK(share.waited_ms == 7);
    // A sample older than the mark (a thread's file reopened) gives 0, never a wrapped count.
    const SchedShare back = sched_share({5 * kMs, 9 * kMs}, {1 * kMs, 2 * kMs}, 100);
    CHECK(back.ran_ms == 0);
    CHECK(back.waited_ms == 0);
}
