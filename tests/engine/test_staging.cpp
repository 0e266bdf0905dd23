// Staged configuration (docs/staged-config.md) on the simulated network: a new set of port
// rules or timing is staged beside the running one; the cluster switches once every live host
// holds it, in one convergence; unchanged slots keep their owners throughout, and a changed
// slot is never served by hosts that run different sets at once.
#include <catch2/catch.hpp>

#include <algorithm>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_staging {

namespace {

constexpr std::int64_t kPeriod = 1000;
constexpr std::uint64_t kSlot1 = std::uint64_t{1} << 1;

Simulator two_rule_cluster(std::uint64_t seed, std::size_t n, NetworkParams net = {}) {
    Simulator sim(seed, net);
    for (std::size_t i = 0; i < n; ++i)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1), 2));
    return sim;
}

// Rule 1 (ports 100-199) hashed on the whole connection instead of the client address: its
// packets land in other buckets, so slot 1 is a changed slot.
EngineConfig changed_rule(std::uint8_t priority) {
    auto c = default_config(priority, 2);
    c.rules[1].affinity = Affinity::none;
    return c;
}

// Hosts (live) that own buckets of `slot` in their installed maps, by the config they run.
bool one_config_serves(Simulator& sim, std::size_t slot) {
    std::uint64_t digest = 0;
    for (std::size_t i = 0; i < sim.size(); ++i) {
        auto& h = sim.host(i);
        if (!h.alive || !h.installed)
            continue;
        const auto me = h.engine->priority();
        const auto& owners = (*h.installed)[slot].owners;
        if (std::none_of(owners.begin(), owners.end(), [&](std::uint8_t o) { return o == me; }))
            continue;
        if (digest != 0 && digest != h.engine->active_digest())
            return false;
        digest = h.engine->active_digest();
    }
    return true;
}

} // namespace

TEST_CASE("staged rules: the cluster switches once every host holds them, in one convergence") {
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        INFO("seed " << seed);
        auto sim = two_rule_cluster(seed, 3, {0.05, 1, 5, 0.0});
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        const std::uint64_t before = sim.host(0).engine->active_digest();
        const std::uint64_t epoch = sim.host(0).engine->epoch();

        // Two of three hold it: nothing switches, and the third is named as the one missing.
        REQUIRE(sim.stage(0, changed_rule(1), kSlot1).empty());
        REQUIRE(sim.stage(1, changed_rule(2), kSlot1).empty());
        const std::uint64_t staged = sim.host(0).engine->staged_digest();
        CHECK(staged != 0);
        CHECK(staged != before);
        CHECK(sim.host(1).engine->staged_digest() == staged);
        sim.run_until(sim.now() + 10 * kPeriod);
        for (std::size_t i = 0; i < 3; ++i)
            CHECK(sim.host(i).engine->active_digest() == before);
        CHECK(sim.host(0).engine->staged_waiting() == 0b100);
        CHECK(sim.host(0).engine->epoch() == epoch);

        // The third stages it: every host switches, and from then until settled, slot 1 is
        // never served by hosts that run different sets, slot 0 (unchanged) never loses or
        // doubles an owner.
        sim.reset_double_stats();
        REQUIRE(sim.stage(2, changed_rule(3), kSlot1).empty());
        const std::int64_t t0 = sim.now();
        bool mixed = false, gap = false;
        const bool done = sim.run_until(
            [&] {
                mixed = mixed || !one_config_serves(sim, 1);
                gap = gap || sim.unowned(0) != 0;
                bool all = true;
                for (std::size_t i = 0; i < 3; ++i)
                    all = all && sim.host(i).engine->active_digest() == staged;
                return all && sim.settled();
            },
            t0 + 30 * kPeriod);
        REQUIRE(done);
        INFO("switched and settled in " << sim.now() - t0 << " ms");
        CHECK(sim.now() - t0 <= 4 * kPeriod);
        CHECK_FALSE(mixed);
        CHECK_FALSE(gap);
        CHECK(sim.max_double_ms() == 0);
        CHECK(sim.all_owned_once(0));
        CHECK(sim.all_owned_once(1));
        for (std::size_t i = 0; i < 3; ++i) {
            const auto& e = *sim.host(i).engine;
            CHECK(e.staged_digest() == 0);
            CHECK(e.config().rules[1].affinity == Affinity::none);
            CHECK(count_events(sim.host(i), EventKind::config_switched) == 1);
            CHECK(e.epoch() != epoch); // the rules enter the epoch
        }
    }
}

