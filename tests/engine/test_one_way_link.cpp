// A link that fails one way (docs/convergence.md, "A link that fails one way"): a switch port that
// stops delivering to a host, a NIC whose receive path died, a fibre broken one way. The host hears
// nobody on either path and no client's packet reaches it, while its own frames still leave.
// It counted its peers dead, formed an epoch alone over every bucket, and its peers, counted
// out of it or meeting a group whose leader never answered, let go of theirs for it: every
// request lost until the fault ended (fault test rx_dead, the build before: with the port
// dark for 8 s, 7,517 of 7,517). Its agent sees no peer's frame and no client's for two
// periods and tells the engine, as for a link down (set_receiving's notice here).
#include <catch2/catch.hpp>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_one_way_link {

namespace {

constexpr std::int64_t kPeriod = 1000;

EngineConfig keyed(std::size_t priority) {
    auto c = default_config(static_cast<std::uint8_t>(priority));
    c.cluster.key.assign(32, 0x6b);
    return c;
}

struct Outcome {
    bool yielded = false;            // a host that still receives yielded to the deaf one
    std::int64_t owned_again = -1;   // ms after the fault: every bucket owned by the others
    std::size_t owned_by_others = 0; // buckets the others own at the end of the fault
    std::int64_t max_double_ms = 0;
    bool settled_after = false;
};

Outcome run(std::uint64_t seed, std::size_t hosts, std::int64_t notice, bool told) {
    Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
    sim.link_notice = told;
    for (std::size_t i = 0; i < hosts; ++i)
        sim.add_host(keyed(i + 1));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    sim.run_until(sim.now() + 2 * kPeriod + static_cast<std::int64_t>(seed) * 137);
    sim.reset_double_stats();
    const std::size_t deaf = seed % hosts;
    const std::int64_t at = sim.now();
    sim.set_receiving(deaf, false, notice);
    Outcome out;
    const auto others_own_all = [&] {
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (sim.owners(0, b) != 1)
                return false;
        return true;
    };
    if (sim.run_until(others_own_all, at + 20 * kPeriod))
        out.owned_again = sim.now() - at;
    sim.run_until(at + 30 * kPeriod);
    for (std::size_t i = 0; i < hosts; ++i) {
        if (i == deaf)
            continue;
        out.yielded = out.yielded || has_event(sim.host(i), EventKind::partition_yield);
        out.owned_by_others += sim.host(i).engine->buckets_owned(0);
    }
    sim.set_receiving(deaf, true, notice);
    out.settled_after = sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod);
    out.max_double_ms = sim.max_double_ms();
    return out;
}

} // namespace

TEST_CASE("a host that receives nothing while its frames still leave never takes the cluster's "
          "buckets from its peers") {
    for (std::size_t hosts : {3, 4, 5})
        for (std::int64_t notice : {1500, 2000, 2500})
            for (std::uint64_t seed = 1; seed <= 3; ++seed) {
                INFO(hosts << " hosts, noticed after " << notice << " ms, seed " << seed);
                const Outcome o = run(seed * 10 + hosts, hosts, notice, true);
                CHECK_FALSE(o.yielded);
                CHECK(o.owned_by_others == NLB_BUCKETS);
                // Its peers take its share once they count it dead, a tolerance after its last
                // frame, the notice's, and once what its last frames said lapses: they named
                // its peers, late there, in grace to each other (section 11), which every
                // taker honours a tolerance and a period (measured: up to 10.5 periods from
                // the fault, against 5.7 for a host killed at once).
                CHECK(o.owned_again >= 0);
                CHECK(o.owned_again <= 2 * 5 * kPeriod + 2 * kPeriod);
                CHECK(o.max_double_ms == 0);
                CHECK(o.settled_after);
            }
}

TEST_CASE("a host that receives nothing, its agent not noticing: its peers let go of every "
          "bucket for it (the build before)") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        INFO("seed " << seed);
        // It forms an epoch alone; its peers, counted out of it, release everything
        // (dropped_by) or yield (a leader that never answers): nobody serves any client.
        const Outcome o = run(seed * 10 + 4, 4, 2000, false);
        CHECK(o.owned_by_others == 0);
    }
}

} // namespace test_one_way_link

