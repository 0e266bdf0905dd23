// Refusal, drainstop and dirty buckets, operator commands, replayed and forged frames.
#include <catch2/catch.hpp>

#include <algorithm>

#include "heartbeat_codec.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_commands {

namespace {

constexpr std::int64_t kPeriod = 1000;

Simulator cluster(std::uint64_t seed, std::size_t n, std::vector<std::uint8_t> key = {}) {
    Simulator sim(seed, {});
    for (std::size_t i = 0; i < n; ++i) {
        auto c = default_config(static_cast<std::uint8_t>(i + 1));
        c.cluster.key = key;
        sim.add_host(c);
    }
    return sim;
}

// Buckets of slot 0 host i owns in its installed map.
std::vector<std::uint32_t> owned_buckets(SimHost& h) {
    std::vector<std::uint32_t> out;
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        if ((*h.installed)[0].owners[b] == h.engine->priority())
            out.push_back(b);
    return out;
}

} // namespace

TEST_CASE("a host with different port rules is refused; the cluster keeps serving") {
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
        auto sim = cluster(seed + 10, 3);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        const auto epoch = sim.host(0).engine->epoch();
        auto c = default_config(4);
        c.rules[0].last_port = 80; // differs
        const auto j = sim.add_host(c);
        sim.run_until(sim.now() + 15 * kPeriod);
        CHECK(sim.host(j).engine->state() == HostState::refused);
        CHECK(sim.host(j).engine->refuse_reason() == RefuseReason::rules_differ);
        CHECK(sim.host(j).engine->buckets_owned(0) == 0);
        CHECK(sim.host(0).engine->epoch() == epoch);
        CHECK(sim.settled());
        CHECK(sim.max_double_ms() == 0);
        CHECK(has_event(sim.host(0), EventKind::host_refused));
    }
}