TEST_CASE("staged timing: a new heartbeat period switches without a new epoch") {
    auto sim = two_rule_cluster(7, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    const std::uint64_t epoch = sim.host(0).engine->epoch();
    for (std::size_t i = 0; i < 3; ++i) {
        auto c = default_config(static_cast<std::uint8_t>(i + 1), 2);
        c.cluster.heartbeat_ms = 500;
        REQUIRE(sim.stage(i, c, 0).empty());
    }
    sim.reset_double_stats();
    REQUIRE(sim.run_until(
        [&] {
            for (std::size_t i = 0; i < 3; ++i)
                if (sim.host(i).engine->config().cluster.heartbeat_ms != 500)
                    return false;
            return sim.settled();
        },
        sim.now() + 10 * kPeriod));
    CHECK(sim.host(0).engine->epoch() == epoch);
    CHECK(sim.max_double_ms() == 0);
    // The new period is in force: the hosts now send about two frames a second.
    const auto sent = sim.host(0).frames_sent;
    sim.run_until(sim.now() + 10 * kPeriod);
    CHECK(sim.host(0).frames_sent - sent >= 18);
}

TEST_CASE("a host that restarts mid-change with the new set completes the change") {
    auto sim = two_rule_cluster(11, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    REQUIRE(sim.stage(0, changed_rule(1), kSlot1).empty());
    REQUIRE(sim.stage(1, changed_rule(2), kSlot1).empty());
    const std::uint64_t staged = sim.host(0).engine->staged_digest();
    // Host 3 restarts and reads the new file: it runs the new set. Hosts 1 and 2, the only
    // live hosts of the old one, both hold it staged: they switch, and host 3 joins them.
    sim.kill(2);
    sim.run_until(sim.now() + 8 * kPeriod);
    sim.add_host(changed_rule(3));
    bool mixed = false;
    REQUIRE(sim.run_until(
        [&] {
            mixed = mixed || !one_config_serves(sim, 1);
            return sim.host(3).engine->converged() && sim.settled() &&
                   sim.host(0).engine->active_digest() == staged;
        },
        sim.now() + 30 * kPeriod));
    CHECK_FALSE(mixed);
    CHECK(sim.host(0).engine->members() == 0b111);
}

TEST_CASE("a host back within the tolerance with the new set does not hold the change") {
    // Hosts 1 and 2 hold the set staged; host 3 restarts with the new file before the others
    // take it for gone. It runs what they stage, so it stays in their cohort and view: they
    // must count it as holding the set, or neither would switch nor converge again.
    auto sim = two_rule_cluster(17, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    REQUIRE(sim.stage(0, changed_rule(1), kSlot1).empty());
    REQUIRE(sim.stage(1, changed_rule(2), kSlot1).empty());
    const std::uint64_t staged = sim.host(0).engine->staged_digest();
    sim.kill(2);
    sim.run_until(sim.now() + kPeriod);
    sim.add_host(changed_rule(3));
    bool mixed = false;
    const std::int64_t t0 = sim.now();
    REQUIRE(sim.run_until(
        [&] {
            mixed = mixed || !one_config_serves(sim, 1);
            return sim.settled() && sim.host(3).engine->converged() &&
                   sim.host(0).engine->active_digest() == staged &&
                   sim.host(1).engine->active_digest() == staged;
        },
        t0 + 20 * kPeriod));
    INFO("switched and settled " << sim.now() - t0 << " ms after the restart");
    CHECK_FALSE(mixed);
    CHECK(sim.host(0).engine->members() == 0b111);
}

TEST_CASE("a host that runs a set one host stages holds up no convergence") {
    // Host 4 starts with a set of its own (refused: the three others run theirs). Host 1 then
    // stages that very set, alone. The cluster must still converge as ever: host 3 fails, and
    // hosts 1 and 2 take over within the failover bound.
    auto sim = two_rule_cluster(19, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.add_host(changed_rule(4));
    sim.run_until(sim.now() + 10 * kPeriod);
    CHECK(sim.host(3).engine->state() == HostState::refused);
    REQUIRE(sim.stage(0, changed_rule(1), kSlot1).empty());
    sim.run_until(sim.now() + 3 * kPeriod);
    CHECK(sim.settled());
    sim.kill(2);
    const std::int64_t t0 = sim.now();
    REQUIRE(sim.run_until(
        [&] {
            return sim.settled() && sim.host(0).engine->members() == 0b011 &&
                   sim.host(1).engine->members() == 0b011;
        },
        t0 + 30 * kPeriod));
    INFO("failover took " << sim.now() - t0 << " ms");
    CHECK(sim.now() - t0 <= 8 * kPeriod);
    CHECK(sim.host(0).engine->staged_waiting() == 0b10); // host 2 still lacks it
    CHECK(sim.host(3).engine->state() == HostState::refused);
}

TEST_CASE("staging: what cannot be staged is refused, the running set unstages") {
    auto sim = two_rule_cluster(5, 2);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto mode = default_config(1, 2);
    mode.cluster.mode = 1;
    CHECK(sim.stage(0, mode, 0) == "cluster.mode changes");
    auto priority = default_config(3, 2);
    CHECK(sim.stage(0, priority, 0) == "host.priority changes");
    CHECK(sim.host(0).engine->staged_digest() == 0);
    REQUIRE(sim.stage(0, changed_rule(1), kSlot1).empty());
    CHECK(sim.host(0).engine->staged_digest() != 0);
    // Back to the running set: nothing staged, nothing switches.
    REQUIRE(sim.stage(0, default_config(1, 2), 0).empty());
    CHECK(sim.host(0).engine->staged_digest() == 0);
    REQUIRE(sim.stage(1, changed_rule(2), kSlot1).empty());
    sim.run_until(sim.now() + 10 * kPeriod);
    CHECK(count_events(sim.host(0), EventKind::config_switched) == 0);
    CHECK(count_events(sim.host(1), EventKind::config_switched) == 0);
    CHECK(sim.host(1).engine->staged_waiting() == 0b1);
    CHECK(sim.settled());
}

TEST_CASE("a host deaf mid-change: no slot is served under two sets at once") {
    // Host 3 stages first, then stops hearing the others (both paths): hosts 1 and 2 stage
    // and switch on what host 3 last said; host 3 never hears of it, keeps claiming the old
    // epoch with its share until it takes them for dead, and then, alone, switches itself.
    // Slot 1's packets hash otherwise under the new set: at no instant may hosts running
    // different sets own buckets of it. The others' agreement waits for host 3 (mid-switch,
    // it stays in their view) and their changed slots for every live host's claim.
    auto sim = two_rule_cluster(13, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    REQUIRE(sim.stage(2, changed_rule(3), kSlot1).empty());
    sim.run_until(sim.now() + 2 * kPeriod);
    auto deaf = [](std::size_t from, std::size_t to, const std::vector<std::uint8_t>&) {
        return to == 2 && from != 2;
    };
    sim.drop = deaf;
    sim.drop_contact = deaf;
    REQUIRE(sim.stage(0, changed_rule(1), kSlot1).empty());
    REQUIRE(sim.stage(1, changed_rule(2), kSlot1).empty());
    bool mixed = false;
    sim.run_until(
        [&] {
            mixed = mixed || !one_config_serves(sim, 1);
            return false;
        },
        sim.now() + 20 * kPeriod);
    CHECK(sim.host(0).engine->staged_digest() == 0); // hosts 1 and 2 switched
    CHECK(sim.host(1).engine->staged_digest() == 0);
    CHECK_FALSE(mixed);
    sim.drop = nullptr;
    sim.drop_contact = nullptr;
    REQUIRE(sim.run_until(
        [&] {
            mixed = mixed || !one_config_serves(sim, 1);
            return sim.settled() && sim.host(2).engine->staged_digest() == 0;
        },
        sim.now() + 40 * kPeriod));
    CHECK_FALSE(mixed);
}

} // namespace test_staging
