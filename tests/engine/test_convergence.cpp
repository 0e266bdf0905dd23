// Whole clusters on the simulated network: convergence, failure, join, loss, partitions.
#include <catch2/catch.hpp>

#include <algorithm>

#include "heartbeat_codec.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_convergence {

namespace {

constexpr std::int64_t kPeriod = 1000;
constexpr std::int64_t kTolerance = 5;

Simulator cluster(std::uint64_t seed, std::size_t n, NetworkParams net = {}) {
    Simulator sim(seed, net);
    for (std::size_t i = 0; i < n; ++i)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
    return sim;
}

bool all_owned(const Simulator& sim) {
    return sim.unowned(0) == 0 && sim.unowned(NLB_RULE_DEFAULT) == 0;
}

// Sizes and seeds: every size from 1 to 64 appears; small ones with many seeds.
std::vector<std::pair<std::size_t, std::uint64_t>> size_seed_grid() {
    std::vector<std::pair<std::size_t, std::uint64_t>> grid;
    for (std::size_t n = 1; n <= 64; ++n) {
        const std::uint64_t seeds = n <= 8 ? 6 : n <= 16 ? 2 : 1;
        if (n > 16 && n % 4 != 0 && n != 17 && n != 63)
            continue; // 20..64 in steps of 4, plus two odd sizes
        for (std::uint64_t s = 0; s < seeds; ++s)
            grid.push_back({n, 1000 * n + s});
    }
    return grid;
}

} // namespace

TEST_CASE("clusters of 1 to 64 hosts converge on one map, each bucket owned once") {
    for (const auto& [n, seed] : size_seed_grid()) {
        auto sim = cluster(seed, n);
        INFO("n=" << n << " seed=" << seed);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
        const double share = double(NLB_BUCKETS) / double(n);
        for (std::size_t i = 0; i < n; ++i) {
            const auto owned = double(sim.host(i).engine->buckets_owned(0));
            CHECK(std::abs(owned - share) < 1.0);
            CHECK(sim.host(i).engine->default_host() == 1);
            CHECK(sim.host(i).engine->members() == (n == 64 ? ~0ull : (1ull << n) - 1));
        }
        CHECK(sim.host(0).engine->buckets_owned(NLB_RULE_DEFAULT) == NLB_BUCKETS);
    }
}

TEST_CASE("a killed host is detected within the tolerance, its buckets owned again within "
          "tolerance + 2 periods") {
    for (std::size_t n : {2, 3, 4, 5, 8, 16, 32, 64}) {
        const std::uint64_t seeds = n <= 8 ? 5 : n <= 16 ? 2 : 1;
        for (std::uint64_t seed = 0; seed < seeds; ++seed) {
            INFO("n=" << n << " seed=" << seed);
            auto sim = cluster(seed + 77, n);
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
            // Kill at an arbitrary phase of the heartbeat cycle.
            sim.run_until(sim.now() + 2 * kPeriod + static_cast<std::int64_t>(seed * 137));
            const std::size_t victim = (seed * 7 + 1) % n;
            const auto victim_prio = static_cast<std::uint8_t>(victim + 1);
            const auto killed_at = sim.now();
            sim.kill(victim);
            REQUIRE(sim.run_until(
                [&] {
                    for (std::size_t i = 0; i < n; ++i)
                        if (i != victim &&
                            !has_event(sim.host(i), EventKind::host_left, victim_prio))
                            return false;
                    return true;
                },
                killed_at + kTolerance * kPeriod + 10));
            REQUIRE(sim.run_until([&] { return all_owned(sim); },
                                  killed_at + (kTolerance + 2) * kPeriod));
            CHECK(sim.max_double_ms() == 0);
            REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
        }
    }
}

TEST_CASE("a joining host gets its share and no bucket is ever owned twice") {
    for (std::size_t n : {1, 2, 3, 5, 8, 15, 31, 63}) {
        const std::uint64_t seeds = n <= 8 ? 5 : 1;
        for (std::uint64_t seed = 0; seed < seeds; ++seed) {
            INFO("n=" << n << " seed=" << seed);
            auto sim = cluster(seed + 500, n);
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
            sim.run_until(sim.now() + kPeriod + static_cast<std::int64_t>(seed * 211));
            const auto joined_at = sim.now();
            const auto j = sim.add_host(default_config(static_cast<std::uint8_t>(n + 1)));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, joined_at + 30 * kPeriod));
            CHECK(sim.max_double_ms() == 0);
            const double share = double(NLB_BUCKETS) / double(n + 1);
            CHECK(std::abs(double(sim.host(j).engine->buckets_owned(0)) - share) < 1.0);
        }
    }
}

