// Review of the link-down change (ConvergenceEngine::on_link, docs/convergence.md "Link
// down"): a host's own link going down and up beside the other faults: during a convergence,
// a drainstop, staged configuration, a pause (SIGSTOP, a VM stopped with its clock), rapid
// flaps, a stopped or refused host, two hosts down at different times, a lossy segment,
// clocks 3 % apart, tolerance 2 and 5, the agent noticing at once or half a period late.
// Properties: never two serving owners; the cluster settles again once the links are up.
// Simulator::link_notice = false replays a schedule as the build before the change ran it
// (the link cut, the engine never told), to tell a defect of the change from a limitation.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "chaos_schedule.hpp"
#include "simulator.hpp"

// Setup{.hosts = 3, .seed = …}: the members left out keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace nlb;
using namespace nlb::sim;

namespace test_link_review {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKey(32, 0x5d);

struct Setup {
    std::size_t hosts = 3;
    int tolerance = 5;
    double loss = 0.02;
    std::vector<double> rates; // clock rate per host (empty: all 1.0)
    std::uint64_t seed = 1;
    bool notice = true; // false: the engine is never told (the build before the change)
    std::size_t rules = 1;
};

EngineConfig config_for(std::uint8_t priority, const Setup& s) {
    auto c = default_config(priority, s.rules);
    c.cluster.key = kKey;
    c.cluster.heartbeat_tolerance = s.tolerance;
    return c;
}

struct Outcome {
    std::int64_t double_ms = 0;
    bool settled = false;
    std::string events;
};

std::string events_of(Simulator& sim, std::int64_t window) {
    return chaos::owners_of_a_doubled_bucket(sim, window);
}

// Every live host converged or legitimately out (stopped, refused), the cluster settled with
// every bucket owned once.
bool healed(Simulator& sim) {
    for (std::size_t i = 0; i < sim.size(); ++i) {
        const auto& h = sim.host(i);
        if (!h.alive)
            continue;
        const auto st = h.engine->state();
        if (st == HostState::converging || st == HostState::draining)
            return false;
    }
    return sim.settled() && sim.all_owned_once();
}

// Builds the cluster, lets it settle, runs `schedule` (which ends with every link up), then
// gives it 40 periods to settle. The first doubled instant's owners and the events of the
// last 30 periods go into `events` when something failed.
Outcome run_case(const Setup& s, const std::function<void(Simulator&)>& schedule,
                 const std::function<bool(Simulator&)>& done = healed) {
    Simulator sim(s.seed, {.loss = s.loss, .delay_min_ms = 1, .delay_max_ms = 12});
    sim.link_notice = s.notice;
    for (std::size_t i = 0; i < s.hosts; ++i) {
        sim.add_host(config_for(static_cast<std::uint8_t>(i + 1), s));
        if (i < s.rates.size())
            sim.set_clock_rate(i, s.rates[i]);
    }
    Outcome o;
    if (!sim.run_until([&] { return sim.settled(); }, 60 * kPeriod)) {
        o.events = "never settled at the start";
        return o;
    }
    sim.run_until(sim.now() + 1000 + static_cast<std::int64_t>(s.seed % 7) * 131);
    sim.reset_double_stats();
    schedule(sim);
    const std::string during = sim.max_double_ms() > 0 ? "doubled during the schedule\n" : "";
    o.settled = sim.run_until([&] { return done(sim); }, sim.now() + 40 * kPeriod);
    sim.run_until(sim.now() + 5 * kPeriod);
    o.double_ms = sim.max_double_ms();
    if (o.double_ms > 0 || !o.settled)
        o.events = during + events_of(sim, 90 * kPeriod);
    return o;
}

// Checks the outcome, and on failure replays the schedule without the notice to say whether
// the build before the change failed the same way.
void verify(const Setup& s, const std::function<void(Simulator&)>& schedule,
            const std::string& what,
            const std::function<bool(Simulator&)>& done = healed, std::int64_t allowed = 0) {
    const auto o = run_case(s, schedule, done);
    if (o.double_ms > allowed || !o.settled) {
        Setup before = s;
        before.notice = false;
        const auto b = run_case(before, schedule, done);
        UNSCOPED_INFO(what << ": with the change: doubled " << o.double_ms << " ms, settled "
                           << o.settled << "; without the notice: doubled " << b.double_ms
                           << " ms, settled " << b.settled);
        if (std::getenv("NLB_LINK_REVIEW_EVENTS"))
            UNSCOPED_INFO(o.events);
    }
    CHECK(o.double_ms <= allowed);
    CHECK(o.settled);
}

std::string describe(const Setup& s) {
    std::ostringstream o;
    o << s.hosts << " hosts, tolerance " << s.tolerance << ", loss " << s.loss << ", seed "
      << s.seed;
    for (auto r : s.rates)
        o << " rate " << r;
    return o.str();
}

} // namespace

