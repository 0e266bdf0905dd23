// Stateful maps through the real engine: each new map is g(previous agreed map, members), a
// joining host learns that map by transfer, and the buckets that change owner stay within
// 1.15x the minimum; cold start, loss, partition heal, fallback and hostile chunks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>

#include "heartbeat_auth.hpp"
#include "heartbeat_codec.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_map_transfer {

namespace {

constexpr std::int64_t kPeriod = 1000;

EngineConfig config(std::uint8_t priority, std::uint8_t weight, std::vector<std::uint8_t> key) {
    auto c = default_config(priority);
    c.host.rules[0].load_weight = weight;
    c.cluster.key = std::move(key);
    return c;
}

// Member parameters of the live started hosts, as the engine sees them.
std::vector<MemberParams> live_members(Simulator& sim) {
    std::vector<MemberParams> out;
    for (std::size_t i = 0; i < sim.size(); ++i) {
        auto& h = sim.host(i);
        if (!h.alive || h.engine->state() != HostState::converged)
            continue;
        MemberParams m;
        m.priority = h.engine->priority();
        m.rules[0] = h.engine->config().host.rules[0];
        out.push_back(m);
    }
    return out;
}

// Lower bound on the buckets of slot 0 any +-1-balanced map for `after` must move from
// `before` (as in test_allocation.cpp): departed owners' buckets plus the excess over the
// ceiling of the new share, or the deficit below its floor, whichever is larger.
std::uint32_t minimum_moves(const OwnerMap& before, const std::vector<MemberParams>& after) {
    std::map<std::uint8_t, std::uint64_t> count;
    for (auto o : before)
        ++count[o];
    std::uint64_t total = 0;
    for (const auto& m : after)
        total += effective_weight(m.rules[0].load_weight, RuleControl::enabled);
    std::uint64_t out = 0, in = 0, kept = 0;
    for (const auto& m : after) {
        const std::uint64_t w = effective_weight(m.rules[0].load_weight, RuleControl::enabled);
        const std::uint64_t lo = NLB_BUCKETS * w / total, hi = lo + (NLB_BUCKETS * w % total != 0);
        const auto k = count[m.priority];
        kept += k;
        out += k > hi ? k - hi : 0;
        in += lo > k ? lo - k : 0;
    }
    return static_cast<std::uint32_t>(std::max(NLB_BUCKETS - kept + out, in));
}

std::uint32_t changed(const OwnerMap& a, const OwnerMap& b) {
    std::uint32_t n = 0;
    for (std::size_t i = 0; i < NLB_BUCKETS; ++i)
        n += a[i] != b[i];
    return n;
}

std::uint64_t total(Simulator& sim, std::uint64_t EngineCounters::*field) {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < sim.size(); ++i)
        n += sim.host(i).engine->counters().*field;
    return n;
}

} // namespace

TEST_CASE("cold start: with no map anywhere the cluster uses the stateless allocation") {
    for (std::size_t n : {1, 2, 5, 16}) {
        Simulator sim(3000 + n, {});
        for (std::size_t i = 0; i < n; ++i)
            sim.add_host(config(static_cast<std::uint8_t>(i + 1), kEqualWeight, {}));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        const auto expected =
            allocate(std::vector<RuleMode>{RuleMode::multiple}, live_members(sim));
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(*sim.host(i).engine->cluster_map() == *expected);
            CHECK(sim.host(i).engine->map_generation() == 1);
        }
        CHECK(total(sim, &EngineCounters::map_chunks_sent) == 0);
    }
}

