// Load feedback's controller (load_controller.hpp) on a simulated clock: a model cluster in
// which each host's active connections are its share of the arrivals (by effective weight)
// times how long its connections live; the filter, the deadband and the rate limit.
#include <algorithm>
#include <cmath>
#include <deque>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "load_controller.hpp"

using namespace nlb;

namespace {

LoadFeedbackConfig feedback(std::uint32_t interval_ms = 2000, double sensitivity = 0.1,
                            std::uint8_t min_weight = 10) {
    LoadFeedbackConfig c;
    c.interval_ms = interval_ms;
    c.sensitivity = sensitivity;
    c.min_weight = min_weight;
    return c;
}

// A level metric (a command's number), checked every second, sensitivity 0.1: the wanted
// weight is exactly the cheapest member's level over this host's.
LoadFeedbackConfig level_feedback() {
    LoadFeedbackConfig f = feedback(1000, 0.1);
    f.metric = LoadMetric::exec;
    return f;
}

// What every host's heartbeat carries: the costs of those that publish one.
std::vector<double> published_costs(const std::vector<LoadController>& hosts) {
    std::vector<double> published;
    for (const auto& h : hosts)
        if (auto c = h.published_cost())
            published.push_back(*c);
    return published;
}

// Hosts sharing 1,000 new connections a second by effective weight; host i's live
// `lifetime[i]` seconds: its active connections are what its metric reads.
struct Model {
    std::vector<double> lifetime;
    std::vector<LoadController> hosts;
    int changes = 0;
    Model(std::vector<double> life, std::vector<std::uint32_t> weights,
          const LoadFeedbackConfig& c = feedback())
        : lifetime(std::move(life)) {
        for (auto w : weights)
            hosts.emplace_back(c, w);
    }
    double noise = 0;          // relative amplitude of a measurement's noise
    std::uint32_t rng = 12345; // deterministic: the same run every time
    double active(std::size_t i) const {
        double total = 0;
        for (const auto& h : hosts)
            total += h.weight();
        return total ? 1000.0 * hosts[i].weight() / total * lifetime[i] : 0;
    }
    double measured(std::size_t i) {
        rng = rng * 1664525u + 1013904223u;
        const double u = static_cast<double>(rng >> 8) / static_cast<double>(1u << 24); // 0..1
        return active(i) * (1.0 + noise * (2 * u - 1));
    }
    // One heartbeat period (100 ms) of every host: measure, publish, update.
    void step(std::int64_t now) {
        std::vector<double> sample(hosts.size());
        for (std::size_t i = 0; i < hosts.size(); ++i)
            sample[i] = measured(i);
        for (std::size_t i = 0; i < hosts.size(); ++i)
            hosts[i].sample(sample[i], now);
        const std::vector<double> published = published_costs(hosts);
        for (auto& h : hosts)
            if (h.update(published, now))
                ++changes;
    }
    std::int64_t run(std::int64_t from, std::int64_t ms) {
        for (std::int64_t t = from; t < from + ms; t += 100)
            step(t);
        return from + ms;
    }
    double spread() const { // max / min active connections
        double lo = 1e18, hi = 0;
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            lo = std::min(lo, active(i));
            hi = std::max(hi, active(i));
        }
        return hi / lo;
    }
};

} // namespace

TEST_CASE("load feedback: a host whose connections live longer gives share until balanced") {
    for (std::size_t n : {2u, 3u, 5u}) {
        for (double noise : {0.0, 0.2}) {
            std::vector<double> life(n, 1.0);
            life[1] = 3.0; // host 2's server is slow: each connection lives three times as long
            Model m(life, std::vector<std::uint32_t>(n, 50));
            m.noise = noise; // ±20 %: a few dozen connections counted each period
            CHECK(m.spread() > 2.5);
            std::int64_t t = m.run(0, 60000);
            INFO(n << " hosts, noise " << noise << ", weights " << int(m.hosts[0].weight()) << " / "
                   << int(m.hosts[1].weight()));
            CHECK(m.spread() <= 1.15);
            CHECK(m.hosts[1].weight() < m.hosts[0].weight());
            // Steady: the allocation changes at most twice a minute from here.
            const int before = m.changes;
            t = m.run(t, 60000);
            CHECK(m.changes - before <= 2);
            // The cause goes: host 2 takes its share back.
            m.lifetime[1] = 1.0;
            t = m.run(t, 60000);
            CHECK(m.spread() <= 1.15);
            CHECK(m.hosts[1].weight() >= 45);
        }
    }
}