TEST_CASE("link review: a host alone with its link down, its peer restarted meanwhile") {
    // Host 2 crashes; host 1 serves every bucket alone; its link goes down; host 2 restarts
    // and, alone, takes every bucket after its start wait; host 1's link comes back.
    for (std::int64_t down : {3000, 8000, 20000, 40000})
        for (std::int64_t restart_after : {500, 2000})
            for (std::int64_t notice : {0, 250, 500})
                for (std::uint64_t seed = 1; seed <= 2; ++seed) {
                    Setup s{.hosts = 2, .seed = seed * 31 + static_cast<std::uint64_t>(down)};
                    std::ostringstream what;
                    what << "lone host: down " << down << " restart after " << restart_after
                         << " notice " << notice << " " << describe(s);
                    verify(s, [&](Simulator& sim) {
                        sim.kill(1);
                        sim.run_until(sim.now() + 12 * kPeriod);
                        sim.set_link(0, false, notice);
                        sim.run_until(sim.now() + restart_after);
                        sim.add_host(config_for(2, s));
                        sim.run_until(sim.now() + down - restart_after);
                        sim.set_link(0, true, notice);
                    }, what.str());
                }
}

TEST_CASE("link review: link down during a convergence (a host joining)") {
    for (int tolerance : {2, 5})
        for (std::size_t flapped : {0u, 2u, 3u})
            for (std::int64_t offset : {0, 300, 1000, 2500, 4000})
                for (std::int64_t down : {1500, 4500, 12000})
                    for (std::int64_t notice : {0, 499}) {
                        Setup s{.hosts = 3, .tolerance = tolerance,
                                .seed = 7 + flapped * 13 + static_cast<std::uint64_t>(offset)};
                        std::ostringstream what;
                        what << "join: host " << flapped + 1 << " down " << down << " at +"
                             << offset << " notice " << notice << " " << describe(s);
                        verify(s, [&](Simulator& sim) {
                            sim.add_host(config_for(4, s));
                            sim.run_until(sim.now() + offset);
                            sim.set_link(flapped, false, notice);
                            sim.run_until(sim.now() + down);
                            sim.set_link(flapped, true, notice);
                        }, what.str());
                    }
}

TEST_CASE("link review: link down while a host drains (drainstop), on the drainer or a peer") {
    for (std::size_t flapped : {0u, 1u})
        for (std::int64_t offset : {0, 700, 3000})
            for (std::int64_t down : {1500, 4500, 12000})
                for (std::int64_t notice : {0, 400}) {
                    Setup s{.hosts = 3, .seed = 3 + flapped + static_cast<std::uint64_t>(down)};
                    std::ostringstream what;
                    what << "drainstop of 1, host " << flapped + 1 << " down " << down << " at +"
                         << offset << " notice " << notice << " " << describe(s);
                    verify(s, [&](Simulator& sim) {
                        auto& drainer = sim.host(1);
                        std::size_t n = 0;
                        for (std::uint32_t b = 0; b < NLB_BUCKETS && n < 30; ++b)
                            if ((*drainer.installed)[0].owners[b] == 2) {
                                drainer.live.slots[0].set(b);
                                ++n;
                            }
                        sim.command(1, {CommandKind::drainstop});
                        sim.run_until(sim.now() + offset);
                        sim.set_link(flapped, false, notice);
                        sim.run_until(sim.now() + down);
                        sim.set_link(flapped, true, notice);
                        sim.run_until(sim.now() + 3 * kPeriod);
                        drainer.live = LiveBuckets{};
                        sim.run_until(sim.now() + 3 * kPeriod);
                        if (sim.host(1).engine->state() == HostState::stopped ||
                            sim.host(1).engine->refused_draining())
                            sim.command(1, {CommandKind::start});
                    }, what.str());
                }
}

