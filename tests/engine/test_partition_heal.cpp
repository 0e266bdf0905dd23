// Partition heals that go wrong: the losing group's leader silent, a member of the losing
// group that cannot hear the winners, or a group that speaks only through a peer's new boot
// not taken in yet. Each left two owners for seconds (chaos-ops seeds 2100, 2827 and 2869, a
// VM woken with its clock beside such a group) until its fix.
#include <catch2/catch.hpp>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_partition_heal {

namespace {

constexpr std::int64_t kPeriod = 1000;

// Three hosts split {1, 2} | {3}, each side converged on its own and owning every bucket;
// clients reach host 3's side ten times as often, so that side wins the heal.
Simulator split(std::uint64_t seed) {
    Simulator sim(seed, {});
    for (std::uint8_t p = 1; p <= 3; ++p)
        sim.add_host(default_config(p));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.set_group(2, 1);
    REQUIRE(sim.run_until(
        [&] {
            return sim.host(0).engine->members() == 0x3 && sim.host(2).engine->members() == 0x4 &&
                   sim.host(0).engine->converged() && sim.host(1).engine->converged() &&
                   sim.host(2).engine->converged() && sim.unowned(0) == 0 &&
                   sim.host(2).engine->buckets_owned(0) == NLB_BUCKETS;
        },
        sim.now() + 30 * kPeriod));
    for (std::size_t i = 0; i < 3; ++i)
        sim.host(i).accept_rate = i == 2 ? 10 : 1;
    sim.run_until(sim.now() + 10 * kPeriod);
    return sim;
}

} // namespace

TEST_CASE("partition heal: a group whose leader died at the heal yields within a period") {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed=" << seed);
        auto sim = split(seed + 7100);
        // Host 1, the {1, 2} side's leader, dies as the sides meet: host 2 counts it alive for
        // a tolerance more, and waited that long for its score; host 3 never hears it, and
        // takes host 2 for that side's leader, whose score says host 3 wins.
        sim.kill(0);
        sim.set_group(2, 0);
        const auto healed_at = sim.now();
        sim.reset_double_stats();
        // Host 2 meets host 3 at its next frame, and gives the leader a period to speak.
        REQUIRE(
            sim.run_until([&] { return sim.double_since() < 0; }, healed_at + 2 * kPeriod + 50));
        CHECK(
            has_event_with(sim.host(1), EventKind::partition_yield, "our group's leader (host 1)"));
        CHECK(!has_event(sim.host(2), EventKind::partition_yield));
        sim.reset_double_stats();
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
        CHECK(sim.host(2).engine->members() == 0x6);
    }
}

TEST_CASE("partition heal: a member that cannot hear the winners lets go with its leader") {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed=" << seed);
        auto sim = split(seed + 7200);
        // Host 3's frames never reach host 2, by either path: only host 1 compares the
        // scores and yields, and host 2 learns it from host 1.
        const auto deaf_to_3 = [](std::size_t from, std::size_t to, const auto&) {
            return from == 2 && to == 1;
        };
        sim.drop = deaf_to_3;
        sim.drop_contact = deaf_to_3;
        sim.set_group(2, 0);
        const auto healed_at = sim.now();
        sim.reset_double_stats();
        REQUIRE(sim.run_until([&] { return sim.double_since() < 0; }, healed_at + kPeriod + 50));
        CHECK(has_event_with(sim.host(1), EventKind::partition_yield,
                             "host 1 of our epoch let go of it"));
        CHECK(!has_event(sim.host(2), EventKind::partition_yield));
    }
}

TEST_CASE("partition heal: a VM woken beside its peer's new boot lets go before taking it in") {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed=" << seed);
        Simulator sim(seed + 7300, {});
        sim.add_host(default_config(1));
        sim.add_host(default_config(2));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        // Host 2 pauses: host 1 counts it out and serves every bucket alone.
        sim.pause(1);
        REQUIRE(sim.run_until(
            [&] {
                return sim.host(0).engine->members() == 0x1 && sim.host(0).engine->converged() &&
                       sim.host(0).engine->buckets_owned(0) == NLB_BUCKETS;
            },
            sim.now() + 30 * kPeriod));
        // Host 1's VM stops with its clock. Host 2 comes back for a moment, and its frames,
        // which echo host 1 (read late from before the pause), queue up there; then it
        // restarts, and its new boot, hearing nobody, serves every bucket alone.
        sim.pause_vm(0);
        sim.resume(1);
        sim.run_until(sim.now() + kPeriod / 2);
        sim.kill(1);
        const auto fresh = sim.add_host(default_config(2));
        REQUIRE(sim.run_until(
            [&] {
                return sim.host(fresh).engine->converged() &&
                       sim.host(fresh).engine->buckets_owned(0) == NLB_BUCKETS;
            },
            sim.now() + 30 * kPeriod));
        // The VM wakes: by its clock host 2's earlier boot spoke just now, so the new boot's
        // frames wait 1.5 periods to replace it, and the two groups met only then (1.5 s of
        // two owners). Now host 1 lets go at the new boot's first frame that proves contact.
        const auto woke = sim.now();
        sim.reset_double_stats();
        sim.resume_frozen(0);
        REQUIRE(sim.run_until([&] { return sim.double_since() < 0; }, woke + kPeriod / 2));
        CHECK(has_event_with(sim.host(0), EventKind::partition_yield,
                             "host 2's new boot, not taken in yet"));
        CHECK(!has_event(sim.host(fresh), EventKind::partition_yield));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() < kPeriod / 2);
        CHECK(sim.host(fresh).engine->members() == 0x3);
    }
}

} // namespace test_partition_heal