TEST_CASE("load feedback: configured weights are kept when loads follow them") {
    // Host 1 weighs twice host 2 and carries twice the connections: balanced per weight.
    Model m({1.0, 1.0}, {100, 50});
    m.run(0, 60000);
    CHECK(m.hosts[0].weight() == 100);
    CHECK(m.hosts[1].weight() == 50);
    CHECK(m.changes == 0);
}

TEST_CASE("load feedback: the effective weight stays within min_weight and the configured") {
    Model m({1.0, 20.0}, {50, 50}, feedback(1000, 0.1, 20));
    m.run(0, 120000);
    CHECK(m.hosts[1].weight() == 20); // floored, however slow
    CHECK(m.hosts[0].weight() == 50); // never above the configured weight
}

namespace {
// A constant load sampled every 100 ms from 0 to `until` ms: the filter warm, the level set.
void steady(LoadController& c, double load, std::int64_t until) {
    for (std::int64_t t = 0; t <= until; t += 100)
        c.sample(load, t);
}
} // namespace

TEST_CASE("load feedback: a move wanted three times running, at most one update per interval") {
    LoadController cold(feedback(2000, 0.1), 50);
    cold.sample(300, 0);
    CHECK_FALSE(cold.published_cost()); // nothing before the filter is warm (three intervals)
    CHECK_FALSE(cold.update(std::vector<double>{2, 3}, 4000));

    LoadController c(feedback(2000, 0.1), 50);
    steady(c, 300, 8000);                     // cost 6 per unit of weight
    const std::vector<double> costs{6, 2, 3}; // this host's among them
    REQUIRE(c.published_cost() == Approx(6));
    CHECK_FALSE(c.update(costs, 8000)); // three times the cheapest: wanted once...
    CHECK(c.wanted_factor() == Approx(1.0 / 3));
    CHECK(c.cheapest() == 2);
    CHECK_FALSE(c.update(costs, 9999));  // ...within the interval: not even looked at...
    CHECK_FALSE(c.update(costs, 10000)); // ...wanted twice...
    CHECK(c.update(costs, 12000));       // ...and a third time: made
    CHECK(c.weight() == 17);
    // A cost within the sensitivity of the cheapest moves nothing, however often.
    LoadController quiet(feedback(2000, 0.2), 50);
    steady(quiet, 105, 8000);
    for (std::int64_t t = 8000; t < 28000; t += 2000)
        CHECK_FALSE(quiet.update(std::vector<double>{2.1, 1.9}, t)); // 10 % above: within 20 %
    CHECK(quiet.weight() == 50);
    // Two updates' wish, then not a third, moves nothing.
    LoadController once(feedback(2000, 0.1), 50);
    steady(once, 100, 8000);
    CHECK_FALSE(once.update(std::vector<double>{2, 1}, 8000));
    CHECK_FALSE(once.update(std::vector<double>{2, 1}, 10000));
    CHECK_FALSE(once.update(std::vector<double>{2, 2}, 12000));
    CHECK_FALSE(once.update(std::vector<double>{2, 1}, 14000));
    CHECK(once.weight() == 50);
}