TEST_CASE("link review: link down while staged configuration is pending") {
    for (std::size_t flapped : {0u, 2u})
        for (std::int64_t down : {2000, 9000})
            for (bool stage_while_down : {false, true}) {
                Setup s{.hosts = 3, .seed = 17 + flapped + static_cast<std::uint64_t>(down),
                        .rules = 2};
                std::ostringstream what;
                what << "staged: host " << flapped + 1 << " down " << down
                     << (stage_while_down ? " (the last host stages while down)" : "") << " "
                     << describe(s);
                auto next = [&](std::uint8_t p) {
                    auto c = config_for(p, s);
                    c.rules[1].affinity = Affinity::none;
                    return c;
                };
                verify(s, [&](Simulator& sim) {
                    REQUIRE(sim.stage(0, next(1), 0x2).empty());
                    REQUIRE(sim.stage(1, next(2), 0x2).empty());
                    sim.run_until(sim.now() + 2 * kPeriod);
                    sim.set_link(flapped, false, 200);
                    sim.run_until(sim.now() + down / 2);
                    if (stage_while_down)
                        REQUIRE(sim.stage(2, next(3), 0x2).empty());
                    sim.run_until(sim.now() + down / 2);
                    sim.set_link(flapped, true, 200);
                    if (!stage_while_down)
                        REQUIRE(sim.stage(2, next(3), 0x2).empty());
                }, what.str());
            }
}

TEST_CASE("link review: link down and a pause (SIGSTOP or a VM stopped with its clock)") {
    // Orders: pause then link down/up then resume; link down, pause, link up, resume; link
    // down, pause, resume, link up.
    for (bool vm : {false, true})
        for (int order : {0, 1, 2})
            for (std::int64_t pause_len : {800, 3000, 9000})
                for (std::int64_t down : {1500, 6000, 15000})
                    for (std::int64_t notice : {0, 450}) {
                        Setup s{.hosts = 3,
                                .seed = 41 + static_cast<std::uint64_t>(order * 7 + pause_len)};
                        std::ostringstream what;
                        what << (vm ? "VM pause" : "pause") << " order " << order << " pause "
                             << pause_len << " down " << down << " notice " << notice << " "
                             << describe(s);
                        verify(s, [&](Simulator& sim) {
                            auto stop = [&] { vm ? sim.pause_vm(1) : sim.pause(1); };
                            auto go = [&] { vm ? sim.resume_frozen(1) : sim.resume(1); };
                            if (order == 0) {
                                stop();
                                sim.run_until(sim.now() + pause_len / 3);
                                sim.set_link(1, false, notice);
                                sim.run_until(sim.now() + down);
                                sim.set_link(1, true, notice);
                                sim.run_until(sim.now() + pause_len);
                                go();
                            } else if (order == 1) {
                                sim.set_link(1, false, notice);
                                sim.run_until(sim.now() + down / 3);
                                stop();
                                sim.run_until(sim.now() + down);
                                sim.set_link(1, true, notice);
                                sim.run_until(sim.now() + pause_len);
                                go();
                            } else {
                                sim.set_link(1, false, notice);
                                sim.run_until(sim.now() + down / 3);
                                stop();
                                sim.run_until(sim.now() + pause_len);
                                go();
                                sim.run_until(sim.now() + down);
                                sim.set_link(1, true, notice);
                            }
                        }, what.str(), healed,
                        // A VM stopped with its clock cannot tell how long it stood: its
                        // link bound runs on its clock, and past it the peers took over; the
                        // first frames it hears say so (chaos-ops allows a period for it).
                        // With the link change and without: the same 60-234 ms (seeds 848,
                        // 9055).
                        vm ? kPeriod : 0);
                    }
}

TEST_CASE("link review: rapid flaps (down, up, down within a period)") {
    for (int tolerance : {2, 5})
        for (std::int64_t notice : {0, 150, 499})
            for (std::int64_t gap : {100, 300, 700})
                for (std::int64_t second : {400, 3500, 12000})
                    for (std::uint64_t seed = 1; seed <= 2; ++seed) {
                        Setup s{.hosts = 3, .tolerance = tolerance, .seed = seed * 5 + static_cast<std::uint64_t>(gap)};
                        std::ostringstream what;
                        what << "flaps: gap " << gap << " second " << second << " notice "
                             << notice << " " << describe(s);
                        verify(s, [&](Simulator& sim) {
                            sim.set_link(0, false, notice);
                            sim.run_until(sim.now() + gap);
                            sim.set_link(0, true, notice);
                            sim.run_until(sim.now() + gap);
                            sim.set_link(0, false, notice);
                            sim.run_until(sim.now() + second);
                            sim.set_link(0, true, notice);
                            sim.run_until(sim.now() + gap);
                            sim.set_link(0, false, notice);
                            sim.run_until(sim.now() + gap);
                            sim.set_link(0, true, notice);
                        }, what.str());
                    }
}

