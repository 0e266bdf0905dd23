// Health probes in the engine (docs/health.md): a probe's down drains the rule on its host,
// panic mode when too few members are healthy, the operator's drain winning, a member without
// the health section keeping everyone out of panic. resolve_panic alone, then whole clusters
// on the simulator.
#include <catch2/catch.hpp>

#include <algorithm>

#include "heartbeat_codec.hpp"
#include "probe_panic.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_health {

namespace {

constexpr std::int64_t kPeriod = 1000;

std::vector<MemberParams> members(std::size_t n) {
    std::vector<MemberParams> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        out[i].priority = static_cast<std::uint8_t>(i + 1);
        out[i].health = true;
    }
    return out;
}

void hold_down(MemberParams& m, std::size_t rule) {
    m.control[rule] = RuleControl::draining;
    m.probe_down |= std::uint32_t{1} << rule;
}

const std::vector<RuleMode> kOneRule = {RuleMode::multiple};

Simulator cluster(std::uint64_t seed, std::size_t n, std::uint8_t panic_percent = 0) {
    Simulator sim(seed, {});
    for (std::size_t i = 0; i < n; ++i) {
        auto c = default_config(static_cast<std::uint8_t>(i + 1));
        c.host.panic_percent = panic_percent;
        sim.add_host(c);
    }
    return sim;
}

std::size_t owned(Simulator& sim, std::size_t i) {
    return sim.host(i).engine->buckets_owned(0);
}

} // namespace

TEST_CASE("resolve_panic: no probe down, no panic") {
    auto m = members(3);
    CHECK(resolve_panic(m, kOneRule) == 0);
    CHECK(m == members(3));
}

TEST_CASE("resolve_panic: some members healthy, the down one stays drained") {
    auto m = members(3);
    hold_down(m[1], 0);
    const auto before = m;
    CHECK(resolve_panic(m, kOneRule) == 0);
    CHECK(m == before);
}

TEST_CASE("resolve_panic: nobody healthy, everyone serves") {
    auto m = members(3);
    for (auto& x : m)
        hold_down(x, 0);
    CHECK(resolve_panic(m, kOneRule) == 1);
    for (const auto& x : m)
        CHECK(x.control[0] == RuleControl::enabled);
}

TEST_CASE("resolve_panic: panic_percent, the largest any member publishes") {
    auto m = members(3);
    hold_down(m[0], 0);
    hold_down(m[1], 0); // 1 of 3 healthy: 33 %
    SECTION("below the largest percent: panic") {
        m[2].panic_percent = 50;
        CHECK(resolve_panic(m, kOneRule) == 1);
        CHECK(m[0].control[0] == RuleControl::enabled);
    }
    SECTION("at or above it: no panic") {
        m[0].panic_percent = 33;
        CHECK(resolve_panic(m, kOneRule) == 0);
        CHECK(m[0].control[0] == RuleControl::draining);
    }
}

TEST_CASE("resolve_panic: the operator's drain wins and is no candidate") {
    auto m = members(3);
    m[0].control[0] = RuleControl::draining; // nlbadm drain
    hold_down(m[1], 0);
    hold_down(m[2], 0);
    CHECK(resolve_panic(m, kOneRule) == 1);
    CHECK(m[0].control[0] == RuleControl::draining);
    CHECK(m[1].control[0] == RuleControl::enabled);
    CHECK(m[2].control[0] == RuleControl::enabled);
}

TEST_CASE("resolve_panic: weight 0 members are no candidates") {
    auto m = members(2);
    m[0].rules[0].load_weight = 0; // healthy but owns nothing
    hold_down(m[1], 0);
    CHECK(resolve_panic(m, kOneRule) == 1);
    CHECK(m[1].control[0] == RuleControl::enabled);
}