TEST_CASE("load feedback: within the coarse deadband, a fine move once the mean says so") {
    // A level metric sets the wanted weight exactly: three times the others, then 2.5 times.
    const LoadFeedbackConfig f = level_feedback();
    LoadController c(f, 50);
    steady(c, 300, 4000);
    std::int64_t t = 4000;
    for (; t <= 6000; t += 1000)
        c.update(std::vector<double>{300, 100, 100}, t);
    REQUIRE(c.weight() == 17); // the coarse move
    // 20 wanted: 3 from 17, within the coarse deadband (5 of 50) but beyond 10 % of 17.
    for (; t <= 40000; t += 100)
        c.sample(250, t);
    const auto moved_at = [&] {
        for (std::int64_t u = 40000; u < 80000; u += 1000)
            if (c.update(std::vector<double>{c.published_cost().value(), 100, 100}, u))
                return u;
        return std::int64_t{-1};
    }();
    // The 28th update since the last move: 8 to let the filter settle, 20 for the mean.
    CHECK(moved_at == 40000 + 27 * 1000);
    CHECK(c.weight() == 20);
    // Noise moves nothing: the cheapest member's level 10 % low every other update (a wanted
    // 18, then 20), and once in a while 20 % low (16, beyond 10 % of 20) alone.
    int moves = 0;
    for (std::int64_t u = 80000; u < 200000; u += 1000) {
        const std::int64_t k = u / 1000;
        const double cheapest = k % 7 == 0 ? 80 : (k % 2 ? 90 : 100);
        moves += c.update(std::vector<double>{250, cheapest, 100}, u) ? 1 : 0;
    }
    CHECK(moves == 0);
    CHECK(c.weight() == 20);
}

TEST_CASE("load feedback: fine moves in a row wait twice as long each, a coarse one resets") {
    LoadController c(level_feedback(), 50); // wanted: 50 x 100 / level
    steady(c, 100, 4000);
    std::int64_t t = 4000;
    // From the last move on, the level set: how many updates (one a second) until the next.
    const auto updates_to_move = [&](double level) {
        for (int n = 1; n <= 200; ++n) {
            for (int k = 0; k < 10; ++k)
                c.sample(level, t += 100);
            if (c.update(std::vector<double>{c.published_cost().value(), 100}, t))
                return n;
        }
        return -1;
    };
    // Each level wants about 8 less than the weight before: beyond 10 % of it, within the
    // coarse deadband down (10 of 50), so only a fine move takes it there (its mean a little
    // above, for the filter's climb in the window).
    // No move yet: the first mean needs 20 updates; after a move, 8 more for the filter to
    // settle first.
    CHECK(updates_to_move(120) == 20); // wants 41.7
    CHECK(c.weight() == Approx(42).margin(1));
    CHECK(updates_to_move(50.0 * 100 / (c.weight() - 8)) == 8 + 40);
    CHECK(updates_to_move(50.0 * 100 / (c.weight() - 8)) == 8 + 80);
    CHECK(updates_to_move(50.0 * 100 / (c.weight() - 7)) == 8 + 80); // four windows at most
    CHECK(c.weight() == Approx(20).margin(2));
    // Back to 100: coarse moves up as the filter climbs (one part of the way, then the rest).
    for (int moves = 0; moves < 3 && c.weight() < 50; ++moves)
        CHECK(updates_to_move(100) <= 10);
    CHECK(c.weight() == 50);
    CHECK(updates_to_move(120) == 8 + 20); // the fine window is back to 20
}

TEST_CASE("load feedback: within twice the sensitivity, down and back up are the fine move's") {
    // A level metric 1.15x the cheapest wants 43 of 50: 14 % of the configured weight, beyond
    // the sensitivity but within twice it, so no coarse move (the fine one needs 20 updates).
    const LoadFeedbackConfig f = level_feedback();
    LoadController c(f, 50);
    steady(c, 115, 4000);
    std::int64_t t = 4000;
    for (; t < 4000 + 19 * 1000; t += 1000)
        CHECK_FALSE(c.update(std::vector<double>{115, 100}, t));
    REQUIRE(c.update(std::vector<double>{115, 100}, t)); // the fine move, at the 20th
    REQUIRE(c.weight() == 43);
    // The cause goes: the host is the cheapest. 7 of 50 back is within twice the sensitivity
    // too, and came down by a fine move: the way back is the fine move's as well, two time
    // constants after the last move and a window twice as long (a second fine move in a
    // row). A coarse move up there, on three cheap updates in a row, swung a host 6-14 %
    // dearer than the others between its weight and the fine move's every two minutes.
    for (std::int64_t u = t; u <= t + 20000; u += 100)
        c.sample(100, u);
    t += 20000;
    for (int i = 1; i < 8 + 40; ++i, t += 1000)
        CHECK_FALSE(c.update(std::vector<double>{100, 100}, t));
    CHECK(c.update(std::vector<double>{100, 100}, t));
    CHECK(c.weight() == 50);
}