// Every rule dirty on every host at once, with the sections a 64-host cluster sends: one
// dirty entry of 7 bytes per rule and load feedback on 32 rules made frames of 1,500 bytes
// and more, which every reader dropped, and the join did not settle before the dirty buckets
// expired (cleanup_delay_s).
TEST_CASE("every frame of a join that dirties all 32 rules of 63 hosts with load feedback is "
          "read") {
    Simulator sim(4600, {});
    std::array<std::uint32_t, NLB_MAX_RULES> loads{};
    loads.fill(500);
    const auto config = [](std::size_t i) {
        auto c = default_config(static_cast<std::uint8_t>(i + 1), NLB_MAX_RULES);
        c.cluster.key.assign(32, 0x5a);
        return c;
    };
    for (std::size_t i = 0; i < 63; ++i) {
        sim.add_host(config(i));
        sim.host(i).engine->set_loads(0xffffffff, loads);
    }
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 60 * kPeriod));
    // Connections in every bucket each host owns: whatever it gives up stays dirty.
    for (std::size_t i = 0; i < 63; ++i) {
        auto& h = sim.host(i);
        for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
            for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
                if ((*h.installed)[s].owners[b] == h.engine->priority())
                    h.live.slots[s].set(b);
    }
    sim.run_until(sim.now() + 2 * kPeriod);
    const auto malformed = [&] {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < sim.size(); ++i)
            n += sim.host(i).engine->counters().malformed;
        return n;
    };
    const std::uint64_t before = malformed();
    std::size_t largest = 0;
    sim.drop = [&](std::size_t, std::size_t, const std::vector<std::uint8_t>& frame) {
        largest = std::max(largest, frame.size());
        return false;
    };
    const auto j = sim.add_host(config(63));
    sim.host(j).engine->set_loads(0xffffffff, loads);
    const auto joined_at = sim.now();
    const bool settled = sim.run_until([&] { return sim.settled(); }, joined_at + 30 * kPeriod);
    CHECK(malformed() == before);
    CHECK(largest <= kHeartbeatMaxSize);
    CHECK(settled);
    CHECK(sim.max_double_ms() == 0);
    // What the frames carried: every rule has buckets dirty elsewhere at the joiner (the
    // default slot stays with host 1).
    for (std::size_t r = 0; r < NLB_MAX_RULES; ++r)
        CHECK((*sim.host(j).installed)[r].dirty_elsewhere.any());
}

TEST_CASE("with 20% frame loss the cluster still converges") {
    for (std::size_t n : {2, 3, 5, 8, 16}) {
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
            INFO("n=" << n << " seed=" << seed);
            auto sim = cluster(seed + 900, n, NetworkParams{0.2, 1, 20});
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 60 * kPeriod));
            // And after a failure too.
            sim.kill(n - 1);
            if (n > 1)
                REQUIRE(sim.run_until(
                    [&] {
                        return sim.settled() &&
                               sim.host(0).engine->members() == (1ull << (n - 1)) - 1;
                    },
                    sim.now() + 60 * kPeriod));
        }
    }
}

TEST_CASE("partition and heal: the group with fewer connections yields at once") {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed=" << seed);
        const std::size_t n = 6;
        auto sim = cluster(seed + 1300, n);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        // 4 | 2: both halves re-converge on their own and own every bucket.
        for (std::size_t i = 4; i < n; ++i)
            sim.set_group(i, 1);
        REQUIRE(sim.run_until(
            [&] {
                return sim.host(0).engine->members() == 0x0f &&
                       sim.host(4).engine->members() == 0x30 && sim.host(0).engine->converged() &&
                       sim.host(5).engine->converged() && sim.unowned(0) == 0 &&
                       sim.host(4).engine->buckets_owned(0) > 1500;
            },
            sim.now() + 30 * kPeriod));
        // Clients reach one half more than the other: even seeds the small half.
        const bool small_busier = seed % 2 == 0;
        for (std::size_t i = 0; i < n; ++i)
            sim.host(i).accept_rate = (i >= 4) == small_busier ? 10 : 1;
        sim.run_until(sim.now() + 10 * kPeriod);
        for (std::size_t i = 4; i < n; ++i)
            sim.set_group(i, 0);
        const auto healed_at = sim.now();
        sim.reset_double_stats();
        // Double ownership (there since the partition) ends within one period of the heal
        // (plus the network delay of the frames that carry the decision).
        REQUIRE(sim.run_until([&] { return sim.double_since() < 0; }, healed_at + kPeriod + 20));
        const std::size_t loser = small_busier ? 0 : 4, winner = small_busier ? 4 : 0;
        CHECK(has_event(sim.host(loser), EventKind::partition_yield));
        CHECK(!has_event(sim.host(winner), EventKind::partition_yield));
        sim.reset_double_stats();
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
        CHECK(sim.host(5).engine->members() == 0x3f);
    }
}

TEST_CASE("a host that converged alone yields to the cluster it meets") {
    auto sim = cluster(42, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    const auto j = sim.add_host(default_config(4));
    sim.set_group(j, 1); // its link is not there yet
    REQUIRE(
        sim.run_until([&] { return sim.host(j).engine->converged(); }, sim.now() + 20 * kPeriod));
    CHECK(sim.host(j).engine->buckets_owned(0) == NLB_BUCKETS);
    sim.set_group(j, 0);
    const auto healed_at = sim.now();
    REQUIRE(sim.run_until([&] { return sim.double_since() < 0; }, healed_at + kPeriod + 20));
    CHECK(has_event(sim.host(j), EventKind::partition_yield));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
    CHECK(sim.host(0).engine->members() == 0x0f);
}

} // namespace test_convergence