TEST_CASE("a host whose priority is taken is refused, and joins once the priority is free") {
    auto sim = cluster(20, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    const auto epoch = sim.host(0).engine->epoch();
    const auto dup = sim.add_host(default_config(2));
    sim.run_until(sim.now() + 15 * kPeriod);
    CHECK(sim.host(dup).engine->state() == HostState::refused);
    CHECK(sim.host(dup).engine->refuse_reason() == RefuseReason::priority_taken);
    CHECK(sim.host(1).engine->state() == HostState::converged);
    CHECK(sim.host(0).engine->epoch() == epoch);
    CHECK(sim.settled());
    CHECK(sim.max_double_ms() == 0);
    // The original host 2 dies: the refused one takes its place.
    sim.kill(1);
    REQUIRE(sim.run_until(
        [&] { return sim.settled() && sim.host(dup).engine->state() == HostState::converged; },
        sim.now() + 40 * kPeriod));
    CHECK(sim.host(0).engine->members() == 0x7);
}

TEST_CASE("drainstop hands the buckets over and reports the ones with connections dirty") {
    auto sim = cluster(30, 4);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto& drained = sim.host(1);
    const auto mine = owned_buckets(drained);
    REQUIRE(mine.size() == 1024);
    std::vector<std::uint32_t> busy(mine.begin(), mine.begin() + 40);
    for (auto b : busy)
        drained.live.slots[0].set(b);
    sim.run_until(sim.now() + 2 * kPeriod); // no quiet scan sees them yet: the release's does
    sim.command(1, {CommandKind::drainstop});
    CHECK(drained.engine->state() == HostState::draining);
    // The others take every bucket; the busy ones are dirty at their new owners.
    REQUIRE(sim.run_until(
        [&] {
            return drained.engine->buckets_owned(0) == 0 && sim.unowned(0) == 0 &&
                   sim.unowned(NLB_RULE_DEFAULT) == 0;
        },
        sim.now() + 10 * kPeriod));
    sim.run_until(sim.now() + 2 * kPeriod);
    CHECK(sim.max_double_ms() == 0);
    CHECK(drained.engine->state() == HostState::draining);
    for (auto b : busy) {
        CHECK((*drained.installed)[0].tracked_here[b]);
        const auto owner = (*sim.host(0).installed)[0].owners[b];
        REQUIRE(owner != 0);
        REQUIRE(owner != 2);
        CHECK((*sim.host(owner - 1).installed)[0].dirty_elsewhere[b]);
    }
    // Not-busy buckets are clean at their new owners.
    const auto quiet = mine.back();
    const auto quiet_owner = (*sim.host(0).installed)[0].owners[quiet];
    CHECK(!(*sim.host(quiet_owner - 1).installed)[0].dirty_elsewhere[quiet]);
    // The connections end: the host stops, and the buckets are clean.
    drained.live = LiveBuckets{};
    REQUIRE(sim.run_until([&] { return drained.engine->state() == HostState::stopped; },
                          sim.now() + 3 * kPeriod));
    CHECK(has_event(drained, EventKind::drain_complete));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
    sim.run_until(sim.now() + kPeriod); // its last heartbeat, with no dirty bucket, arrives
    for (std::size_t i : {0, 2, 3})
        CHECK((*sim.host(i).installed)[0].dirty_elsewhere.none());
}

TEST_CASE("connection scans are needed during hand-overs and drains, not when settled") {
    auto sim = cluster(31, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto quiet = [&](std::size_t i) { return !sim.host(i).engine->needs_scans(); };
    // Each host settles once the others' heartbeats say they hold their shares.
    auto all_quiet = [&] { return quiet(0) && quiet(1) && quiet(2); };
    CHECK(sim.run_until(all_quiet, sim.now() + 3 * kPeriod));

    // A drained rule: the host waits for its connections to end.
    sim.command(1, {CommandKind::rule_drain, 0});
    CHECK_FALSE(quiet(1));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
    CHECK(sim.run_until([&] { return quiet(0) && quiet(2); }, sim.now() + 3 * kPeriod));
    CHECK_FALSE(quiet(1));
    sim.command(1, {CommandKind::rule_enable, 0});
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
    CHECK(sim.run_until(all_quiet, sim.now() + 3 * kPeriod));

    // A join takes buckets from host 1, where connections live on: it holds them (dirty)
    // and needs every scan until they end.
    auto& giver = sim.host(0);
    for (auto b : owned_buckets(giver))
        giver.live.slots[0].set(b);
    sim.run_until(sim.now() + 2 * kPeriod); // no quiet scan sees them yet: the release's does
    CHECK(quiet(0));                        // connections in buckets it owns change nothing
    sim.add_host(default_config(4));
    CHECK(sim.run_until([&] { return !quiet(0); }, sim.now() + 10 * kPeriod));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 20 * kPeriod));
    CHECK(sim.run_until([&] { return quiet(1) && quiet(2) && quiet(3); }, sim.now() + 3 * kPeriod));
    CHECK_FALSE(quiet(0));
    giver.live = LiveBuckets{};
    CHECK(sim.run_until([&] { return quiet(0); }, sim.now() + 3 * kPeriod));
}