TEST_CASE("load feedback: part of the way back up, the rest takes the sensitivity, not 20") {
    // A host at 17 of 50 whose cause is going: its filter wants 37 first (a coarse move up),
    // then 44 once it has caught up: 7 of 50 up is beyond the sensitivity (5), within twice
    // it (10). Three updates take it there, as they would take it down only beyond twice.
    const LoadFeedbackConfig f = level_feedback();
    LoadController c(f, 50);
    steady(c, 300, 4000);
    std::int64_t t = 4000;
    for (; t <= 6000; t += 1000)
        c.update(std::vector<double>{300, 100}, t);
    REQUIRE(c.weight() == 17);
    const auto settle = [&](double level) {
        for (std::int64_t u = t; u < t + 20000; u += 100)
            c.sample(level, u);
        t += 20000;
    };
    settle(135); // wants 37 of 50
    for (int i = 0; i < 3; ++i, t += 1000)
        c.update(std::vector<double>{135, 100}, t);
    REQUIRE(c.weight() == 37);
    settle(114); // wants 44: 7 up
    CHECK_FALSE(c.update(std::vector<double>{114, 100}, t));
    CHECK_FALSE(c.update(std::vector<double>{114, 100}, t + 1000));
    CHECK(c.update(std::vector<double>{114, 100}, t + 2000));
    CHECK(c.weight() == 44);
    // Down by as much is no coarse move: 7 of 50 down is within twice the sensitivity.
    settle(135);
    t += 1000;
    for (int i = 0; i < 5; ++i, t += 1000)
        CHECK_FALSE(c.update(std::vector<double>{135, 100}, t));
    CHECK(c.weight() == 44);
}

TEST_CASE("load feedback: within the sensitivity of the cheapest is the cheapest") {
    // The lowest of noisy costs sits below their truth: a host 5 % above it wants its whole
    // weight, so equal hosts never aim low together; 15 % above, it gives share.
    const LoadFeedbackConfig f = level_feedback();
    LoadController near(f, 50), far(f, 50);
    steady(near, 105, 4000);
    steady(far, 115, 4000);
    for (std::int64_t t = 4000; t <= 40000; t += 1000) {
        near.update(std::vector<double>{105, 100}, t);
        far.update(std::vector<double>{115, 100}, t);
    }
    CHECK(near.wanted_factor() == 1.0);
    CHECK(near.weight() == 50);
    CHECK(far.wanted_factor() == Approx(100.0 / 115));
    CHECK(far.weight() == 43); // a fine move: 43.5 is 6.5 off, beyond 5 of 50
}

TEST_CASE("load feedback: traffic after idle warms the filter up again") {
    LoadController c(feedback(1000), 50);
    for (std::int64_t t = 0; t <= 10000; t += 100)
        c.sample(0, t); // warm, idle: nothing to publish
    CHECK_FALSE(c.published_cost());
    std::int64_t t = 10100;
    for (; t <= 11000; t += 100)
        c.sample(60, t); // busy: the climb from nothing is no cost yet
    CHECK_FALSE(c.published_cost());
    for (; t <= 15000; t += 100)
        c.sample(60, t);
    CHECK(c.published_cost()); // four intervals after it became busy
}