TEST_CASE("link review: link down on a stopped or refused host, and started while down") {
    for (std::int64_t down : {2000, 9000})
        for (int variant : {0, 1, 2}) {
            Setup s{.hosts = 3, .seed = 61 + static_cast<std::uint64_t>(variant + down)};
            std::ostringstream what;
            what << "stopped/refused variant " << variant << " down " << down << " "
                 << describe(s);
            verify(s, [&](Simulator& sim) {
                if (variant == 0) { // stopped, link down, up, start
                    sim.command(2, {CommandKind::stop});
                    sim.run_until(sim.now() + 5 * kPeriod);
                    sim.set_link(2, false, 100);
                    sim.run_until(sim.now() + down);
                    sim.set_link(2, true, 100);
                    sim.run_until(sim.now() + 2 * kPeriod);
                    sim.command(2, {CommandKind::start});
                } else if (variant == 1) { // stopped, link down, started while down
                    sim.command(2, {CommandKind::stop});
                    sim.run_until(sim.now() + 5 * kPeriod);
                    sim.set_link(2, false, 100);
                    sim.run_until(sim.now() + down / 2);
                    sim.command(2, {CommandKind::start});
                    sim.run_until(sim.now() + down / 2);
                    sim.set_link(2, true, 100);
                } else { // a host refused (its priority taken) whose link goes down
                    auto dup = sim.add_host(config_for(2, s));
                    sim.run_until(sim.now() + 10 * kPeriod);
                    sim.set_link(dup, false, 100);
                    sim.run_until(sim.now() + down);
                    sim.set_link(dup, true, 100);
                    sim.run_until(sim.now() + 5 * kPeriod);
                    sim.kill(dup);
                }
            }, what.str());
        }
}

TEST_CASE("link review: two hosts' links down at different times") {
    for (std::size_t hosts : {3u, 4u})
        for (std::int64_t apart : {0, 400, 2500, 6000})
            for (std::int64_t down : {3000, 8000, 20000})
                for (std::uint64_t seed = 1; seed <= 2; ++seed) {
                    Setup s{.hosts = hosts, .seed = seed * 97 + static_cast<std::uint64_t>(apart + down)};
                    std::ostringstream what;
                    what << "two down: apart " << apart << " down " << down << " " << describe(s);
                    verify(s, [&](Simulator& sim) {
                        sim.set_link(0, false, 100);
                        sim.run_until(sim.now() + apart);
                        sim.set_link(hosts - 1, false, 300);
                        sim.run_until(sim.now() + down);
                        sim.set_link(0, true, 250);
                        sim.run_until(sim.now() + apart);
                        sim.set_link(hosts - 1, true, 0);
                    }, what.str());
                }
}

TEST_CASE("link review: loss, clocks 3 % apart, tolerance 2 and 5, notice 0 to half a period") {
    for (int tolerance : {2, 5})
        for (double loss : {0.0, 0.2})
            for (int clocks : {0, 1, 2})
                for (std::int64_t notice : {0, 250, 500})
                    for (std::int64_t down : {700, 1900, 4200, 4900, 9000})
                        for (std::uint64_t seed = 1; seed <= 2; ++seed) {
                            Setup s{.hosts = 2 + seed, .tolerance = tolerance, .loss = loss,
                                    .seed = seed * 1009 + static_cast<std::uint64_t>(down + notice)};
                            // 2.5 % apart at most: the confirmations' bound leaves a peer's
                            // clock 3 % (docs/convergence.md, "Confirmed heartbeats"); 0.97
                            // against 1.03 (6 %) doubles with the change and without it.
                            if (clocks == 1)
                                s.rates = {0.99, 1.015, 1.015};
                            else if (clocks == 2)
                                s.rates = {1.015, 0.99, 0.99};
                            std::ostringstream what;
                            what << "sweep: down " << down << " notice " << notice << " "
                                 << describe(s);
                            verify(s, [&](Simulator& sim) {
                                sim.set_link(0, false, notice);
                                sim.run_until(sim.now() + down);
                                sim.set_link(0, true, notice);
                            }, what.str());
                        }
}

