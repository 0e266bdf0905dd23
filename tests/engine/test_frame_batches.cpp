// Frames decided on in batches (ConvergenceEngine::begin_frames / end_frames), as the agent
// reads them: one evaluation per batch, and whole clusters whose hosts read their frames
// every linger keep every guarantee the per-frame engine gives.
#include <catch2/catch.hpp>

#include <algorithm>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_frame_batches {

namespace {

constexpr std::int64_t kPeriod = 1000;
constexpr std::int64_t kTolerance = 5;
// The agent's share of a period (Agent::set_heartbeat_linger) without its 50 ms cap: longer
// waits than any agent makes.
constexpr std::int64_t kLinger = kPeriod / 8;

Simulator cluster(std::uint64_t seed, std::size_t n, NetworkParams net = {}) {
    Simulator sim(seed, net);
    for (std::size_t i = 0; i < n; ++i)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
    return sim;
}

NetworkParams lingering(double loss = 0.0, std::int64_t delay_max_ms = 5) {
    NetworkParams net;
    net.loss = loss;
    net.delay_max_ms = delay_max_ms;
    net.linger_ms = kLinger;
    return net;
}

bool all_owned(const Simulator& sim) {
    return sim.unowned(0) == 0 && sim.unowned(NLB_RULE_DEFAULT) == 0;
}

bool left_everywhere(Simulator& sim, std::size_t victim) {
    for (std::size_t i = 0; i < sim.size(); ++i) {
        if (i == victim || !sim.host(i).alive)
            continue;
        if (!has_event(sim.host(i), EventKind::host_left, static_cast<std::uint8_t>(victim + 1)))
            return false;
    }
    return true;
}

} // namespace

TEST_CASE("frames taken in together are decided on once, when the batch ends") {
    auto sim = cluster(7, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    // Host 0 hears nothing of hosts 1 and 2 for two periods (their frames are kept here).
    std::vector<std::vector<std::uint8_t>> from1, from2;
    sim.drop = [&](std::size_t from, std::size_t to, const std::vector<std::uint8_t>& f) {
        if (to != 0)
            return false;
        (from == 1 ? from1 : from2).push_back(f);
        return true;
    };
    sim.drop_contact = [](std::size_t, std::size_t to, const std::vector<std::uint8_t>&) {
        return to == 0;
    };
    sim.run_until(sim.now() + 2 * kPeriod);
    sim.drop = {};
    sim.drop_contact = {};
    REQUIRE(from1.size() >= 2);
    REQUIRE(from2.size() >= 2);

    auto& e = *sim.host(0).engine;
    const auto now = Millis{sim.now()};
    auto accepted = e.counters().accepted;
    auto evaluations = e.counters().evaluations;
    // One at a time: every fresh frame is an evaluation.
    for (const auto& f : from2)
        e.on_heartbeat(f, now);
    CHECK(e.counters().accepted == accepted + from2.size());
    CHECK(e.counters().evaluations == evaluations + from2.size());

    // In a batch: each frame is taken in (counted, its sender heard) and decided on at the end.
    accepted = e.counters().accepted;
    evaluations = e.counters().evaluations;
    e.begin_frames();
    for (const auto& f : from1)
        e.on_heartbeat(f, now);
    CHECK(e.counters().accepted == accepted + from1.size());
    CHECK(e.counters().evaluations == evaluations);
    e.end_frames(now);
    CHECK(e.counters().evaluations == evaluations + 1);
    e.end_frames(now); // nothing held: nothing to decide
    CHECK(e.counters().evaluations == evaluations + 1);

    // A batch its reader leaves open is decided on when the decision is taken.
    from1.clear();
    sim.drop = [&](std::size_t from, std::size_t to, const std::vector<std::uint8_t>& f) {
        if (from == 1 && to == 0)
            from1.push_back(f);
        return from == 1 && to == 0;
    };
    // Nor its second path's copies, which host 0 may be asking for (its frames were late).
    sim.drop_contact = [](std::size_t from, std::size_t to, const std::vector<std::uint8_t>&) {
        return from == 1 && to == 0;
    };
    sim.run_until(sim.now() + kPeriod);
    sim.drop = {};
    sim.drop_contact = {};
    REQUIRE(!from1.empty());
    evaluations = e.counters().evaluations;
    e.begin_frames();
    e.on_heartbeat(from1.back(), Millis{sim.now()});
    CHECK(e.counters().evaluations == evaluations);
    (void)e.take_decision();
    CHECK(e.counters().evaluations == evaluations + 1);
}

TEST_CASE("hosts that read their frames every linger converge, fail over and join as fast, "
          "never owning a bucket twice") {
    for (std::size_t n : {2, 3, 5, 16, 64}) {
        const std::uint64_t seeds = n <= 5 ? 3 : 1;
        for (std::uint64_t seed = 0; seed < seeds; ++seed) {
            INFO("n=" << n << " seed=" << seed);
            auto sim = cluster(seed + 4100, n, lingering());
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
            CHECK(sim.max_double_ms() == 0);
            for (std::size_t i = 0; i < n; ++i)
                CHECK(std::abs(double(sim.host(i).engine->buckets_owned(0)) -
                               double(NLB_BUCKETS) / double(n)) < 1.0);

            // Failover within tolerance + 2 periods, the linger included.
            sim.run_until(sim.now() + 2 * kPeriod + static_cast<std::int64_t>(seed * 137));
            const std::size_t victim = (seed * 7 + 1) % n;
            const auto killed_at = sim.now();
            sim.kill(victim);
            REQUIRE(sim.run_until([&] { return left_everywhere(sim, victim); },
                                  killed_at + kTolerance * kPeriod + kLinger + 10));
            REQUIRE(sim.run_until([&] { return all_owned(sim); },
                                  killed_at + (kTolerance + 2) * kPeriod));
            CHECK(sim.max_double_ms() == 0);
            REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));

            // The killed host comes back (a new boot): it gets its share again, and no bucket
            // is owned twice meanwhile.
            const auto j = sim.add_host(default_config(static_cast<std::uint8_t>(victim + 1)));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
            CHECK(sim.max_double_ms() == 0);
            CHECK(std::abs(double(sim.host(j).engine->buckets_owned(0)) -
                           double(NLB_BUCKETS) / double(n)) < 1.0);
        }
    }
}