TEST_CASE("a join learns the map by transfer; a join or leave moves at most 1.15x the minimum") {
    double sum = 0, worst = 0;
    int events = 0;
    for (std::size_t n : {1, 2, 3, 4, 6, 8, 12, 16, 24, 31, 40, 63}) {
        for (std::uint64_t seed = 0; seed < (n <= 8 ? 3u : 1u); ++seed) {
            INFO("n=" << n << " seed=" << seed);
            std::mt19937_64 rng(n * 100 + seed);
            const bool weighted = seed % 2 == 1;
            auto weight = [&] {
                return weighted ? static_cast<std::uint8_t>(1 + rng() % 100) : kEqualWeight;
            };
            Simulator sim(4000 + n * 10 + seed, {});
            for (std::size_t i = 0; i < n; ++i)
                sim.add_host(config(static_cast<std::uint8_t>(i + 1), weight(), {}));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
            auto before = sim.host(0).engine->cluster_map();

            // Join: the newcomer has no map; it must receive the cluster's.
            const auto j = sim.add_host(config(static_cast<std::uint8_t>(n + 1), weight(), {}));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
            CHECK(sim.max_double_ms() == 0);
            CHECK(sim.host(j).engine->counters().map_transfers == 1);
            CHECK(has_event(sim.host(j), EventKind::map_received));
            CHECK(total(sim, &EngineCounters::map_fallbacks) == 0);
            auto after = sim.host(0).engine->cluster_map();
            CHECK(after->digest() == sim.host(j).engine->cluster_map()->digest());
            auto members = live_members(sim);
            const std::vector<RuleMode> modes{RuleMode::multiple};
            // The engine's map is g(previous map, members), on every host.
            CHECK(*after == *reallocate(before.get(), modes, members));
            auto min = minimum_moves(before->slots[0], members);
            auto moved = changed(before->slots[0], after->slots[0]);
            INFO("join: moved " << moved << ", minimum " << min);
            REQUIRE(min > 0);
            CHECK(double(moved) <= 1.15 * min);
            sum += double(moved) / min;
            worst = std::max(worst, double(moved) / min);
            ++events;

            // Leave: a host other than the default one dies.
            if (n >= 2) {
                sim.kill(1 + rng() % n);
                before = after;
                REQUIRE(sim.run_until(
                    [&] {
                        return sim.settled() &&
                               std::popcount(sim.host(0).engine->members()) == int(n);
                    },
                    sim.now() + 30 * kPeriod));
                after = sim.host(0).engine->cluster_map();
                members = live_members(sim);
                CHECK(*after == *reallocate(before.get(), modes, members));
                min = minimum_moves(before->slots[0], members);
                moved = changed(before->slots[0], after->slots[0]);
                INFO("leave: moved " << moved << ", minimum " << min);
                REQUIRE(min > 0);
                CHECK(double(moved) <= 1.15 * min);
                sum += double(moved) / min;
                worst = std::max(worst, double(moved) / min);
                ++events;
            }
        }
    }
    CHECK(sum / events <= 1.15);
    CHECK(worst <= 1.15);
}

TEST_CASE("with 20% frame loss the map transfer still completes") {
    for (std::size_t n : {2, 5, 12}) {
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
            INFO("n=" << n << " seed=" << seed);
            Simulator sim(5000 + n * 10 + seed, NetworkParams{0.2, 1, 20});
            for (std::size_t i = 0; i < n; ++i)
                sim.add_host(config(static_cast<std::uint8_t>(i + 1), kEqualWeight, {}));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 60 * kPeriod));
            const auto before = sim.host(0).engine->cluster_map();
            const auto j = sim.add_host(config(static_cast<std::uint8_t>(n + 1), kEqualWeight, {}));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 60 * kPeriod));
            CHECK(sim.host(j).engine->counters().map_transfers == 1);
            CHECK(total(sim, &EngineCounters::map_fallbacks) == 0);
            const auto after = sim.host(0).engine->cluster_map();
            const auto min = minimum_moves(before->slots[0], live_members(sim));
            CHECK(double(changed(before->slots[0], after->slots[0])) <= 1.15 * min);
        }
    }
}

