// The second path in a settled cluster (docs/convergence.md, "Contact"): a backup that carries
// heartbeats only to a peer that asks for them (this host's segment frames are late there) or
// whose segment frames are late here, and every other heartbeat to a version that cannot ask.
// A segment that delivers everything costs no second-path frame; a late frame brings them at
// once; a host cut off the segment both ways still talks to its peers by the second path.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <utility>

#include "heartbeat_codec.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_second_path {

namespace {

constexpr std::int64_t kPeriod = 1000;
constexpr std::int64_t kTolerance = 5;
const std::vector<std::uint8_t> kKey(32, 0x5a);

Simulator cluster(std::uint64_t seed, std::size_t n, bool keyed = true,
                  std::uint32_t tolerance = kTolerance) {
    Simulator sim(seed, {});
    for (std::size_t i = 0; i < n; ++i) {
        auto c = default_config(static_cast<std::uint8_t>(i + 1));
        c.cluster.heartbeat_tolerance = tolerance;
        if (keyed)
            c.cluster.key = kKey;
        sim.add_host(c);
    }
    return sim;
}

// Second-path frames delivered, by (sender, receiver): counted on the way, none dropped.
struct Deliveries {
    std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> count;
    std::uint64_t between(std::size_t from, std::size_t to) const {
        const auto it = count.find({from, to});
        return it == count.end() ? 0 : it->second;
    }
    std::uint64_t total() const {
        std::uint64_t t = 0;
        for (const auto& [pair, n] : count)
            t += n;
        return t;
    }
};

void count_contact(Simulator& sim, Deliveries& d) {
    sim.drop_contact = [&d](std::size_t from, std::size_t to, const std::vector<std::uint8_t>&) {
        ++d.count[{from, to}];
        return false;
    };
}

// The frame a version before the want section sent: the same without it (unkeyed clusters:
// no HMAC to redo).
std::vector<std::uint8_t> without_want(const std::vector<std::uint8_t>& frame) {
    if (is_map_chunk(frame) || !decode_heartbeat(frame).heartbeat)
        return frame;
    return without_sections(frame, {kSectionWant});
}

} // namespace

TEST_CASE("a settled cluster whose segment delivers every frame sends none by the second path") {
    auto sim = cluster(700, 6);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.run_until(sim.now() + 3 * kPeriod);
    Deliveries d;
    count_contact(sim, d);
    const auto epoch = sim.host(0).engine->epoch();
    sim.run_until(sim.now() + 30 * kPeriod);
    CHECK(d.total() == 0);
    CHECK(sim.settled());
    CHECK(sim.host(0).engine->epoch() == epoch);
}

TEST_CASE("late segment frames bring the second path's copies at once, and they stop after") {
    auto sim = cluster(710, 4);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.run_until(sim.now() + 3 * kPeriod);
    Deliveries d;
    count_contact(sim, d);
    const auto epoch = sim.host(0).engine->epoch();
    // Host 3's segment frames stop reaching host 1 for five periods (within two tolerances:
    // no change of view). Within two periods host 1 asks host 3 for the second path's copies
    // (and sends its own), and host 3 sends them from then on.
    sim.drop = [](std::size_t from, std::size_t to, const auto&) { return from == 2 && to == 0; };
    sim.run_until(sim.now() + 5 * kPeriod);
    CHECK(d.between(2, 0) >= 3);
    CHECK(d.between(0, 2) >= 3);
    for (std::size_t from = 0; from < 4; ++from) // nobody else is asked, nor answers
        for (std::size_t to = 0; to < 4; ++to)
            if (!(from == 2 && to == 0) && !(from == 0 && to == 2))
                CHECK(d.between(from, to) == 0);
    sim.drop = nullptr;
    sim.run_until(sim.now() + 3 * kPeriod);
    const auto after = d.total();
    sim.run_until(sim.now() + 10 * kPeriod);
    CHECK(d.total() == after);
    CHECK(sim.host(0).engine->epoch() == epoch);
    CHECK(sim.settled());
}

TEST_CASE("a request is made the moment a peer's segment frames turn late, and answered at once") {
    // The last frame heard came at most a period before the cut: late a period and a half
    // after it, asked at that instant, answered a quarter period later at most. Waiting for
    // the regular heartbeats instead would take up to a period more on each side.
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
        INFO("seed=" << seed);
        auto sim = cluster(750 + seed, 3);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        sim.run_until(sim.now() + kPeriod + static_cast<std::int64_t>(seed) * kPeriod / 6);
        Deliveries d;
        count_contact(sim, d);
        sim.drop = [](std::size_t from, std::size_t to, const auto&) {
            return from == 1 && to == 0;
        };
        sim.run_until(sim.now() + kPeriod * 5 / 2 + 50);
        CHECK(d.between(1, 0) >= 1);
    }
}