TEST_CASE("resolve_panic: nothing without every member's health, nothing for disabled rules") {
    auto m = members(2);
    hold_down(m[0], 0);
    hold_down(m[1], 0);
    auto older = m;
    older[1].health = false;
    older[1].probe_down = 0;
    CHECK(resolve_panic(older, kOneRule) == 0);
    CHECK(older[0].control[0] == RuleControl::draining);
    const std::vector<RuleMode> disabled = {RuleMode::disabled};
    CHECK(resolve_panic(m, disabled) == 0);
}

TEST_CASE("resolve_panic: rules decide alone") {
    auto m = members(2);
    const std::vector<RuleMode> modes = {RuleMode::multiple, RuleMode::single};
    hold_down(m[0], 0);
    hold_down(m[1], 0);
    hold_down(m[0], 1);
    CHECK(resolve_panic(m, modes) == 1);
    CHECK(m[0].control[1] == RuleControl::draining);
    CHECK(m[1].control[1] == RuleControl::enabled);
}

TEST_CASE("a probe's down drains its rule on that host within the bound; up takes it back") {
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
        auto sim = cluster(seed + 100, 3);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        const auto t0 = sim.now();
        sim.probe_down(1, 1);
        // The engine's part of the bound: 2 heartbeat periods (the probe's own fall x
        // (interval + timeout) comes before set_probe_down).
        REQUIRE(
            sim.run_until([&] { return sim.settled() && owned(sim, 1) == 0; }, t0 + 2 * kPeriod));
        CHECK(owned(sim, 0) + owned(sim, 2) == NLB_BUCKETS);
        CHECK(sim.max_double_ms() == 0);
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(sim.host(i).engine->panic_rules() == 0);
            CHECK(count_events(sim.host(i), EventKind::panic_started) == 0);
        }
        const auto t1 = sim.now();
        sim.probe_down(1, 0);
        REQUIRE(sim.run_until([&] { return sim.settled() && owned(sim, 1) >= NLB_BUCKETS / 3; },
                              t1 + 3 * kPeriod));
        CHECK(owned(sim, 1) <= NLB_BUCKETS / 3 + 1);
        CHECK(sim.max_double_ms() == 0);
    }
}

TEST_CASE("every member down by probe: panic mode, every host serves, then it ends") {
    auto sim = cluster(7, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.probe_down(0, 1);
    sim.probe_down(1, 1);
    REQUIRE(sim.run_until([&] { return sim.settled() && owned(sim, 2) == NLB_BUCKETS; },
                          sim.now() + 5 * kPeriod));
    sim.probe_down(2, 1); // the last healthy one
    REQUIRE(sim.run_until(
        [&] {
            return sim.settled() && sim.host(0).engine->panic_rules() == 1 && owned(sim, 0) > 0 &&
                   owned(sim, 1) > 0 && owned(sim, 2) > 0;
        },
        sim.now() + 5 * kPeriod));
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(sim.host(i).engine->panic_rules() == 1);
        CHECK(count_events(sim.host(i), EventKind::panic_started) == 1);
        CHECK(owned(sim, i) >= NLB_BUCKETS / 3 - 1);
    }
    CHECK(sim.unowned(0) == 0);
    sim.probe_down(1, 0); // host 2 healthy again: it alone serves, panic ends
    REQUIRE(sim.run_until([&] { return sim.settled() && owned(sim, 1) == NLB_BUCKETS; },
                          sim.now() + 5 * kPeriod));
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(sim.host(i).engine->panic_rules() == 0);
        CHECK(count_events(sim.host(i), EventKind::panic_ended) == 1);
    }
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("panic ends when every member comes back, at once or while a convergence runs") {
    // In panic every control is forced back to enabled, and the digest hashes the controls
    // after panic: all members healthy again is the same digest and the same map, so no
    // convergence may carry the end of panic.
    for (const bool staggered : {false, true}) {
        CAPTURE(staggered);
        auto sim = cluster(staggered ? 12 : 11, 3);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        for (std::size_t i = 0; i < 3; ++i)
            sim.probe_down(i, 1);
        REQUIRE(
            sim.run_until([&] { return sim.settled() && sim.host(0).engine->panic_rules() == 1; },
                          sim.now() + 5 * kPeriod));
        if (staggered) {
            // One member back starts a convergence (the others drained); the rest come back
            // before it ends, so it installs the digest panic had.
            sim.probe_down(0, 0);
            sim.run_until(sim.now() + kPeriod / 2);
        }
        sim.probe_down(0, 0);
        sim.probe_down(1, 0);
        sim.probe_down(2, 0);
        REQUIRE(sim.run_until(
            [&] {
                for (std::size_t i = 0; i < 3; ++i)
                    if (sim.host(i).engine->panic_rules() != 0)
                        return false;
                return sim.settled();
            },
            sim.now() + 5 * kPeriod));
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(count_events(sim.host(i), EventKind::panic_ended) == 1);
            CHECK(owned(sim, i) >= NLB_BUCKETS / 3 - 1);
        }
        CHECK(sim.max_double_ms() == 0);
    }
}