TEST_CASE("partition heal with two different maps ends with one map everywhere") {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed=" << seed);
        const std::size_t n = 6;
        Simulator sim(6000 + seed, {});
        for (std::size_t i = 0; i < n; ++i)
            sim.add_host(config(static_cast<std::uint8_t>(i + 1), kEqualWeight, {}));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        for (std::size_t i = 4; i < n; ++i)
            sim.set_group(i, 1);
        REQUIRE(sim.run_until(
            [&] {
                return sim.host(0).engine->members() == 0x0f &&
                       sim.host(4).engine->members() == 0x30 && sim.host(0).engine->converged() &&
                       sim.host(4).engine->converged() && sim.host(5).engine->converged() &&
                       sim.unowned(0) == 0;
            },
            sim.now() + 30 * kPeriod));
        sim.run_until(sim.now() + 5 * kPeriod);
        REQUIRE(sim.host(0).engine->map_digest() != sim.host(4).engine->map_digest());
        for (std::size_t i = 0; i < n; ++i)
            sim.host(i).accept_rate = (i >= 4) == (seed % 2 == 0) ? 10 : 1;
        sim.run_until(sim.now() + 5 * kPeriod);
        for (std::size_t i = 4; i < n; ++i)
            sim.set_group(i, 0);
        const auto healed_at = sim.now();
        sim.reset_double_stats();
        // As in test_convergence: double ownership ends within one period of the heal.
        REQUIRE(sim.run_until([&] { return sim.double_since() < 0; }, healed_at + kPeriod + 20));
        sim.reset_double_stats();
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
        CHECK(sim.host(5).engine->members() == 0x3f);
        // The larger group's map was the base (same generation, more holders): the smaller
        // group received it.
        CHECK(sim.host(4).engine->counters().map_transfers >= 1);
        CHECK(sim.host(5).engine->counters().map_transfers >= 1);
        CHECK(total(sim, &EngineCounters::map_fallbacks) == 0);
    }
}

TEST_CASE("when the map cannot be transferred the cluster falls back to the stateless map") {
    Simulator sim(7000, {});
    for (std::size_t i = 0; i < 4; ++i)
        sim.add_host(config(static_cast<std::uint8_t>(i + 1), kEqualWeight, {}));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    // A leave and a rejoin so the base is g's own map, not the cold-start one.
    sim.kill(3);
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 0x7; },
                          sim.now() + 30 * kPeriod));
    CHECK(sim.host(0).engine->map_generation() == 2);
    // The newcomer never receives a chunk.
    const auto j = sim.add_host(config(5, kEqualWeight, {}));
    sim.drop = [&](std::size_t, std::size_t to, const std::vector<std::uint8_t>& f) {
        return to == j && is_map_chunk(f);
    };
    const auto t0 = sim.now();
    REQUIRE(sim.run_until([&] { return sim.settled(); }, t0 + 40 * kPeriod));
    CHECK(sim.host(j).engine->counters().map_fallbacks == 1);
    CHECK(has_event(sim.host(j), EventKind::map_fallback));
    CHECK(sim.host(j).engine->counters().map_transfers == 0);
    CHECK(sim.max_double_ms() == 0);
    const auto expected = allocate(std::vector<RuleMode>{RuleMode::multiple}, live_members(sim));
    CHECK(*sim.host(0).engine->cluster_map() == *expected);
    // Bounded: give up after 2 tolerances, then one agreement.
    CHECK(sim.now() - t0 <= 20 * kPeriod);
    // The next change uses g again, from the fallback map.
    sim.drop = nullptr;
    sim.kill(1);
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 0x15; },
                          sim.now() + 30 * kPeriod));
    CHECK(*sim.host(0).engine->cluster_map() !=
          *allocate(std::vector<RuleMode>{RuleMode::multiple}, live_members(sim)));
}