namespace test_one_way_link {

namespace {

// Hosts 1-3 settled, each agent running the watch (Simulator::receive_watch).
void settled_three(Simulator& sim) {
    sim.receive_watch = true;
    for (std::size_t i = 0; i < 3; ++i)
        sim.add_host(keyed(i + 1));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    sim.run_until(sim.now() + 2 * kPeriod);
}

std::size_t link_downs(SimHost& h) {
    return count_events(h, EventKind::link_down);
}

} // namespace

TEST_CASE("the watch: a survivor whose two peers crashed together serves once a client's frame "
          "came, however seldom they come") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
        settled_three(sim);
        sim.kill(1);
        sim.kill(2);
        // A quiet segment: the watch cannot tell this from its own receive path failing, and
        // waits for a client's frame (docs/convergence.md, "A link that fails one way").
        sim.run_until(sim.now() + 4 * kPeriod);
        CHECK_FALSE(sim.host(0).engine->link_up());
        // Then a client now and again (a TCP SYN retried after 1 s, 2 s, 4 s, ...).
        for (int k = 0; k < 10; ++k) {
            sim.client_frame();
            sim.run_until(sim.now() + 3 * kPeriod);
        }
        CHECK(sim.host(0).engine->link_up());
        CHECK(sim.host(0).engine->buckets_owned(0) == NLB_BUCKETS);
        // One link_down: the first client's frame ended it.
        CHECK(link_downs(sim.host(0)) == 1);
    }
}

// Every host's watch fires in the blackout. Silent while down, none heard a peer again and
// each waited for a client's frame, however long that took (a review's find); before the
// watch, a blackout shorter than a tolerance changed nothing. Down, a host's frames are
// flagged (kFlagLinkDown) and count as heard, nothing else, so each hears the others again.
TEST_CASE("the watch: a segment dark for three periods on a quiet segment, every host's watch "
          "fires, and the cluster comes back without a client's frame") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
        settled_three(sim);
        const std::int64_t from = sim.now(), to = from + 3 * kPeriod;
        sim.drop = [&](std::size_t, std::size_t, const std::vector<std::uint8_t>&) {
            return sim.now() >= from && sim.now() < to;
        };
        sim.drop_contact = sim.drop;
        sim.run_until(to);
        std::size_t down = 0;
        for (std::size_t i = 0; i < 3; ++i)
            down += !sim.host(i).engine->link_up();
        CHECK(down == 3); // the watch cannot tell this from its receive path failing
        sim.run_until(to + 30 * kPeriod);
        CHECK(sim.settled());
        for (std::size_t i = 0; i < 3; ++i)
            CHECK(sim.host(i).engine->link_up());
        std::size_t owned = 0;
        for (std::size_t i = 0; i < 3; ++i)
            owned += sim.host(i).engine->buckets_owned(0);
        CHECK(owned == NLB_BUCKETS);
    }
}

} // namespace test_one_way_link

namespace test_one_way_link {

namespace {

// `hosts` hosts whose agents run the watch, told nothing else (no link notice), with or
// without a gateway on the segment for the watch to ask (ReceiveProbe).
void settled_watched(Simulator& sim, std::size_t hosts, bool gateway) {
    sim.receive_watch = true;
    sim.gateway = gateway;
    sim.link_notice = false;
    for (std::size_t i = 0; i < hosts; ++i)
        sim.add_host(keyed(i + 1));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
    sim.run_until(sim.now() + 2 * kPeriod);
}

bool owns_all(Simulator& sim, std::size_t i) {
    return sim.host(i).engine->buckets_owned(0) == NLB_BUCKETS;
}

} // namespace

// A cluster of two, the most common: its peer's death on a quiet segment looks the same as its
// own receive path failing, and without a question to the segment the watch cannot apply.
// The build before (and without a gateway now): the host cut off formed an epoch alone, the
// other let go of every bucket for it, and nobody served until the fault ended.
TEST_CASE("two hosts: one receives nothing while its frames still leave; its watch asks the "
          "gateway, hears no answer, and the other host takes every bucket") {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        for (bool gateway : {true, false}) {
            INFO("seed " << seed << (gateway ? ", a gateway" : ", no gateway"));
            Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
            settled_watched(sim, 2, gateway);
            sim.run_until(sim.now() + static_cast<std::int64_t>(seed) * 137);
            sim.reset_double_stats();
            const std::size_t deaf = seed % 2, other = 1 - deaf;
            const std::int64_t at = sim.now();
            sim.set_receiving(deaf, false);
            const bool taken =
                sim.run_until([&] { return owns_all(sim, other); }, at + 20 * kPeriod);
            sim.run_until(at + 25 * kPeriod);
            if (gateway) {
                // Noticed after two periods, then as in the larger clusters above.
                CHECK(taken);
                CHECK(sim.now() - at <= 25 * kPeriod);
                CHECK(owns_all(sim, other));
                CHECK_FALSE(sim.host(deaf).engine->link_up());
                CHECK_FALSE(has_event(sim.host(other), EventKind::partition_yield));
            } else {
                CHECK(sim.host(other).engine->buckets_owned(0) == 0);
            }
            sim.set_receiving(deaf, true);
            CHECK(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
            CHECK(sim.host(deaf).engine->link_up());
            CHECK(sim.max_double_ms() == 0);
        }
    }
}

TEST_CASE("two hosts, the peer crashed on a quiet segment: the gateway answers the survivor's "
          "watch, which never goes down, and the survivor takes every bucket") {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
        settled_watched(sim, 2, true);
        const std::size_t dead = seed % 2, survivor = 1 - dead;
        const std::int64_t at = sim.now();
        sim.kill(dead);
        // No client's frame all along: only the gateway's answers prove the receive path.
        CHECK(sim.run_until([&] { return owns_all(sim, survivor); }, at + 20 * kPeriod));
        // Its watchdog out and counted dead, a tolerance after its last frame; its buckets a
        // period later (section 3, "Hand-over"), then agreement alone.
        CHECK(sim.now() - at <= 8 * kPeriod);
        sim.run_until(sim.now() + 10 * kPeriod);
        CHECK(sim.host(survivor).engine->link_up());
        CHECK(count_events(sim.host(survivor), EventKind::link_down) == 0);
    }
}