TEST_CASE("a converging host is scanned only when a scan can change what it does; a release "
          "rescans, and its dirty list reaches the new owner at once") {
    auto sim = cluster(37, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.run_until(sim.now() + 2 * kPeriod);
    // Connections open in host 1's buckets after its last scan (the simulator's quiet scans
    // wait 60 s): only the scan its release makes can see them.
    auto& giver = sim.host(0);
    const auto mine = owned_buckets(giver);
    for (auto b : mine)
        giver.live.slots[0].set(b);
    std::vector<std::uint64_t> scans_before;
    for (std::size_t i = 0; i < 3; ++i)
        scans_before.push_back(sim.host(i).scans);

    const auto joined_at = sim.now();
    sim.add_host(default_config(4));
    // Through the whole convergence: did a host that gives up nothing busy need a scan
    // other than in the two periods after it gave buckets up (a handshake the stack completes
    // just then is recorded wherever it falls); when did host 1 give up each busy bucket,
    // and when did its new owner take it? Host 2 records such a late connection in a
    // bucket it has just given up.
    std::uint64_t needed = 0;
    std::vector<std::int64_t> released(NLB_BUCKETS, -1), taken(NLB_BUCKETS, -1);
    std::vector<std::shared_ptr<const SlotViews>> seen(4);
    std::vector<std::int64_t> gave_up(4, -1);
    std::int64_t late = -1;
    std::uint32_t late_bucket = 0;
    const bool settled = sim.run_until(
        [&] {
            for (std::size_t i = 1; i < 4; ++i) {
                auto& h = sim.host(i);
                const auto me = h.engine->priority();
                if (h.installed != seen[i]) {
                    for (std::uint32_t b = 0; seen[i] && b < NLB_BUCKETS; ++b)
                        if ((*seen[i])[0].owners[b] == me && (*h.installed)[0].owners[b] != me) {
                            gave_up[i] = sim.now();
                            if (i == 1 && late < 0) {
                                late = sim.now();
                                late_bucket = b;
                                h.live.slots[0].set(b);
                            }
                        }
                    seen[i] = h.installed;
                }
                if (h.engine->needs_scans() &&
                    (gave_up[i] < 0 || sim.now() - gave_up[i] > 2 * kPeriod))
                    needed |= 1u << i;
            }
            for (auto b : mine) {
                const auto owner = (*giver.installed)[0].owners[b];
                if (owner == 1)
                    continue;
                if (released[b] < 0)
                    released[b] = sim.now();
                if (owner != 0 && taken[b] < 0 &&
                    (*sim.host(owner - 1).installed)[0].owners[b] == owner)
                    taken[b] = sim.now();
            }
            return sim.settled();
        },
        joined_at + 20 * kPeriod);
    REQUIRE(settled);
    CHECK(needed == 0);
    CHECK(sim.host(2).scans - scans_before[2] <= 3); // a release's and two periods' at most
    CHECK(sim.host(0).engine->needs_scans());        // it holds what it gave up
    // Host 2's late connection: a scan of those two periods finds it, and the bucket's new
    // owner learns it is dirty.
    REQUIRE(late >= 0);
    const auto late_owner = (*sim.host(1).installed)[0].owners[late_bucket];
    REQUIRE(late_owner != 0);
    REQUIRE(late_owner != 2);
    CHECK(sim.run_until(
        [&] { return (*sim.host(late_owner - 1).installed)[0].dirty_elsewhere[late_bucket]; },
        late + 4 * kPeriod));
    CHECK(giver.frames_withheld > 0); // the release's frames carried no dirty list
    CHECK(sim.max_double_ms() == 0);
    std::size_t moved = 0;
    for (auto b : mine) {
        if (released[b] < 0)
            continue;
        ++moved;
        const auto owner = (*giver.installed)[0].owners[b];
        REQUIRE(owner > 1);
        CHECK((*giver.installed)[0].tracked_here[b]);
        CHECK((*sim.host(owner - 1).installed)[0].dirty_elsewhere[b]);
        // The fresh frame follows within a quarter period (plus the network's delay), not
        // at the next half-period send.
        REQUIRE(taken[b] >= 0);
        CHECK(taken[b] - released[b] <= kPeriod / 4 + 10);
    }
    CHECK(moved > 0);
}

TEST_CASE("a release's rescan: its decision keeps everything the rescan brings") {
    SlotViews owned{};
    owned[0].owners[7] = 2;
    SlotViews moved = owned;
    CHECK_FALSE(gives_up(owned, moved, 2));
    moved[0].owners[7] = 3;
    CHECK(gives_up(owned, moved, 2));
    CHECK_FALSE(gives_up(owned, moved, 3)); // a take is no release

    Decision first;
    first.frames.push_back({1});
    first.events.push_back({});
    first.maps = std::make_shared<const SlotViews>(moved);
    Decision again;
    again.frames.push_back({2});
    again.events.push_back({});
    again.flow_seed = 42;
    again.switched = true;
    again.state = HostState::converged;
    again.next_tick = Millis{5};
    Decision kept = first;
    fold_rescan(kept, again, false);
    CHECK(kept.frames == std::vector<std::vector<std::uint8_t>>{{1}, {2}});
    CHECK(kept.events.size() == 2);
    CHECK(kept.maps == first.maps); // the rescan changed no map
    CHECK(kept.flow_seed == 42u);
    CHECK(kept.switched);
    CHECK(kept.state == HostState::converged);
    CHECK(kept.next_tick == Millis{5});
    fold_rescan(first, again, true); // a stale dirty list: the first frames do not go
    CHECK(first.frames == std::vector<std::vector<std::uint8_t>>{{2}});
}

TEST_CASE("dirty buckets expire after cleanup_delay_s") {
    Simulator sim(31, {});
    for (std::uint8_t p = 1; p <= 3; ++p) {
        auto c = default_config(p);
        c.cluster.cleanup_delay_s = 10;
        sim.add_host(c);
    }
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto& h = sim.host(2);
    const auto b = owned_buckets(h).front();
    h.live.slots[0].set(b);
    sim.run_until(sim.now() + 2 * kPeriod);
    sim.add_host(default_config(4)); // the join moves some of host 3's buckets
    REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
    if ((*h.installed)[0].owners[b] != 3) {
        CHECK((*h.installed)[0].tracked_here[b]);
        sim.run_until(sim.now() + 12 * kPeriod);
        CHECK(!(*h.installed)[0].tracked_here[b]);
    }
    // Whatever moved, nothing stays dirty past the delay.
    sim.run_until(sim.now() + 12 * kPeriod);
    CHECK((*h.installed)[0].tracked_here.none());
}

TEST_CASE("stop, start, suspend and resume") {
    auto sim = cluster(40, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.command(2, {CommandKind::stop});
    CHECK(sim.host(2).engine->state() == HostState::stopped);
    CHECK(sim.host(2).engine->buckets_owned(0) == 0);
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 0x3; },
                          sim.now() + 10 * kPeriod));
    CHECK(sim.max_double_ms() == 0);
    sim.command(2, {CommandKind::suspend});
    CHECK(sim.host(2).engine->state() == HostState::suspended);
    CHECK(!sim.host(2).engine->on_command({CommandKind::start}, Millis{sim.now()}));
    CHECK(sim.host(2).engine->state() == HostState::suspended);
    sim.command(2, {CommandKind::resume});
    CHECK(sim.host(2).engine->state() == HostState::stopped);
    sim.command(2, {CommandKind::start});
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 0x7; },
                          sim.now() + 20 * kPeriod));
    CHECK(sim.max_double_ms() == 0);
    CHECK(sim.host(2).engine->buckets_owned(0) >= 1365);
}