TEST_CASE("a host cut off the segment both ways stays alive by the second path and never serves "
          "beside the cluster") {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        const std::uint32_t tolerance = seed < 2 ? 5 : 4; // 4: the least that asks
        INFO("seed=" << seed << " tolerance=" << tolerance);
        auto sim = cluster(720 + seed, 4, true, tolerance);
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
        sim.reset_double_stats();
        const std::size_t cut = 3;
        sim.drop = [&](std::size_t from, std::size_t to, const auto&) {
            return from == cut || to == cut;
        };
        const auto fault = sim.now();
        // It hears nobody on the segment and nobody hears it there: the larger group serves,
        // and it steps down. Without frames both ways on the second path each side would
        // take the other for dead and it would serve every bucket alone.
        REQUIRE(sim.run_until(
            [&] {
                return sim.host(cut).engine->state() == HostState::refused && sim.all_owned_once();
            },
            fault + (2 * tolerance + 3) * kPeriod));
        sim.run_until(sim.now() + 10 * kPeriod);
        CHECK(sim.max_double_ms() == 0);
        CHECK(sim.host(cut).engine->buckets_owned(0) == 0);
        for (std::size_t i = 0; i < cut; ++i)
            CHECK_FALSE(has_event(sim.host(i), EventKind::host_left, static_cast<std::uint8_t>(cut + 1)));
        CHECK_FALSE(has_event(sim.host(cut), EventKind::host_left, 1));
        sim.drop = nullptr;
        REQUIRE(sim.run_until(
            [&] { return sim.host(cut).engine->state() == HostState::converged && sim.settled(); },
            sim.now() + 30 * kPeriod));
        CHECK(sim.max_double_ms() == 0);
    }
}

TEST_CASE("a peer that cannot ask (no want section) gets every other heartbeat by the second "
          "path, as before") {
    auto sim = cluster(730, 4, false);
    const std::size_t old = 3;
    sim.rewrite = [&](std::size_t from, std::size_t, const std::vector<std::uint8_t>& f) {
        return from == old ? without_want(f) : f;
    };
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.run_until(sim.now() + 3 * kPeriod);
    Deliveries d;
    count_contact(sim, d);
    sim.run_until(sim.now() + 20 * kPeriod);
    CHECK(d.between(0, old) >= 9);
    CHECK(d.between(0, old) <= 11);
    CHECK(d.between(0, 1) == 0);
    CHECK(sim.settled());
}

TEST_CASE("with a tolerance under four periods a settled host sends every other heartbeat by the "
          "second path: a request would come too late") {
    auto sim = cluster(740, 4, true, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.run_until(sim.now() + 3 * kPeriod);
    Deliveries d;
    count_contact(sim, d);
    sim.run_until(sim.now() + 20 * kPeriod);
    CHECK(d.between(0, 1) >= 9);
    CHECK(d.between(0, 1) <= 11);
    CHECK(sim.settled());
}

TEST_CASE("cluster.peers: a host that heard nobody sends to every listed address but its own; "
          "a settled cluster sends nothing more") {
    auto listed = [](std::uint8_t priority, std::uint8_t hosts) {
        auto c = default_config(priority);
        c.cluster.key = kKey;
        for (std::uint8_t p = 1; p <= hosts; ++p)
            c.host.peers.push_back(default_config(p).host.contact);
        return c;
    };
    ConvergenceEngine alone(listed(2, 3), 7, Millis{0});
    alone.on_command({CommandKind::start}, Millis{0});
    std::map<std::uint8_t, int> sent; // by the address's last byte (10.0.0.priority)
    for (std::int64_t t = 0; t <= 3 * kPeriod; t += kPeriod / 10) {
        alone.on_tick(Millis{t});
        for (const auto& f : alone.take_decision().contact) {
            CHECK(f.priority == 0); // nobody known
            ++sent[f.to.address[3]];
        }
    }
    CHECK(sent[1] >= 3);
    CHECK(sent[3] >= 3);
    CHECK(sent.count(2) == 0); // its own
    CHECK(sent.size() == 2);

    Simulator sim(720, {});
    for (std::uint8_t p = 1; p <= 5; ++p)
        sim.add_host(listed(p, 6)); // host 6 is listed but never runs
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.run_until(sim.now() + 3 * kPeriod);
    Deliveries d;
    count_contact(sim, d);
    std::vector<std::uint64_t> before;
    for (std::size_t i = 0; i < 5; ++i)
        before.push_back(sim.host(i).contact_frames_sent);
    sim.run_until(sim.now() + 30 * kPeriod);
    CHECK(d.total() == 0); // between the live hosts: nothing, as without the list
    for (std::size_t i = 0; i < 5; ++i) {
        // Only to the listed host that never answers: one frame a heartbeat.
        const auto extra = sim.host(i).contact_frames_sent - before[i];
        CHECK(extra >= 28);
        CHECK(extra <= 32);
    }
}

} // namespace test_second_path