TEST_CASE("load feedback: idle, drained or joining members are no cheapest") {
    // An idle host publishes nothing, so the busy ones keep their weights...
    LoadController idle(feedback(1000), 50);
    steady(idle, 0.4, 5000);
    CHECK_FALSE(idle.published_cost());
    LoadController busy(feedback(1000), 50);
    steady(busy, 30, 5000);
    for (std::int64_t t = 5000; t < 20000; t += 1000)
        CHECK_FALSE(busy.update(std::vector<double>{*busy.published_cost()}, t)); // alone
    CHECK(busy.weight() == 50);
    // ...and one whose weight fell takes it back when it goes idle.
    LoadController fell(feedback(1000), 50);
    steady(fell, 150, 5000);
    for (std::int64_t t = 5000; t <= 8000; t += 1000)
        fell.update(std::vector<double>{3, 1}, t);
    REQUIRE(fell.weight() < 25);
    for (std::int64_t t = 8100; t <= 30000; t += 100)
        fell.sample(0, t);
    for (std::int64_t t = 30000; t <= 34000; t += 1000)
        fell.update(std::vector<double>{1}, t);
    CHECK(fell.weight() == 50);
}

TEST_CASE("load feedback: a level metric (exec, cpu, latency) is compared as it is") {
    LoadFeedbackConfig f = feedback(1000);
    f.metric = LoadMetric::exec;
    LoadController c(f, 50);
    steady(c, 300, 5000);
    REQUIRE(c.published_cost() == Approx(300)); // not divided by the weight
    for (std::int64_t t = 5000; t <= 8000; t += 1000)
        c.update(std::vector<double>{300, 100, 100}, t);
    CHECK(c.weight() == 17); // a third: no run away to min_weight as the weight falls
    for (std::int64_t t = 8000; t <= 20000; t += 1000) {
        c.sample(300, t);
        c.update(std::vector<double>{300, 100, 100}, t);
    }
    CHECK(c.weight() == 17);
    // The command says 100 again: back to the configured weight.
    for (std::int64_t t = 20100; t <= 50000; t += 100)
        c.sample(100, t);
    for (std::int64_t t = 50000; t <= 54000; t += 1000)
        c.update(std::vector<double>{c.published_cost().value(), 100, 100}, t);
    CHECK(c.weight() == 50);
}

TEST_CASE("load feedback: the filter follows a step within a few intervals, not one outlier") {
    LoadController c(feedback(1000), 50);
    c.sample(100, 0);
    c.sample(1000, 100); // one outlier
    CHECK(c.load() < 200);
    for (std::int64_t t = 200; t <= 12000; t += 100)
        c.sample(1000, t);
    CHECK(c.load() > 950); // the time constant is three intervals: 3 s here
    CHECK(*c.published_cost() == Approx(c.load() / 50)); // connections: per unit of weight
}

TEST_CASE("load feedback: cpu share and command output") {
    const std::string a = "cpu  100 0 100 700 100 0 0 0 0 0";
    const std::string b = "cpu  200 0 200 1300 100 0 0 0 0 0";
    auto share = cpu_busy_share(a, b);
    REQUIRE(share);
    CHECK(*share == Approx(0.25)); // 200 busy of 800
    CHECK_FALSE(cpu_busy_share(a, a));
    CHECK_FALSE(cpu_busy_share("intr 1 2 3", b));
    CHECK_FALSE(cpu_busy_share("cpu 1 2", b));
    CHECK(parse_metric_output(" 0.75\n") == Approx(0.75));
    CHECK(parse_metric_output("42 requests") == Approx(42));
    CHECK_FALSE(parse_metric_output("busy"));
    CHECK_FALSE(parse_metric_output("-3"));
    CHECK_FALSE(parse_metric_output(""));
}

// A cost travels in thousandths in a u32 (LoadFeedback::publish saturates it at 4294967.295):
// a command printing bytes or microseconds goes past that. The cheapest host compared its own
// cost as measured with the members' saturated ones, found itself dearer than the "cheapest"
// (its own copy among them) and fell to min_weight, as did every other: equal shares whatever
// the configured weights and the loads.
TEST_CASE("load feedback: a cost beyond what a heartbeat carries is compared as carried") {
    const LoadFeedbackConfig f = level_feedback();
    LoadController cheapest(f, 50);
    steady(cheapest, 1e9, 5000);
    REQUIRE(cheapest.published_cost().has_value());
    CHECK(*cheapest.published_cost() <= kMaxPublishedCost);
    // What the heartbeats carry: this host's 1e9 and another's 2e9, both saturated.
    const std::vector<double> members{kMaxPublishedCost, kMaxPublishedCost};
    for (std::int64_t t = 5000; t <= 10000; t += 1000) {
        cheapest.sample(1e9, t);
        cheapest.update(members, t);
    }
    CHECK(cheapest.weight() == 50); // no evidence it costs more than anyone
}