TEST_CASE("batched hosts converge through 20% frame loss and heal a partition within a "
          "period and a linger") {
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
        INFO("seed=" << seed);
        auto lossy = cluster(seed + 4300, 8, lingering(0.2, 20));
        REQUIRE(lossy.run_until([&] { return lossy.settled(); }, 60 * kPeriod));
        lossy.kill(7);
        REQUIRE(lossy.run_until(
            [&] { return lossy.settled() && lossy.host(0).engine->members() == 0x7f; },
            lossy.now() + 60 * kPeriod));

        auto sim = cluster(seed + 4400, 6, lingering());
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        for (std::size_t i = 4; i < 6; ++i)
            sim.set_group(i, 1);
        REQUIRE(sim.run_until(
            [&] {
                return sim.host(0).engine->members() == 0x0f &&
                       sim.host(4).engine->members() == 0x30 && sim.unowned(0) == 0;
            },
            sim.now() + 30 * kPeriod));
        sim.run_until(sim.now() + 5 * kPeriod);
        for (std::size_t i = 4; i < 6; ++i)
            sim.set_group(i, 0);
        const auto healed_at = sim.now();
        sim.reset_double_stats();
        REQUIRE(sim.run_until([&] { return sim.double_since() < 0; },
                              healed_at + kPeriod + kLinger + 20));
        sim.reset_double_stats();
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
        CHECK(sim.host(5).engine->members() == 0x3f);
    }
}

TEST_CASE("a 32-host cluster read every linger evaluates a few times a period, not once a frame") {
    auto per_frame = cluster(4500, 32);
    auto batched = cluster(4500, 32, lingering());
    REQUIRE(per_frame.run_until([&] { return per_frame.settled(); }, 30 * kPeriod));
    REQUIRE(batched.run_until([&] { return batched.settled(); }, 30 * kPeriod));
    const auto evaluations = [](Simulator& sim) {
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < sim.size(); ++i)
            total += sim.host(i).engine->counters().evaluations;
        return total;
    };
    const auto e0 = evaluations(per_frame), b0 = evaluations(batched);
    per_frame.run_until(per_frame.now() + 10 * kPeriod);
    batched.run_until(batched.now() + 10 * kPeriod);
    const double per_host_period_frames = double(evaluations(per_frame) - e0) / 32 / 10;
    const double per_host_period_batched = double(evaluations(batched) - b0) / 32 / 10;
    INFO("per frame " << per_host_period_frames << ", batched " << per_host_period_batched);
    CHECK(per_host_period_frames >= 31); // every peer's frame, at least once a period
    CHECK(per_host_period_batched <= double(kPeriod / kLinger) + 1);
    CHECK(batched.settled());
}

} // namespace test_frame_batches
