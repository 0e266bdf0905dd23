// Heartbeats sized to the MTUs on the segment (docs/convergence.md, "Frame size"). A frame
// longer than the sender's MTU is not sent; one longer than a receiver's is dropped before
// anything reads it. Frames were coarsened to 1,500 bytes whatever the MTU: on a segment of
// 1,300 bytes every host fell silent whenever a hand-over made its dirty list long, and the
// cluster converged again and again until the dirty buckets expired; a host whose MTU was
// below its peers' heard only their short frames, counted them dead, served alone and drew
// them into yielding to it (requests answered twice, then one host serving everything).
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_frame_budget {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKey(32, 0x6b);

EngineConfig keyed(std::size_t priority, std::size_t rules) {
    auto c = default_config(static_cast<std::uint8_t>(priority), rules);
    c.cluster.key = kKey;
    return c;
}

// Each host's interface MTU, as the segment enforces it: a frame longer than the sender's is
// not sent, one longer than the receiver's is dropped. A second-path copy (IPv4 and UDP
// headers, 28 bytes) longer than the sender's MTU leaves in fragments of that size.
struct Segment {
    std::vector<std::size_t> mtu;
    std::size_t largest = 0;    // the longest heartbeat any host sent on the segment
    std::uint64_t too_long = 0; // frames (and copies) dropped for their length
    void install(Simulator& sim) {
        sim.drop = [this](std::size_t from, std::size_t to, const std::vector<std::uint8_t>& f) {
            if (!is_map_chunk(f)) // those are kMinMtu long, which every MTU here takes
                largest = std::max(largest, f.size());
            const bool drop = f.size() > mtu[from] || f.size() > mtu[to];
            too_long += drop;
            return drop;
        };
        sim.drop_contact = [this](std::size_t from, std::size_t to,
                                  const std::vector<std::uint8_t>& f) {
            const bool drop = std::min(f.size() + 28, mtu[from]) > mtu[to];
            too_long += drop;
            return drop;
        };
    }
};

std::size_t convergences(SimHost& h) {
    return count_events(h, EventKind::convergence_started);
}

// Connections in every bucket the host owns now, in every slot: whatever it gives up later
// stays dirty (its heartbeats' dirty list long, the frames coarsened to their budget).
void hold_everything(SimHost& h) {
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if ((*h.installed)[s].owners[b] == h.engine->priority())
                h.live.slots[s].set(b);
}

struct JoinOutcome {
    bool settled = false;
    std::int64_t max_double_ms = 0;
    std::size_t convergences_of_peers = 0; // hosts 1-3, from the join on
    std::size_t largest = 0;
    std::uint64_t too_long = 0;
    bool named_host_4 = false; // hosts 1-3 said whose MTU cuts their frames
};

// Hosts 1-3 (MTU 1500) hold connections in every bucket of 4 rules; host 4, whose MTU is
// 1300, joins: their hand-over to it makes their dirty lists long. `told`: host 4's agent
// tells its engine the MTU (ConvergenceEngine::set_mtu), as it does now.
JoinOutcome join_with_small_mtu(std::uint64_t seed, bool told) {
    Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
    Segment segment{{1500, 1500, 1500, 1300}};
    segment.install(sim);
    for (std::size_t i = 0; i < 3; ++i)
        sim.add_host(keyed(i + 1, 4));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    for (std::size_t i = 0; i < 3; ++i)
        hold_everything(sim.host(i));
    sim.run_until(sim.now() + 2 * kPeriod);
    sim.reset_double_stats();
    segment.largest = 0;
    const auto j = sim.add_host(keyed(4, 4), false);
    if (told)
        sim.host(j).engine->set_mtu(1300);
    sim.command(j, {CommandKind::start});
    JoinOutcome out;
    std::size_t before = 0;
    for (std::size_t i = 0; i < 3; ++i)
        before += convergences(sim.host(i));
    out.settled = sim.run_until([&] { return sim.settled(); }, sim.now() + 40 * kPeriod);
    // Then as long again: a cluster that settled only for a moment shows it here.
    sim.run_until(sim.now() + 20 * kPeriod);
    out.settled = out.settled && sim.settled();
    out.max_double_ms = sim.max_double_ms();
    for (std::size_t i = 0; i < 3; ++i) {
        out.convergences_of_peers += convergences(sim.host(i));
        out.named_host_4 = out.named_host_4 || has_event(sim.host(i), EventKind::frame_budget, 4);
    }
    out.convergences_of_peers -= before;
    out.largest = segment.largest;
    out.too_long = segment.too_long;
    return out;
}

} // namespace