TEST_CASE("panic_percent: fewer healthy members than it asks puts the rule in panic") {
    auto sim = cluster(8, 4);
    sim.host(3).engine.reset(); // rebuilt below with panic_percent 50 on one host only
    Simulator sim2(8, {});
    for (std::uint8_t p = 1; p <= 4; ++p) {
        auto c = default_config(p);
        c.host.panic_percent = p == 4 ? 50 : 0;
        sim2.add_host(c);
    }
    REQUIRE(sim2.run_until([&] { return sim2.settled(); }, 30 * kPeriod));
    sim2.probe_down(0, 1);
    REQUIRE(sim2.run_until([&] { return sim2.settled() && owned(sim2, 0) == 0; },
                           sim2.now() + 5 * kPeriod));
    CHECK(sim2.host(1).engine->panic_rules() == 0); // 3 of 4: 75 %
    sim2.probe_down(1, 1);
    sim2.probe_down(2, 1); // 1 of 4: 25 % < 50 %
    REQUIRE(
        sim2.run_until([&] { return sim2.settled() && sim2.host(0).engine->panic_rules() == 1; },
                       sim2.now() + 5 * kPeriod));
    for (std::size_t i = 0; i < 4; ++i)
        CHECK(owned(sim2, i) >= NLB_BUCKETS / 4 - 1);
}

TEST_CASE("an operator's drain wins over a probe's up, and over panic") {
    auto sim = cluster(9, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.command(0, {CommandKind::rule_drain, 0});
    REQUIRE(sim.run_until([&] { return sim.settled() && owned(sim, 0) == 0; },
                          sim.now() + 5 * kPeriod));
    sim.probe_down(0, 0); // up, still drained
    sim.probe_down(1, 1);
    sim.probe_down(2, 1); // nobody healthy among hosts 2 and 3: panic, host 1 stays out
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(1).engine->panic_rules() == 1; },
                          sim.now() + 5 * kPeriod));
    CHECK(owned(sim, 0) == 0);
    CHECK(owned(sim, 1) + owned(sim, 2) == NLB_BUCKETS);
}

TEST_CASE("a host whose probe never passed gets no share when it joins") {
    auto sim = cluster(11, 2);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    const auto j = sim.add_host(default_config(3), false);
    sim.probe_down(j, 1);
    sim.command(j, {CommandKind::start, -1});
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 7; },
                          sim.now() + 10 * kPeriod));
    CHECK(owned(sim, j) == 0);
    CHECK(owned(sim, 0) + owned(sim, 1) == NLB_BUCKETS);
    sim.probe_down(j, 0);
    REQUIRE(sim.run_until([&] { return sim.settled() && owned(sim, j) >= NLB_BUCKETS / 3; },
                          sim.now() + 5 * kPeriod));
}

