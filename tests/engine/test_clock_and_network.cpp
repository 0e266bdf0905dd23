// Faults of time and of the wire beyond a host's loss (docs/convergence.md, "Invariants"): a
// host whose clock runs 5 % fast or slow, frames delivered twice, frames reordered, a one-way
// cut between two hosts, a host of another major version. Through each, no bucket ever has
// two serving owners, and every bucket is owned again within (tolerance + 2) periods.
#include <catch2/catch.hpp>

#include <string>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_clock_and_network {

namespace {

constexpr std::int64_t kPeriod = 1000;
constexpr std::int64_t kTolerance = 5;
constexpr std::int64_t kRecover = (kTolerance + 2) * kPeriod;
const std::vector<std::uint8_t> kKey(32, 0x5a);

EngineConfig keyed(std::size_t priority) {
    auto c = default_config(static_cast<std::uint8_t>(priority));
    c.cluster.key = kKey;
    return c;
}

// `n` hosts (with `setup` applied to each as it is added) go through a join, a leave and a
// failure; the host killed is the last one, the one that leaves the second to last.
void cluster_life(Simulator& sim, std::size_t n,
                  const std::function<void(Simulator&, std::size_t)>& setup) {
    for (std::size_t i = 0; i < n; ++i) {
        sim.add_host(keyed(i + 1));
        setup(sim, i);
    }
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    sim.reset_double_stats();

    // A join.
    const std::size_t joiner = sim.add_host(keyed(n + 1));
    setup(sim, joiner);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
    CHECK(sim.host(joiner).engine->buckets_owned(0) > 0);
    CHECK(sim.max_double_ms() == 0);

    // A leave (the operator's stop): the others take its buckets.
    sim.command(joiner - 1, {CommandKind::stop, -1});
    REQUIRE(sim.run_until(
        [&] { return sim.settled() && sim.all_owned_once(); }, sim.now() + kRecover));
    CHECK(sim.host(joiner - 1).engine->buckets_owned(0) == 0);
    CHECK(sim.max_double_ms() == 0);

    // A failure: every bucket owned again in time, never twice.
    sim.kill(joiner);
    const auto killed = sim.now();
    REQUIRE(sim.run_until([&] { return sim.all_owned_once(); }, killed + kRecover));
    INFO("recovered after " << sim.now() - killed << " ms");
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 10 * kPeriod));
    sim.run_until(sim.now() + 10 * kPeriod);
    CHECK(sim.max_double_ms() == 0);
    CHECK(sim.all_owned_once());
}

} // namespace

TEST_CASE("a clock 5 % fast and one 5 % slow: join, leave and failure, never two owners") {
    for (std::size_t n : {2u, 4u, 16u})
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
            INFO("hosts=" << n << " seed=" << seed);
            Simulator sim(seed + 4100 + n, {});
            // Host 1 fast, host 2 slow; the joiner fast too (it is the one killed).
            cluster_life(sim, n, [](Simulator& s, std::size_t i) {
                if (i == 0 || (i + 1 == s.size() && i > 1))
                    s.set_clock_rate(i, 1.05);
                else if (i == 1)
                    s.set_clock_rate(i, 0.95);
            });
        }
}

TEST_CASE("every host's clock 5 % slow, or 5 % fast: the cluster keeps time with itself") {
    for (double rate : {0.95, 1.05}) {
        INFO("rate=" << rate);
        Simulator sim(4200, {});
        cluster_life(sim, 4, [rate](Simulator& s, std::size_t i) { s.set_clock_rate(i, rate); });
    }
}

TEST_CASE("frames delivered twice and reordered: join, leave and failure, never two owners") {
    for (std::size_t n : {2u, 4u, 16u})
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
            INFO("hosts=" << n << " seed=" << seed);
            // Every frame a receiver gets has a 30 % chance of a second copy; delays spread
            // over 1–300 ms reorder frames of one sender (it sends up to 4 a period) and of
            // different senders.
            NetworkParams net;
            net.duplicate = 0.3;
            net.delay_min_ms = 1;
            net.delay_max_ms = 300;
            Simulator sim(seed + 4300 + n, net);
            cluster_life(sim, n, [](Simulator&, std::size_t) {});
            std::uint64_t replayed = 0;
            for (std::size_t i = 0; i < sim.size(); ++i)
                replayed += sim.host(i).engine->counters().replayed;
            CHECK(replayed > 0); // the copies were seen, and refused as such
        }
}

