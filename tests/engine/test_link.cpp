// A host's own link down (docs/convergence.md, "Link down"): its carrier lost or the interface
// set down, so it hears nobody and nobody hears it, and no client's packet reaches it. Its
// agent notices (ConvergenceEngine::on_link). Before, a flap past the tolerance made it serve
// every bucket alone and, once the link was back, beside the peers that had taken its share,
// until the partition heal ended it: requests answered twice on every long flap.
#include <catch2/catch.hpp>

#include <string>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_link {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKey(32, 0x6b);

EngineConfig keyed(std::size_t priority) {
    auto c = default_config(static_cast<std::uint8_t>(priority));
    c.cluster.key = kKey;
    return c;
}

std::size_t convergences(Simulator& sim) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < sim.size(); ++i)
        n += count_events(sim.host(i), EventKind::convergence_started);
    return n;
}

} // namespace

TEST_CASE("a host whose link goes down and comes back never serves beside the peers that took "
          "its buckets") {
    // Down for less than the peers' bound, about it, and well past it; noticed at once or as
    // late as the agent's half-period tick.
    for (std::size_t hosts : {2, 3, 4})
        for (std::int64_t down : {500, 2000, 3500, 4200, 4800, 5500, 7000, 12000, 30000})
            for (std::int64_t notice : {0, 250, 499})
                for (std::uint64_t seed = 1; seed <= 2; ++seed) {
                    Simulator sim(seed * 1000 + hosts * 100 + static_cast<std::uint64_t>(notice),
                                  {.loss = 0.02, .delay_min_ms = 1, .delay_max_ms = 12});
                    for (std::size_t i = 0; i < hosts; ++i)
                        sim.add_host(keyed(i + 1));
                    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
                    sim.run_until(sim.now() + static_cast<std::int64_t>(seed) * 377);
                    sim.reset_double_stats();
                    const std::size_t flapped = seed % hosts;
                    INFO(hosts << " hosts, host " << flapped + 1 << " down " << down
                               << " ms, noticed after " << notice << " ms, seed " << seed);
                    sim.set_link(flapped, false, notice);
                    sim.run_until(sim.now() + down);
                    sim.set_link(flapped, true, notice);
                    sim.run_until(sim.now() + notice);
                    CHECK(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
                    CHECK(sim.max_double_ms() == 0);
                    CHECK(sim.host(flapped).engine->buckets_owned(0) > 0);
                    CHECK(has_event(sim.host(flapped), EventKind::link_down));
                    CHECK(has_event(sim.host(flapped), EventKind::link_up));
                }
}

// Nor does its dataplane stop: the bound its peers' confirmations set runs out about four
// periods after its last heartbeat they took in, and the first heartbeats after the flap must
// be confirmed before that. Its first went out only at its next period and each peer's echo
// at theirs, up to two periods after the link was back: the watchdog of a host whose two-period
// flap ended late in a period expired on the way (fault link_flap: 2 runs in 8).
TEST_CASE("a link down for a moment changes nothing") {
    for (std::int64_t down : {2000, 2500})
        for (std::int64_t notice : {0, 250, 499})
            for (std::int64_t phase = 0; phase < kPeriod; phase += 125) {
                Simulator sim(7 + static_cast<std::uint64_t>(notice + phase), {.loss = 0.0});
                for (std::size_t i = 0; i < 3; ++i)
                    sim.add_host(keyed(i + 1));
                REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
                sim.run_until(sim.now() + 2 * kPeriod + phase);
                INFO("down " << down << " ms, noticed after " << notice << " ms, at " << phase
                             << " ms past a period");
                const std::size_t before = convergences(sim);
                sim.set_link(1, false, notice);
                sim.run_until(sim.now() + down);
                sim.set_link(1, true, notice);
                sim.run_until(sim.now() + 10 * kPeriod);
                CHECK(convergences(sim) == before);
                CHECK_FALSE(has_event(sim.host(1), EventKind::stalled));
                CHECK(sim.host(1).watchdog_expiries == 0);
                CHECK(sim.settled());
            }
}

TEST_CASE("a host that starts with its link down serves nothing alone and joins once it is up") {
    Simulator sim(11, {.loss = 0.01});
    for (std::size_t i = 0; i < 2; ++i)
        sim.add_host(keyed(i + 1));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    sim.reset_double_stats();
    const std::size_t late = sim.add_host(keyed(3));
    sim.set_link(late, false, 0);
    sim.run_until(sim.now() + 30 * kPeriod);
    CHECK(sim.host(late).engine->buckets_owned(0) == 0);
    CHECK_FALSE(has_event(sim.host(late), EventKind::converged));
    CHECK(sim.host(late).engine->problem(Millis{sim.clock_of(late)}).find("link is down") !=
          std::string::npos);
    sim.set_link(late, true, 300);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
    CHECK(sim.host(late).engine->buckets_owned(0) > 0);
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("every host's link down at once (the switch restarts): they form the cluster again, "
          "never two owners") {
    for (std::int64_t down : {3000, 8000, 20000}) {
        Simulator sim(13 + static_cast<std::uint64_t>(down), {.loss = 0.02});
        for (std::size_t i = 0; i < 3; ++i)
            sim.add_host(keyed(i + 1));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
        sim.reset_double_stats();
        INFO("down " << down << " ms");
        for (std::size_t i = 0; i < 3; ++i)
            sim.set_link(i, false, 100 * static_cast<std::int64_t>(i));
        sim.run_until(sim.now() + down);
        for (std::size_t i = 0; i < 3; ++i)
            sim.set_link(i, true, 150 * static_cast<std::int64_t>(i));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
    }
}

} // namespace test_link
