// Hosts joining a running cluster on a loaded machine, where frames come late
// (docs/convergence.md §2a and §4): a joiner whose peers answer it late joins in one
// convergence, unrefused, while one that really lacks two-way contact is still refused and
// never serves; a frame late on one path never sets its peer back; joins in quick succession
// cost the members no fetching of maps they agreed on.
#include <catch2/catch.hpp>

#include <random>
#include <set>
#include <string>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_join_contact {

namespace {

constexpr std::int64_t kPeriod = 100;
constexpr std::size_t kHosts = 16;

EngineConfig config_at_100ms(std::uint8_t priority) {
    auto c = default_config(priority);
    c.cluster.heartbeat_ms = kPeriod;
    return c;
}

int count(const SimHost& h, EventKind kind, std::size_t from = 0) {
    int n = 0;
    for (std::size_t i = from; i < h.events.size(); ++i)
        n += h.events[i].kind == kind;
    return n;
}

bool owns_any(const SimHost& h) {
    if (!h.installed)
        return false;
    for (const auto& slot : *h.installed)
        for (const auto owner : slot.owners)
            if (owner == h.engine->priority())
                return true;
    return false;
}

} // namespace

TEST_CASE("a host joining while frames come late is not refused: one convergence") {
    // 64 agents on 2 cores at 100 ms read and answer frames 100-500 ms late: a joiner heard
    // by some peers only by the second path at first, or counted by them a few frames late,
    // was refused for want of two-way contact one period after they proved contact, left
    // every view and came back a tolerance later (5 of 8 joiners in one bench run; here 3 of
    // 6 seeds at up to 250 ms). Each such joiner cost the whole cluster two more convergences,
    // with their hand-overs.
    int refusals = 0, convergences = 0;
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
        INFO("seed " << seed);
        NetworkParams net;
        net.delay_max_ms = 250;
        net.linger_ms = kPeriod / 8;
        Simulator sim(seed, net);
        for (std::size_t i = 0; i < kHosts; ++i)
            sim.add_host(config_at_100ms(static_cast<std::uint8_t>(i + 1)));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 200 * kPeriod));
        std::mt19937_64 rng(seed);
        sim.drop = [&](std::size_t, std::size_t, const auto&) { return rng() % 100 < 5; };
        const std::size_t seen = sim.host(0).events.size();
        sim.reset_double_stats();
        const auto joiner = sim.add_host(config_at_100ms(kHosts + 1));
        sim.run_until(sim.now() + 40 * kPeriod);
        sim.drop = nullptr;
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 40 * kPeriod));
        refusals += count(sim.host(joiner), EventKind::refused);
        convergences += count(sim.host(0), EventKind::convergence_started, seen);
        CHECK(sim.host(0).engine->members() == (std::uint64_t{1} << (kHosts + 1)) - 1);
        CHECK(sim.max_double_ms() == 0);
    }
    CHECK(refusals == 0);
    // One convergence per join (6 in 6 runs; 10 before, with 3 joiners refused and frames
    // late by the second path taken in over later ones: the next test).
    CHECK(convergences <= 7);
}

TEST_CASE("a joiner without two-way contact is refused before it could serve alone") {
    // Its frames never reach the segment: the peers hear it by the second path only. It must
    // not take the late frames' grace for a lasting state: refused (no_contact) within the
    // tolerance, never owning a bucket, and the cluster's epoch unchanged.
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, NetworkParams{});
        for (std::size_t i = 0; i < 4; ++i)
            sim.add_host(config_at_100ms(static_cast<std::uint8_t>(i + 1)));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 100 * kPeriod));
        const auto epoch = sim.host(0).engine->epoch();
        const std::size_t mute = 4;
        sim.drop = [&](std::size_t from, std::size_t, const auto&) { return from == mute; };
        sim.reset_double_stats();
        const auto start = sim.now();
        sim.add_host(config_at_100ms(5));
        bool served = false;
        const bool refused = sim.run_until(
            [&] {
                served = served || owns_any(sim.host(mute));
                return sim.host(mute).engine->state() == HostState::refused;
            },
            start + 10 * kPeriod);
        CHECK(refused);
        CHECK(sim.host(mute).engine->refuse_reason() == RefuseReason::no_contact);
        sim.run_until(
            [&] {
                served = served || owns_any(sim.host(mute));
                return false;
            },
            sim.now() + 50 * kPeriod);
        CHECK_FALSE(served);
        CHECK(sim.host(0).engine->epoch() == epoch);
        CHECK(sim.max_double_ms() == 0);
        CHECK(sim.all_owned_once());
    }
}