// The price of asking: a gateway that does not answer (down, or it ignores ARP) on a quiet
// segment, the peer crashed, is taken for the receive path failing. The survivor goes down,
// and serves once a client's frame came (a SYN retried), after its start wait.
TEST_CASE("two hosts, the peer crashed on a quiet segment and the gateway silent: the survivor "
          "goes down and serves a start wait after a client's frame") {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
        settled_watched(sim, 2, true);
        sim.gateway_silent = true;
        const std::size_t dead = seed % 2, survivor = 1 - dead;
        sim.kill(dead);
        sim.run_until(sim.now() + 8 * kPeriod);
        CHECK_FALSE(sim.host(survivor).engine->link_up());
        CHECK(sim.host(survivor).engine->buckets_owned(0) == 0);
        const std::int64_t client_at = sim.now();
        sim.client_frame();
        CHECK(sim.run_until([&] { return owns_all(sim, survivor); }, client_at + 20 * kPeriod));
        // Back up at its next tick, alone: it listens a tolerance before it serves alone.
        CHECK(sim.now() - client_at <= 5 * kPeriod + 2 * kPeriod);
        CHECK(count_events(sim.host(survivor), EventKind::link_down) == 1);
    }
}

TEST_CASE("three hosts, two crash together on a quiet segment: with a gateway to ask, the "
          "survivor serves without waiting for a client's frame") {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
        settled_watched(sim, 3, true);
        const std::int64_t at = sim.now();
        sim.kill(1);
        sim.kill(2);
        CHECK(sim.run_until([&] { return owns_all(sim, 0); }, at + 20 * kPeriod));
        CHECK(sim.now() - at <= 8 * kPeriod);
        CHECK(count_events(sim.host(0), EventKind::link_down) == 0);
    }
}

// The watch by itself (the agent's restart at a re-attach): a new engine has heard nobody, and
// the previous engine's peers say nothing of what it should hear.
TEST_CASE("the watch: after a restart it waits for a peer of the new engine before it watches") {
    ReceiveWatch w;
    const auto none = [] { return std::uint64_t{0}; };
    const auto ask = [] {};
    CHECK(w.receiving(0, kPeriod, 10, 3, false, none, ask)); // heard 10 frames, 3 peers
    CHECK(w.receiving(kPeriod + kPeriod / 2, kPeriod, 10, 3, false, none, ask)); // a first look
    CHECK_FALSE(w.receiving(3 * kPeriod, kPeriod, 10, 3, false, none, ask));     // then silence
    w.restart(4 * kPeriod); // re-attached: a new engine, its count from 0
    for (std::int64_t t = 4 * kPeriod; t <= 10 * kPeriod; t += kPeriod / 2)
        CHECK(w.receiving(t, kPeriod, 0, 0, false, none, ask));
    CHECK(w.receiving(11 * kPeriod, kPeriod, 5, 2, false, none, ask)); // its peers heard
    CHECK(w.receiving(12 * kPeriod + kPeriod / 2, kPeriod, 5, 2, false, none, ask));
    CHECK_FALSE(w.receiving(14 * kPeriod, kPeriod, 5, 2, false, none, ask));
}

} // namespace test_one_way_link