TEST_CASE("a host whose MTU is below its peers' hears their frames through a hand-over") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        INFO("seed " << seed);
        const JoinOutcome now = join_with_small_mtu(seed, true);
        CHECK(now.settled);
        CHECK(now.max_double_ms == 0);
        CHECK(now.convergences_of_peers <= 3); // one each
        CHECK(now.too_long == 0);
        // 1300 less the second path's headers: the copies by UDP reach host 4 whole.
        CHECK(now.largest <= 1300 - kSecondPathOverhead);
        CHECK(now.named_host_4);
        // The same join with host 4 not saying its MTU, as before: the fault is real here.
        const JoinOutcome before = join_with_small_mtu(seed, false);
        CHECK(before.too_long > 0);
        CHECK(before.largest > 1300);
        CHECK((!before.settled || before.max_double_ms > 0 || before.convergences_of_peers > 3));
    }
}

TEST_CASE("on a segment whose MTU is below 1500 the frames of a 16-host join fit it") {
    for (const bool told : {true, false}) {
        INFO((told ? "every host told its MTU" : "no host told (as before)"));
        Simulator sim(1600 + told, {});
        Segment segment{std::vector<std::size_t>(17, 1400)};
        segment.install(sim);
        std::array<std::uint32_t, NLB_MAX_RULES> loads{};
        loads.fill(500);
        const auto add = [&](std::size_t i) {
            const auto h = sim.add_host(keyed(i + 1, NLB_MAX_RULES), false);
            if (told)
                sim.host(h).engine->set_mtu(1400);
            sim.host(h).engine->set_loads(0xffffffff, loads);
            sim.command(h, {CommandKind::start});
        };
        for (std::size_t i = 0; i < 16; ++i)
            add(i);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 60 * kPeriod));
        for (std::size_t i = 0; i < 16; ++i)
            hold_everything(sim.host(i));
        sim.run_until(sim.now() + 2 * kPeriod);
        sim.reset_double_stats();
        segment.largest = 0;
        segment.too_long = 0;
        std::size_t before = 0;
        for (std::size_t i = 0; i < 16; ++i)
            before += convergences(sim.host(i));
        add(16);
        bool settled = sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod);
        sim.run_until(sim.now() + 10 * kPeriod);
        settled = settled && sim.settled();
        std::size_t after = 0;
        std::uint64_t oversized = 0;
        for (std::size_t i = 0; i < 16; ++i) {
            after += convergences(sim.host(i));
            oversized += sim.host(i).engine->counters().oversized;
        }
        CHECK(sim.max_double_ms() == 0);
        if (told) {
            CHECK(settled);
            CHECK(segment.largest <= 1400);
            CHECK(segment.too_long == 0);
            CHECK(oversized == 0);
            CHECK(after - before <= 16);
            for (std::size_t i = 0; i < 16; ++i)
                CHECK(has_event(sim.host(i), EventKind::frame_budget,
                                sim.host(i).engine->priority()));
        } else {
            // Frames of up to 1,500 bytes: every long one lost, the join converging again and
            // again.
            CHECK(segment.largest > 1400);
            CHECK(segment.too_long > 0);
            CHECK((!settled || after - before > 16));
        }
    }
}

TEST_CASE("the frame budget: this host's MTU, a peer's smaller one, bounded, and back") {
    Simulator sim(77, {.loss = 0.0});
    for (std::size_t i = 0; i < 3; ++i)
        sim.add_host(keyed(i + 1, 1), false);
    sim.host(0).engine->set_mtu(1400);
    sim.host(1).engine->set_mtu(9000);
    sim.host(2).engine->set_mtu(1300);
    for (std::size_t i = 0; i < 3; ++i)
        sim.command(i, {CommandKind::start});
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    const auto budget = [&](std::size_t i) {
        return sim.host(i).engine->frame_budget(Millis{sim.clock_of(i)});
    };
    // Host 1 (1400): host 3's 1300 is below its own, so copies must fit it whole.
    CHECK(budget(0).bytes == 1300 - kSecondPathOverhead);
    CHECK(budget(0).by == 3);
    CHECK(budget(0).mtu == 1300);
    // Host 2 (9000): never above 1500; host 3's cuts it as it does host 1's.
    CHECK(budget(1).bytes == 1300 - kSecondPathOverhead);
    // Host 3 (1300): its own; its peers' are larger, and fragments of its MTU fit them.
    CHECK(budget(2).bytes == 1300);
    CHECK(budget(2).by == 3);
    CHECK(sim.host(0)
              .engine->problem(Millis{sim.clock_of(0)})
              .find("host 3's interface MTU "
                    "is 1300") != std::string::npos);
    CHECK(sim.host(2).engine->problem(Millis{sim.clock_of(2)}).empty());

    // Host 3 gone: a tolerance later its MTU cuts nothing. Host 1's own is then below host
    // 2's: host 2's copies to host 1 must fit it whole.
    sim.kill(2);
    sim.run_until(sim.now() + 8 * kPeriod);
    CHECK(budget(0).bytes == 1400);
    CHECK(budget(0).by == 1);
    CHECK(budget(1).bytes == 1400 - kSecondPathOverhead);
    CHECK(budget(1).by == 1);
    CHECK(sim.host(0).engine->problem(Millis{sim.clock_of(0)}).empty());
    // Host 1's MTU raised (ip link set mtu 1500): host 1 sends frames of 1,500 bytes again, and
    // says so; host 2 (9000) as long as a copy whole fits a peer at 1,500.
    sim.host(0).engine->set_mtu(1500);
    sim.run_until(sim.now() + 3 * kPeriod);
    CHECK(budget(0).bytes == kHeartbeatMaxSize);
    CHECK(budget(1).bytes == kHeartbeatMaxSize - kSecondPathOverhead);
    CHECK(budget(1).by == 0);
    bool again = false;
    for (const Event& e : sim.host(0).events)
        again = again || (e.kind == EventKind::frame_budget &&
                          e.text.find("1500 bytes again") != std::string::npos);
    CHECK(again);
}