TEST_CASE("per-rule disable and drain move only that rule") {
    Simulator sim(50, {});
    for (std::uint8_t p = 1; p <= 3; ++p)
        sim.add_host(default_config(p, 2));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.command(0, {CommandKind::rule_disable, 1});
    CHECK(sim.host(0).engine->buckets_owned(1) == 0); // at once
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.unowned(1) == 0; },
                          sim.now() + 10 * kPeriod));
    CHECK(sim.host(0).engine->buckets_owned(1) == 0);
    CHECK(sim.host(0).engine->buckets_owned(0) >= 1365);
    CHECK(sim.host(1).engine->buckets_owned(1) == 2048);
    sim.command(1, {CommandKind::rule_drain, 0});
    REQUIRE(
        sim.run_until([&] { return sim.settled() && sim.host(1).engine->buckets_owned(0) == 0; },
                      sim.now() + 10 * kPeriod));
    CHECK(sim.max_double_ms() == 0);
    sim.command(0, {CommandKind::rule_enable, -1});
    REQUIRE(
        sim.run_until([&] { return sim.settled() && sim.host(0).engine->buckets_owned(1) >= 1365; },
                      sim.now() + 10 * kPeriod));
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("weights and single-host rules in a running cluster") {
    Simulator sim(60, {});
    for (std::uint8_t p = 1; p <= 4; ++p) {
        auto c = default_config(p, 2);
        c.rules[1].mode = RuleMode::single;
        c.host.rules[0].load_weight = p == 4 ? 0 : static_cast<std::uint8_t>(p * 10);
        c.host.rules[1].handling_priority = static_cast<std::uint8_t>(10 - p); // host 4 best
        sim.add_host(c);
    }
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    CHECK(sim.host(3).engine->buckets_owned(0) == 0);
    CHECK(sim.host(0).engine->buckets_owned(0) == 683); // 4096 * 10/60 = 682.7
    CHECK(sim.host(2).engine->buckets_owned(0) == 2048);
    CHECK(sim.host(3).engine->buckets_owned(1) == NLB_BUCKETS);
    sim.kill(3);
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.unowned(1) == 0; },
                          sim.now() + 10 * kPeriod));
    CHECK(sim.host(2).engine->buckets_owned(1) == NLB_BUCKETS);
}