namespace test_one_way_link {

// A heartbeat lost (or late) is routine: the watch's first look, a period after the peer's last
// frame, asks the gateway, which answers. Taken for the peer's death, that answer ended the watch
// until the peer was heard again, and a port that stopped delivering in that moment went
// unnoticed: the host formed an epoch alone and its peer let go of every bucket for it (seed 4
// of the test above with the fault two periods after settling did so).
TEST_CASE("two hosts: the port stops delivering just after a heartbeat of the peer was lost; the "
          "watch still notices and the other host takes every bucket") {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        for (std::int64_t after : {1100, 1300, 1500, 1700}) {
            INFO("seed " << seed << ", the port dead " << after << " ms after the loss began");
            Simulator sim(seed, {.loss = 0.0, .delay_min_ms = 1, .delay_max_ms = 10});
            settled_watched(sim, 2, true);
            const std::size_t deaf = seed % 2, other = 1 - deaf;
            // Everything the peer sends it lost from now on; its port dies a moment later.
            const std::int64_t from = sim.now();
            sim.drop = [&](std::size_t, std::size_t to, const std::vector<std::uint8_t>&) {
                return to == deaf && sim.now() >= from;
            };
            sim.drop_contact = sim.drop;
            sim.run_until(from + after);
            sim.reset_double_stats();
            sim.set_receiving(deaf, false);
            CHECK(sim.run_until([&] { return owns_all(sim, other); }, from + 20 * kPeriod));
            CHECK_FALSE(sim.host(deaf).engine->link_up());
            sim.drop = nullptr;
            sim.drop_contact = nullptr;
            sim.set_receiving(deaf, true);
            CHECK(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
            CHECK(sim.max_double_ms() == 0);
        }
    }
}

// A host restarted behind the port that stopped delivering (its agent restarted, the machine
// rebooted to mend it) hears no peer: the watch applied only to a host that had, so it formed an
// epoch alone beside its peer, and the two owned buckets together once the port delivered again
// (about 0.5 s here). With a gateway to ask, a new boot is watched from its start.
TEST_CASE("two hosts: the host whose port stopped delivering restarts behind it; with a gateway "
          "its watch notices, and nothing has two owners when the port delivers again") {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, {.loss = 0.01, .delay_min_ms = 1, .delay_max_ms = 10});
        settled_watched(sim, 2, true);
        const std::size_t deaf = seed % 2, other = 1 - deaf;
        sim.set_receiving(deaf, false);
        CHECK(sim.run_until([&] { return owns_all(sim, other); }, sim.now() + 20 * kPeriod));
        sim.kill(deaf);
        sim.run_until(sim.now() + static_cast<std::int64_t>(seed) * 300);
        const auto again = sim.add_host(keyed(deaf + 1), false);
        sim.set_receiving(again, false);
        sim.command(again, {CommandKind::start});
        sim.reset_double_stats();
        sim.run_until(sim.now() + 30 * kPeriod);
        CHECK(owns_all(sim, other));
        CHECK_FALSE(sim.host(again).engine->link_up());
        sim.set_receiving(again, true);
        CHECK(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
    }
}

// A host restarted behind a dead port, taken down by its watch, back once the port delivered:
// it listened only from then, but its start long past, it counted as old beside a host that
// had just started, and the two agreed within a period on a view without a peer paused
// meanwhile, whose dataplane still served every bucket (the one-way chaos test's seed 8263:
// 24 ms of two owners; here about 2 s for seeds 1-3). A host alone at the link's return is
// young again, as one that let go is: a group of young hosts waits a tolerance.
TEST_CASE("a host back from its link down alone, beside a host that just started: the two wait "
          "as young hosts, and a paused peer keeps its buckets alone") {
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        INFO("seed " << seed);
        Simulator sim(seed, {.loss = 0.0, .delay_min_ms = 1, .delay_max_ms = 10});
        sim.receive_watch = true;
        sim.link_notice = false;
        sim.gateway = true;
        const std::size_t serving = sim.add_host(keyed(2));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 40 * kPeriod));
        sim.gateway_silent = true;
        const std::size_t late = sim.add_host(keyed(4), false);
        sim.set_receiving(late, false);
        sim.command(late, {CommandKind::start});
        sim.run_until(sim.now() + 4 * kPeriod + static_cast<std::int64_t>(seed) * 200);
        CHECK_FALSE(sim.host(late).engine->link_up());
        sim.reset_double_stats();
        // The serving host stops (SIGSTOP) as the port delivers again: its dataplane serves on
        // until its watchdog, and neither of the others hears it meanwhile.
        sim.pause(serving);
        sim.set_receiving(late, true);
        sim.run_until(sim.now() + 300);
        sim.client_frame();
        sim.run_until(sim.now() + 700);
        CHECK(sim.host(late).engine->link_up());
        sim.add_host(keyed(3));
        sim.run_until(sim.now() + 6 * kPeriod);
        CHECK(sim.max_double_ms() == 0);
        sim.resume(serving);
        CHECK(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
    }
}

} // namespace test_one_way_link