TEST_CASE("a peer's MTU cuts no frame below what a map chunk needs") {
    Simulator sim(78, {.loss = 0.0});
    sim.add_host(keyed(1, 1));
    sim.add_host(keyed(2, 1), false);
    sim.host(1).engine->set_mtu(576); // below what the agent attaches to: said all the same
    sim.command(1, {CommandKind::start});
    sim.run_until(sim.now() + 10 * kPeriod);
    const auto b = sim.host(0).engine->frame_budget(Millis{sim.clock_of(0)});
    CHECK(b.bytes == kFrameBudgetMin);
    CHECK(b.by == 2);
}

TEST_CASE("a heartbeat longer than the MTU allows is counted and said once") {
    Simulator sim(79, {.loss = 0.0});
    // 32 rules: a frame of some 370 bytes without a dirty list, against an MTU of 300.
    sim.add_host(keyed(1, NLB_MAX_RULES), false);
    sim.add_host(keyed(2, NLB_MAX_RULES));
    sim.host(0).engine->set_mtu(300);
    sim.command(0, {CommandKind::start});
    sim.run_until(sim.now() + 5 * kPeriod);
    const auto& h = sim.host(0);
    CHECK(h.engine->counters().oversized >= 5);
    CHECK(count_events(h, EventKind::frame_oversized) == 1);
    CHECK(h.engine->problem(Millis{sim.clock_of(0)}).find("do not fit the 300 bytes") !=
          std::string::npos);
    CHECK(h.engine->counters().oversized <= h.engine->counters().sent);
}

TEST_CASE("a jumbo host's second-path copies reach its peers at 1500 through a hand-over") {
    for (std::uint64_t seed = 1; seed <= 2; ++seed) {
        INFO("seed " << seed);
        // Host 1 at 9000 (jumbo frames), its peers at 1500, which say nothing of their MTU:
        // host 1's copies by UDP leave whole, and must fit 1500 with their IP and UDP headers.
        Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
        Segment segment{{9000, 1500, 1500, 1500}};
        segment.install(sim);
        for (std::size_t i = 0; i < 3; ++i) {
            sim.add_host(keyed(i + 1, NLB_MAX_RULES), false);
            sim.host(i).engine->set_mtu(segment.mtu[i]);
            sim.command(i, {CommandKind::start});
        }
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
        for (std::size_t i = 0; i < 3; ++i)
            hold_everything(sim.host(i));
        sim.run_until(sim.now() + 2 * kPeriod);
        segment.largest = 0;
        segment.too_long = 0;
        sim.add_host(keyed(4, NLB_MAX_RULES));
        sim.run_until([&] { return sim.settled(); }, sim.now() + 40 * kPeriod);
        CHECK(segment.largest > 1500 - kSecondPathOverhead); // the dirty lists were long
        CHECK(segment.too_long == 0);
        CHECK(sim.host(0).engine->frame_budget(Millis{sim.clock_of(0)}).bytes ==
              kHeartbeatMaxSize - kSecondPathOverhead);
        // Said once, as what it is (not "again").
        std::size_t said = 0;
        for (const Event& e : sim.host(0).events)
            if (e.kind == EventKind::frame_budget) {
                ++said;
                CHECK(e.text.find("MTU is 9000 (jumbo frames)") != std::string::npos);
            }
        CHECK(said == 1);
    }
}

} // namespace test_frame_budget