TEST_CASE("link review: a flap that ends just before the bound, after the peers counted the "
          "host dead") {
    // The link comes back (or the agent sees it back) just before the bound the peers'
    // confirmations set, after this host counted them dead (a tolerance of silence) and they
    // it: no confirmation bounds this host any more, while they are about to take its
    // buckets (link chaos seed 1602: 6 ms of two owners; 106 ms without the notice).
    for (std::size_t hosts : {2u, 3u})
        for (std::int64_t down = 4500; down <= 5900; down += 100)
            for (std::int64_t notice : {0, 200, 450})
                for (std::uint64_t seed = 1; seed <= 2; ++seed) {
                    Setup s{.hosts = hosts, .loss = 0.0,
                            .seed = seed * 7 + static_cast<std::uint64_t>(down + notice)};
                    std::ostringstream what;
                    what << "just before the bound: down " << down << " notice " << notice << " "
                         << describe(s);
                    verify(s, [&](Simulator& sim) {
                        sim.set_link(0, false, notice);
                        sim.run_until(sim.now() + down);
                        sim.set_link(0, true, notice);
                    }, what.str());
                }
}

} // namespace test_link_review

namespace test_link_review {

// Replays one flap of the sweep and prints every host's events and the double spans (for a
// failure's analysis): NLB_LR="tolerance loss clocks notice down seed hosts [notice_on]".
TEST_CASE("link review: replay one flap", "[.replay]") {
    int tol = 5, clocks = 0, on = 1;
    double loss = 0;
    long notice = 0, down = 0, seed = 1, hosts = 3;
    if (const char* e = std::getenv("NLB_LR"))
        std::sscanf(e, "%d %lf %d %ld %ld %ld %ld %d", &tol, &loss, &clocks, &notice, &down, &seed,
                    &hosts, &on);
    Setup s{.hosts = static_cast<std::size_t>(hosts), .tolerance = tol, .loss = loss,
            .seed = static_cast<std::uint64_t>(seed)};
    s.notice = on != 0;
    if (clocks == 1)
        s.rates = {0.99, 1.015, 1.015};
    else if (clocks == 2)
        s.rates = {1.015, 0.99, 0.99};
    else if (clocks == 3)
        s.rates = {0.97, 1.03, 1.03};
    Simulator sim(s.seed, {.loss = s.loss, .delay_min_ms = 1, .delay_max_ms = 12});
    sim.link_notice = s.notice;
    for (std::size_t i = 0; i < s.hosts; ++i) {
        sim.add_host(config_for(static_cast<std::uint8_t>(i + 1), s));
        if (i < s.rates.size())
            sim.set_clock_rate(i, s.rates[i]);
    }
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 60 * kPeriod));
    sim.run_until(sim.now() + 1000 + static_cast<std::int64_t>(s.seed % 7) * 131);
    sim.reset_double_stats();
    const auto t0 = sim.now();
    std::printf("link down at %ld (global)\n", static_cast<long>(t0));
    sim.set_link(0, false, notice);
    bool doubled = false;
    auto watch = [&] {
        const bool d = sim.double_since() >= 0;
        if (d != doubled) {
            std::printf("%ld %s\n", static_cast<long>(sim.now()), d ? "TWO OWNERS" : "one owner again");
            if (d)
                std::printf("%s\n", events_of(sim, 0).c_str());
        }
        doubled = d;
        return false;
    };
    sim.run_until(watch, sim.now() + down);
    std::printf("link up at %ld\n", static_cast<long>(sim.now()));
    sim.set_link(0, true, notice);
    sim.run_until(watch, sim.now() + 40 * kPeriod);
    for (std::size_t i = 0; i < sim.size(); ++i) {
        std::printf("host %zu (clock now %ld):\n", i + 1, static_cast<long>(sim.clock_of(i)));
        for (const auto& e : sim.host(i).events)
            if (e.at.count() > t0 - 4 * kPeriod)
                std::printf("  %ld %s %d %s\n", static_cast<long>(e.at.count()), to_string(e.kind),
                            e.host, e.text.c_str());
    }
    std::printf("max double %ld\n", static_cast<long>(sim.max_double_ms()));
}

} // namespace test_link_review