namespace {

// The e2e test (tests/e2e/test_load_feedback.sh) as a Poisson process: 200 new connections a
// second shared by effective weight, each living its host's lifetime; a host's metric is its
// live connections counted every heartbeat (100 ms), so successive counts share most of their
// connections, as they do on the wire.
struct PoissonModel {
    std::vector<double> lifetime;
    std::vector<LoadController> hosts;
    std::vector<std::deque<double>> live; // end times
    std::mt19937_64 rng;
    std::vector<std::int64_t> moves; // when a weight changed
    PoissonModel(std::vector<double> life, std::uint64_t seed)
        : lifetime(std::move(life)), live(lifetime.size()), rng(seed) {
        for (std::size_t i = 0; i < lifetime.size(); ++i)
            hosts.emplace_back(feedback(1000, 0.1, 10), 50);
    }
    void step(std::int64_t now) {
        double total = 0;
        for (const auto& h : hosts)
            total += h.weight();
        const double t = static_cast<double>(now) / 1000;
        std::uniform_real_distribution<double> within(t - 0.1, t);
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            std::poisson_distribution<int> arrivals(20.0 * hosts[i].weight() / total);
            for (int k = arrivals(rng); k > 0; --k)
                live[i].push_back(within(rng) + lifetime[i]);
            std::erase_if(live[i], [&](double end) { return end <= t; });
            hosts[i].sample(static_cast<double>(live[i].size()), now);
        }
        const std::vector<double> published = published_costs(hosts);
        for (auto& h : hosts)
            if (h.update(published, now))
                moves.push_back(now);
    }
};

} // namespace

// The e2e test failed its "at most twice a minute" in CI: host 2 went 19, 16, 18 in 30 steady
// seconds. The fine move tested the mean of the last 20 updates at every update, so each
// second was another chance for noise to pass for a change, and nothing stopped a move back:
// in this model 75 steady moves in 160 minutes, two within 30 s in 27 of 1,840 windows.
TEST_CASE("load feedback: counting noise of a Poisson model moves no weight back and forth") {
    int moves = 0, crowded = 0;
    double spread_sum = 0, spread_worst = 0;
    int samples = 0;
    for (std::uint64_t seed = 1; seed <= 16; ++seed) {
        PoissonModel m({0.305, 0.905, 0.305}, seed); // 5 ms of each is the connect
        std::int64_t t = 0;
        for (; t < 60000; t += 100)
            m.step(t);
        INFO("seed " << seed << ": host 2 at " << int(m.hosts[1].weight()));
        CHECK(std::abs(m.hosts[1].weight() - 17) <= 2); // 50 x 0.305 / 0.905
        const std::size_t settled = m.moves.size();
        for (; t < 60000 + 600000; t += 100) { // 10 steady minutes
            m.step(t);
            // Active connections in proportion to weight x lifetime: how far apart they are.
            double lo = 1e9, hi = 0;
            for (std::size_t i = 0; i < m.hosts.size(); ++i) {
                const double a = m.hosts[i].weight() * m.lifetime[i];
                lo = std::min(lo, a), hi = std::max(hi, a);
            }
            spread_sum += hi / lo, ++samples, spread_worst = std::max(spread_worst, hi / lo);
        }
        moves += static_cast<int>(m.moves.size() - settled);
        for (std::int64_t w = 60000; w + 30000 <= t; w += 5000)
            crowded += std::count_if(m.moves.begin(), m.moves.end(),
                                     [&](std::int64_t x) { return x >= w && x < w + 30000; }) > 1;
    }
    INFO(moves << " steady moves in 160 minutes; " << crowded
               << " windows of 30 s with two or more; spread mean " << spread_sum / samples
               << ", worst " << spread_worst);
    CHECK(crowded == 0);
    CHECK(moves <= 30); // 10 here: one every 16 minutes
    CHECK(spread_sum / samples <= 1.05);
    CHECK(spread_worst <= 1.25);
}