TEST_CASE("frames late on the second path never set a peer back") {
    // A heartbeat comes by both paths; each path's replay window keeps its own frames in
    // order, but a copy that came after a later frame of its stream by the other path was
    // taken in as news: the peer's state, view and base went back to what it said before,
    // then forward again at its next frame, each way a change of parameters that can start
    // a convergence. During a join every peer sends every frame both ways, a quarter period
    // apart while converging. The same join with the second path's copies late must show
    // host 1 about as many state changes of its peers as with them on time (18-21; before
    // the fix 46-51 at 70 ms late and 78 at 200 ms).
    auto join = [](std::uint64_t seed, std::int64_t lag, std::uint64_t& superseded) {
        NetworkParams net;
        net.contact_lag_ms = lag;
        Simulator sim(seed, net);
        for (std::size_t i = 0; i < 8; ++i)
            sim.add_host(config_at_100ms(static_cast<std::uint8_t>(i + 1)));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 100 * kPeriod));
        const std::size_t seen = sim.host(0).events.size();
        sim.reset_double_stats();
        sim.add_host(config_at_100ms(9));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 40 * kPeriod));
        sim.run_until(sim.now() + 20 * kPeriod);
        CHECK(sim.settled());
        CHECK(sim.max_double_ms() == 0);
        CHECK(count(sim.host(0), EventKind::convergence_started, seen) == 1);
        for (std::size_t i = 0; i < sim.size(); ++i)
            superseded += sim.host(i).engine->counters().superseded;
        return count(sim.host(0), EventKind::host_changed, seen);
    };
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed " << seed);
        std::uint64_t on_time = 0, late = 0;
        const int changes = join(seed, 0, on_time);
        for (std::int64_t lag : {70, 200}) {
            INFO("second path " << lag << " ms late");
            // A few more or fewer come with the copies' timing (18-22 each way, fixed).
            CHECK(join(seed, lag, late) <= changes + changes / 2);
        }
        CHECK(late > 0); // the late copies came, and were told apart
    }
}