TEST_CASE("a weight change at run time moves buckets without double owners or lost connections") {
    auto sim = cluster(70, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto& changed = sim.host(0);
    const auto before = owned_buckets(changed);
    REQUIRE(before.size() >= 1365);
    std::vector<std::uint32_t> busy(before.begin(), before.begin() + 30);
    for (auto b : busy)
        changed.live.slots[0].set(b);
    sim.run_until(sim.now() + 2 * kPeriod); // no quiet scan sees them yet: the release's does
    const auto epoch = changed.engine->epoch();

    // Weight 0 on rule 0: host 1 gives every bucket of that rule away, keeps its connections.
    std::vector<HostRuleParams> params(1);
    params[0].load_weight = 0;
    REQUIRE(changed.engine->set_host_rules(params, Millis(sim.now())));
    REQUIRE(sim.run_until([&] { return sim.settled() && changed.engine->buckets_owned(0) == 0; },
                          sim.now() + 10 * kPeriod));
    CHECK(changed.engine->epoch() != epoch);
    CHECK(sim.unowned(0) == 0);
    CHECK(sim.host(1).engine->buckets_owned(0) == 2048);
    CHECK(sim.max_double_ms() == 0);
    for (auto b : busy) {
        CHECK((*changed.installed)[0].tracked_here[b]);
        const auto owner = (*sim.host(1).installed)[0].owners[b];
        CHECK((*sim.host(owner - 1).installed)[0].dirty_elsewhere[b]);
    }

    // Back to twice the others' weight: 2048 / 1024 / 1024.
    params[0].load_weight = 100;
    for (std::size_t i = 1; i < 3; ++i) {
        std::vector<HostRuleParams> other(1);
        other[0].load_weight = 50;
        REQUIRE(sim.host(i).engine->set_host_rules(other, Millis(sim.now())));
    }
    REQUIRE(changed.engine->set_host_rules(params, Millis(sim.now())));
    REQUIRE(sim.run_until([&] { return sim.settled() && changed.engine->buckets_owned(0) == 2048; },
                          sim.now() + 10 * kPeriod));
    CHECK(sim.host(2).engine->buckets_owned(0) == 1024);
    CHECK(sim.max_double_ms() == 0);

    // Parameters that do not fit the rules change nothing.
    CHECK_FALSE(changed.engine->set_host_rules({}, Millis(sim.now())));
    params[0].load_weight = 101;
    CHECK_FALSE(changed.engine->set_host_rules(params, Millis(sim.now())));
    CHECK(changed.engine->config().host.rules[0].load_weight == 100);
}

TEST_CASE("replayed and forged frames have no effect") {
    const std::vector<std::uint8_t> key(32, 0x5a);
    auto sim = cluster(70, 3, key);
    sim.capture = true;
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto old_frames = sim.captured();
    sim.capture = false;
    const auto epoch = sim.host(0).engine->epoch();
    const auto digest = sim.host(0).engine->map_digest();

    // Replays of everything seen so far, to every host.
    for (const auto& f : old_frames)
        for (std::size_t i = 0; i < 3; ++i)
            sim.inject(i, f);
    sim.run_until(sim.now() + 3 * kPeriod);
    CHECK(sim.host(0).engine->counters().replayed > 0);
    CHECK(sim.host(0).engine->epoch() == epoch);
    CHECK(sim.settled());

    // Forgeries: a flipped bit, a frame signed with another key, a frame without MAC.
    auto forged = old_frames.back();
    forged[20] ^= 1;
    Heartbeat fake;
    fake.cluster_ip = 0xc0000264;
    fake.priority = 9;
    fake.state = HostState::converged;
    fake.nonce = 1;
    fake.sequence = 1;
    fake.rule_count = 1;
    fake.flags = Heartbeat::kFlagAuthenticated;
    auto wrong_key = encode_heartbeat(fake);
    HeartbeatAuth(std::vector<std::uint8_t>(32, 0x11)).sign(wrong_key);
    fake.flags = 0;
    auto unsigned_frame = encode_heartbeat(fake);
    for (std::size_t i = 0; i < 3; ++i) {
        sim.inject(i, forged);
        sim.inject(i, wrong_key);
        sim.inject(i, unsigned_frame);
        sim.inject(i, {0x4e, 0x4c, 0x42});
    }
    sim.run_until(sim.now() + 3 * kPeriod);
    CHECK(sim.host(0).engine->counters().bad_mac >= 2);
    CHECK(sim.host(0).engine->counters().unauthenticated >= 1);
    CHECK(sim.host(0).engine->counters().malformed >= 1);
    CHECK(sim.host(0).engine->epoch() == epoch);
    CHECK(sim.host(0).engine->map_digest() == digest);
    CHECK(sim.settled());

    // A dead host's old frames do not bring it back.
    sim.kill(2);
    REQUIRE(sim.run_until([&] { return sim.settled() && sim.host(0).engine->members() == 0x3; },
                          sim.now() + 15 * kPeriod));
    const auto after = sim.host(0).engine->epoch();
    for (const auto& f : old_frames)
        sim.inject(0, f);
    sim.run_until(sim.now() + 3 * kPeriod);
    CHECK(sim.host(0).engine->epoch() == after);
    CHECK(sim.host(0).engine->members() == 0x3);
    CHECK(!has_event(sim.host(0), EventKind::unauthenticated));
}

TEST_CASE("without a key frames are accepted and the host warns once") {
    auto sim = cluster(80, 2);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    CHECK(count_events(sim.host(0), EventKind::unauthenticated) == 1);
    CHECK(sim.host(0).engine->counters().accepted > 0);
}

TEST_CASE("frames of other clusters and unknown versions are skipped") {
    auto sim = cluster(90, 2);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    const auto epoch = sim.host(0).engine->epoch();
    Heartbeat other;
    other.cluster_ip = 0x0a000001;
    other.priority = 7;
    other.state = HostState::converged;
    other.nonce = 5;
    other.sequence = 1;
    sim.inject(0, encode_heartbeat(other));
    other.cluster_ip = 0xc0000264;
    auto v2 = encode_heartbeat(other);
    v2[4] = 2; // major version 2
    sim.inject(0, v2);
    sim.run_until(sim.now() + 3 * kPeriod);
    CHECK(sim.host(0).engine->counters().other_cluster == 1);
    CHECK(sim.host(0).engine->counters().bad_version == 1);
    CHECK(sim.host(0).engine->epoch() == epoch);
}

} // namespace test_commands