// The e2e test failed its "took its share back" in CI: host 2 went 17, 32, 45 and stayed at
// 45 past 50 s. 5 of 50 up is no coarse move (it takes more than the sensitivity), and the
// fine one needs a mean of 20 updates beyond 10 % of 45, which equal servers' noise rarely
// gives.
TEST_CASE("load feedback: once the cause goes, the whole share comes back within 50 s") {
    std::vector<int> took;
    for (std::uint64_t seed = 1; seed <= 32; ++seed) {
        PoissonModel m({0.305, 0.905, 0.305}, seed);
        std::int64_t t = 0;
        for (; t < 90000; t += 100)
            m.step(t);
        REQUIRE(m.hosts[1].weight() <= 25);
        m.lifetime[1] = 0.305;
        const std::int64_t cause_gone = t;
        for (; t < cause_gone + 120000 && m.hosts[1].weight() < 50; t += 100)
            m.step(t);
        took.push_back(static_cast<int>((t - cause_gone) / 1000));
    }
    INFO("seconds to take the share back, seed 1 on: " << Catch::Detail::stringify(took));
    CHECK(*std::max_element(took.begin(), took.end()) <= 40);
}

// A host a tenth dearer than the cheapest settles a few points below its weight, and noise
// puts it within the sensitivity now and then: three such updates in a row must not take it
// back up when it came down by a fine move (only a way back up that a coarse move began goes
// all the way; without that condition twice to three times the moves in the model below).
TEST_CASE("load feedback: settled below its weight by a fine move, within the sensitivity is no "
          "way back up") {
    const LoadFeedbackConfig f = level_feedback();
    LoadController c(f, 50);
    steady(c, 112, 4000);
    std::int64_t t = 4000;
    for (; t < 4000 + 19 * 1000; t += 1000)
        CHECK_FALSE(c.update(std::vector<double>{112, 100}, t));
    REQUIRE(c.update(std::vector<double>{112, 100}, t)); // the fine move
    REQUIRE(c.weight() == 45);                           // 50 x 100 / 112
    for (std::int64_t u = t; u <= t + 20000; u += 100)
        c.sample(105, u); // within the sensitivity of the cheapest: wants all of its weight
    t += 20000;
    for (int i = 0; i < 6; ++i, t += 1000)
        CHECK_FALSE(c.update(std::vector<double>{105, 100}, t));
    CHECK(c.weight() == 45);
}

// The Poisson model with host 2's connections living 6-14 % longer than the others': it
// settles a few points below its weight. Moves up within twice the sensitivity were coarse
// ones on three cheap updates in a row, and swung it back to its weight and down again (280
// moves in these 480 minutes; 606 when the way back up within the sensitivity applied to
// every host): now only on a way back up a coarse move began (47 moves).
TEST_CASE("load feedback: a host a little dearer than the others does not swing") {
    int total = 0;
    for (double ratio : {1.06, 1.10, 1.14}) {
        int moves = 0;
        for (std::uint64_t seed = 1; seed <= 16; ++seed) {
            PoissonModel m({0.305, 0.305 * ratio, 0.305}, seed);
            std::int64_t t = 0;
            for (; t < 60000; t += 100)
                m.step(t);
            const std::size_t settled = m.moves.size();
            for (; t < 60000 + 600000; t += 100)
                m.step(t);
            moves += static_cast<int>(m.moves.size() - settled);
        }
        INFO("ratio " << ratio << ": " << moves << " steady moves in 160 minutes");
        total += moves;
    }
    INFO(total << " moves in all");
    CHECK(total <= 100);
}