TEST_CASE("an asymmetric partition: one host's frames stop reaching one peer, the rest intact") {
    // Host 1 still hears host 2, host 2 no longer hears host 1, on either path: two-way
    // contact is broken for that pair only. Whatever the two decide, no bucket has two
    // serving owners, and every bucket is owned within (tolerance + 2) periods; healed, the
    // cluster takes everyone back.
    for (std::size_t n : {3u, 5u, 16u})
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
            INFO("hosts=" << n << " seed=" << seed);
            Simulator sim(seed + 4400 + n, {});
            for (std::size_t i = 0; i < n; ++i)
                sim.add_host(keyed(i + 1));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
            sim.reset_double_stats();
            auto one_way = [](std::size_t from, std::size_t to, const std::vector<std::uint8_t>&) {
                return from == 0 && to == 1;
            };
            sim.drop = one_way;
            sim.drop_contact = one_way;
            const auto fault = sim.now();
            sim.run_until(fault + kRecover);
            CHECK(sim.all_owned_once());
            sim.run_until(sim.now() + 20 * kPeriod);
            CHECK(sim.all_owned_once());
            CHECK(sim.max_double_ms() == 0);
            sim.drop = nullptr;
            sim.drop_contact = nullptr;
            REQUIRE(sim.run_until(
                [&] { return sim.settled() && sim.host(0).engine->members() == (1ull << n) - 1; },
                sim.now() + 30 * kPeriod));
            CHECK(sim.max_double_ms() == 0);
        }
}

TEST_CASE("a host of another major version stops nobody; a host that hears only it waits") {
    // Its frames are unreadable here (bad_version): the cluster keeps serving, through a
    // failure too. A host that never had a readable peer and hears such frames does not
    // converge alone beside them: refused (version) until a readable peer appears.
    auto as_v9 = [](std::size_t from, std::size_t, const std::vector<std::uint8_t>& f) {
        auto g = f;
        if (from == 3 && g.size() > 4)
            g[4] = 9; // major version 9
        return g;
    };
    Simulator sim(4500, {});
    for (std::size_t i = 0; i < 3; ++i)
        sim.add_host(keyed(i + 1));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    const auto epoch = sim.host(0).engine->epoch();
    sim.rewrite = as_v9;
    sim.drop_contact = [](std::size_t from, std::size_t, const std::vector<std::uint8_t>&) {
        return from == 3;
    };
    sim.add_host(keyed(4));
    sim.run_until(sim.now() + 20 * kPeriod);
    CHECK(sim.host(0).engine->epoch() == epoch);
    CHECK(sim.host(0).engine->members() == 0b111);
    CHECK(sim.host(0).engine->counters().bad_version > 0);
    CHECK(sim.max_double_ms() == 0);
    sim.kill(2);
    const auto killed = sim.now();
    REQUIRE(sim.run_until(
        [&] { return sim.host(0).engine->members() == 0b011 && sim.host(0).engine->converged(); },
        killed + kRecover));
    CHECK(sim.max_double_ms() == 0);

    // A lone host hearing only the other version.
    Simulator lone(4600, {});
    lone.add_host(keyed(1));
    lone.rewrite = [](std::size_t from, std::size_t, const std::vector<std::uint8_t>& f) {
        auto g = f;
        if (from == 1 && g.size() > 4)
            g[4] = 9;
        return g;
    };
    lone.drop_contact = [](std::size_t, std::size_t, const std::vector<std::uint8_t>&) {
        return true;
    };
    lone.add_host(keyed(2));
    lone.run_until(20 * kPeriod);
    CHECK(lone.host(0).engine->state() == HostState::refused);
    CHECK(lone.host(0).engine->refuse_reason() == RefuseReason::version);
    CHECK(lone.host(0).engine->buckets_owned(0) == 0);
}

} // namespace test_clock_and_network