TEST_CASE("forged, replayed and truncated map chunks are rejected and counted") {
    const std::vector<std::uint8_t> key(32, 0x5a);
    Simulator sim(8000, {});
    for (std::size_t i = 0; i < 3; ++i)
        sim.add_host(config(static_cast<std::uint8_t>(i + 1), kEqualWeight, key));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.capture = true;
    const auto j = sim.add_host(config(4, kEqualWeight, key));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
    CHECK(sim.host(j).engine->counters().map_transfers == 1);
    std::vector<std::vector<std::uint8_t>> chunks;
    for (const auto& f : sim.captured())
        if (is_map_chunk(f))
            chunks.push_back(f);
    REQUIRE(!chunks.empty());
    const auto epoch = sim.host(j).engine->epoch();
    const auto c0 = sim.host(j).engine->counters();

    auto forged = chunks.front();
    forged[kMapChunkHeaderSize + 3] ^= 0x10; // map data
    auto truncated = chunks.front();
    truncated.resize(truncated.size() - 40);
    auto plain = decode_map_chunk(chunks.front()).chunk;
    REQUIRE(plain);
    plain->flags = 0;
    plain->sequence += 1000;
    const auto unsigned_chunk = encode_map_chunk(*plain);
    for (const auto& f : chunks)
        sim.inject(j, f); // replays
    sim.inject(j, forged);
    sim.inject(j, truncated);
    sim.inject(j, unsigned_chunk);
    sim.run_until(sim.now() + 3 * kPeriod);
    const auto& c = sim.host(j).engine->counters();
    CHECK(c.replayed >= c0.replayed + chunks.size());
    CHECK(c.bad_mac >= c0.bad_mac + 1);
    CHECK(c.malformed >= c0.malformed + 1);
    CHECK(c.unauthenticated >= c0.unauthenticated + 1);
    CHECK(c.map_transfers == 1);
    CHECK(sim.host(j).engine->epoch() == epoch);
    CHECK(sim.settled());
}

namespace {

// The frame a 1.0 agent would have sent: minor 0, no base, contact or config section
// (unkeyed clusters only).
std::vector<std::uint8_t> as_v10(const std::vector<std::uint8_t>& frame) {
    if (is_map_chunk(frame) || !decode_heartbeat(frame).heartbeat)
        return frame;
    auto out = without_sections(frame, {kSectionBase, kSectionContact, kSectionConfig});
    out[5] = 0;
    return out;
}

} // namespace

TEST_CASE("rolling upgrade: while a 1.0 member is in the cluster every map is allocate()'s") {
    Simulator sim(9000, {});
    for (std::size_t i = 0; i < 5; ++i)
        sim.add_host(config(static_cast<std::uint8_t>(i + 1), kEqualWeight, {}));
    // Host 5 plays a 1.0 agent: what it sends is 1.0's frame, and it sees every other host as
    // 1.0 (a 1.0 agent ignores the base section and knows nothing of chunks).
    const std::size_t old = 4;
    sim.rewrite = [&](std::size_t from, std::size_t to, const std::vector<std::uint8_t>& f) {
        return from == old || to == old ? as_v10(f) : f;
    };
    // ... and knows nothing of the second path.
    sim.drop_contact = [&](std::size_t from, std::size_t to, const std::vector<std::uint8_t>&) {
        return from == old || to == old;
    };
    const std::vector<RuleMode> modes{RuleMode::multiple};
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    CHECK(*sim.host(0).engine->cluster_map() == *allocate(modes, live_members(sim)));
    sim.kill(1);
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 0x1d; },
                          sim.now() + 30 * kPeriod));
    CHECK(*sim.host(0).engine->cluster_map() == *allocate(modes, live_members(sim)));
    CHECK(total(sim, &EngineCounters::map_chunks_sent) == 0);
    // The 1.0 host leaves: from then on the maps follow g.
    auto before = sim.host(0).engine->cluster_map();
    sim.kill(old);
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 0x0d; },
                          sim.now() + 30 * kPeriod));
    CHECK(*sim.host(0).engine->cluster_map() ==
          *reallocate(before.get(), modes, live_members(sim)));
}

} // namespace test_map_transfer