TEST_CASE("joins in quick succession: members compute the maps they agreed on, and keep them") {
    // Six hosts join a 24-host cluster 100-150 ms apart (100 ms heartbeats, frames up to
    // 60 ms late): each join starts a convergence before every member installed the last
    // epoch, and the cluster takes the newest map, which some members never installed, for
    // its base. Those members fetched it by transfer (on the 64-host bed 20 members at once,
    // the cluster waiting a second for them), and each further change during the convergence
    // set their base back to their own older map, so that they fetched it again (one member
    // 4 times). Now a member computes the map once every member reports the view it agrees
    // on, holds it should the others take it for a base, and keeps a base newer than its own
    // map. Before, over these 12 runs: 824 transfers to members, 441 of them of a map the
    // member had had already; now 68 and none (173 when the map was computed only at this
    // host's own first agreeing heartbeat: a member that installs first is often faster).
    // The count moves with each run's history: 0-38 a run; since a cold start waits for a
    // member to have run a tolerance (2026-12-04), 127 over these 12 runs, and 318 against
    // 275 before over 48 (6.6 and 5.7 a run, against 69 when every change refetched).
    std::uint64_t transfers = 0;
    int again = 0;
    for (std::int64_t gap : {100, 150}) {
        for (std::uint64_t seed = 0; seed < 6; ++seed) {
            INFO("joins " << gap << " ms apart, seed " << seed);
            NetworkParams net;
            net.delay_max_ms = 60;
            net.linger_ms = kPeriod / 8;
            Simulator sim(seed, net);
            const std::size_t members = 24;
            for (std::size_t i = 0; i < members; ++i)
                sim.add_host(config_at_100ms(static_cast<std::uint8_t>(i + 1)));
            REQUIRE(sim.run_until([&] { return sim.settled(); }, 200 * kPeriod));
            std::uint64_t before = 0;
            for (std::size_t i = 0; i < members; ++i)
                before += sim.host(i).engine->counters().map_transfers;
            sim.reset_double_stats();
            for (std::size_t j = 0; j < 6; ++j) {
                sim.add_host(config_at_100ms(static_cast<std::uint8_t>(members + 1 + j)));
                sim.run_until(sim.now() + gap);
            }
            REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 100 * kPeriod));
            CHECK(sim.max_double_ms() == 0);
            for (std::size_t i = 0; i < members; ++i) {
                transfers += sim.host(i).engine->counters().map_transfers;
                std::set<std::string> got;
                for (const auto& e : sim.host(i).events)
                    if (e.kind == EventKind::map_received &&
                        !got.insert(e.text.substr(e.text.find("(generation"))).second)
                        ++again;
            }
            transfers -= before;
        }
    }
    CHECK(again == 0);
    CHECK(transfers < 160);
}

TEST_CASE(
    "a map only a joiner installed, serving nothing under it, never becomes the cluster's base") {
    // A joiner can install an epoch that the members never do: they see the next change
    // (another joiner, a probe) between its agreement and theirs. It took none of its
    // buckets (the members still claim the epoch before), yet at its next convergence it
    // reported that map as its base, and the newest generation wins: on the 64-host bed the
    // 62 other members fetched it from the joiner, and the cluster waited a second for them.
    // A host takes for its base the map of an epoch it served under. Here member 1's probe
    // fails the instant the joiner is the only one converged on its epoch (22 of 40 seeds);
    // before, in 7 of them the members then took the joiner's map for their base.
    int lone = 0, based = 0;
    for (std::uint64_t seed = 0; seed < 40; ++seed) {
        Simulator sim(seed, NetworkParams{});
        for (std::size_t i = 0; i < 8; ++i)
            sim.add_host(config_at_100ms(static_cast<std::uint8_t>(i + 1)));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 200 * kPeriod));
        const auto a = sim.add_host(config_at_100ms(9));
        std::uint64_t lone_map = 0;
        sim.run_until(
            [&] {
                const auto e = sim.host(a).engine->epoch();
                if (e == 0 || !sim.host(a).engine->converged())
                    return false;
                for (std::size_t i = 0; i < 8; ++i)
                    if (sim.host(i).engine->epoch() == e)
                        return true;
                lone_map = sim.host(a).engine->cluster_map()->digest();
                sim.probe_down(0, 1);
                return true;
            },
            sim.now() + 50 * kPeriod);
        if (!lone_map)
            continue;
        ++lone;
        // Once a member installed that map too it is one the cluster served under.
        bool took_it = false, installed_by_member = false;
        REQUIRE(sim.run_until(
            [&] {
                for (std::size_t i = 0; i < 8; ++i) {
                    const auto& e = *sim.host(i).engine;
                    installed_by_member =
                        installed_by_member ||
                        (e.cluster_map() && e.cluster_map()->digest() == lone_map);
                    took_it = took_it || (!installed_by_member && e.base_digest() == lone_map);
                }
                return sim.settled();
            },
            sim.now() + 100 * kPeriod));
        based += took_it;
    }
    CHECK(lone >= 10);
    CHECK(based == 0);
}

} // namespace test_join_contact