TEST_CASE("a member without the health section keeps the cluster out of panic, maps agree") {
    auto sim = cluster(12, 3);
    // Host 3 runs a version without probes: its frames lack section 7.
    sim.rewrite = [](std::size_t from, std::size_t, const std::vector<std::uint8_t>& frame) {
        if (from != 2 || is_map_chunk(frame))
            return frame;
        auto d = decode_heartbeat(frame);
        if (!d.heartbeat)
            return frame;
        d.heartbeat->has_health = false;
        return encode_heartbeat(*d.heartbeat);
    };
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.probe_down(0, 1);
    sim.probe_down(1, 1);
    REQUIRE(sim.run_until([&] { return sim.settled() && owned(sim, 2) == NLB_BUCKETS; },
                          sim.now() + 5 * kPeriod));
    CHECK(sim.host(0).engine->panic_rules() == 0);
    CHECK(owned(sim, 0) == 0);
    CHECK(owned(sim, 1) == 0);
}

TEST_CASE("health section: round trip, bounds, and a probe's down travels as draining") {
    Heartbeat hb;
    hb.priority = 3;
    hb.cluster_ip = 0xc0000264;
    hb.rule_count = 2;
    hb.control[1] = RuleControl::draining;
    hb.has_health = true;
    hb.probe_down = 0x2;
    hb.panic_percent = 40;
    auto frame = encode_heartbeat(hb);
    auto d = decode_heartbeat(frame);
    REQUIRE(d.heartbeat);
    CHECK(d.heartbeat->has_health);
    CHECK(d.heartbeat->probe_down == 0x2);
    CHECK(d.heartbeat->panic_percent == 40);

    auto with = [&](auto change) {
        Heartbeat h = hb;
        change(h);
        return decode_heartbeat(encode_heartbeat(h)).error;
    };
    CHECK(with([](Heartbeat& h) { h.control[1] = RuleControl::enabled; }) ==
          DecodeError::bad_field);
    CHECK(with([](Heartbeat& h) { h.probe_down = 0x4; }) == DecodeError::bad_field); // no rule 2
    CHECK(with([](Heartbeat& h) { h.panic_percent = 101; }) == DecodeError::bad_field);
    // Truncated body: the length field says 8, the section is cut short.
    auto cut = frame;
    const std::uint8_t section[] = {kSectionHealth, 0, 0, 8}; // type, reserved, length
    const auto at = std::search(cut.begin() + kHeartbeatHeaderSize, cut.end(), std::begin(section),
                                std::end(section));
    REQUIRE(at != cut.end());
    at[3] = 4;
    cut.erase(at + 8, at + 12);
    cut[8] = static_cast<std::uint8_t>(cut.size() >> 8);
    cut[9] = static_cast<std::uint8_t>(cut.size());
    CHECK(decode_heartbeat(cut).error == DecodeError::bad_length);
    // Without the section: an older sender.
    Heartbeat old = hb;
    old.has_health = false;
    old.probe_down = 0;
    auto od = decode_heartbeat(encode_heartbeat(old));
    REQUIRE(od.heartbeat);
    CHECK_FALSE(od.heartbeat->has_health);
}

TEST_CASE("load feedback: published loads reach every member and reconverge nothing") {
    auto sim = cluster(11, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    const std::size_t started = count_events(sim.host(0), EventKind::convergence_started);
    for (std::uint32_t round = 1; round <= 5; ++round) {
        for (std::size_t i = 0; i < 3; ++i) {
            std::array<std::uint32_t, NLB_MAX_RULES> loads{};
            loads[0] = 1000 * (static_cast<std::uint32_t>(i) + 1) * round;
            sim.host(i).engine->set_loads(1, loads);
        }
        sim.run_until(sim.now() + 2 * kPeriod);
        for (std::size_t i = 0; i < 3; ++i) {
            const auto seen = sim.host(i).engine->loads_of(0);
            REQUIRE(seen.size() == 3);
            for (const auto& [priority, load] : seen)
                CHECK(load == 1000u * priority * round);    // host i has priority i + 1
            CHECK(sim.host(i).engine->loads_of(1).empty()); // no loads for rule 1
        }
    }
    CHECK(count_events(sim.host(0), EventKind::convergence_started) == started);
    CHECK(sim.max_double_ms() == 0);
}

} // namespace test_health
