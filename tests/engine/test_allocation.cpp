// The allocation function: determinism, balance, weights, modes, movement.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>

#include "allocation.hpp"

using namespace nlb;

namespace test_allocation {

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

// Independent lower bound on the buckets any +-1-balanced map must move from `before` to the
// members `after` (the same bound for every function): what departed or weight-0 owners held
// plus what hosts hold beyond the ceiling of their new share, or what hosts lack below its
// floor, whichever is larger.
std::uint32_t lower_bound_moves(const OwnerMap& before, const std::vector<MemberParams>& after,
                                std::size_t rule = 0) {
    std::uint64_t total = 0;
    for (const auto& m : after)
        total += effective_weight(m.rules[rule].load_weight, m.control[rule]);
    auto c = counts(before);
    std::uint64_t out = 0, in = 0, kept = 0;
    for (const auto& m : after) {
        const std::uint64_t w = effective_weight(m.rules[rule].load_weight, m.control[rule]);
        if (total == 0 || w == 0)
            continue;
        const std::uint64_t lo = NLB_BUCKETS * w / total;
        const std::uint64_t hi = lo + (NLB_BUCKETS * w % total != 0);
        const std::uint64_t k = c[m.priority];
        kept += k;
        out += k > hi ? k - hi : 0;
        in += lo > k ? lo - k : 0;
    }
    const std::uint64_t departed = total == 0 ? 0 : NLB_BUCKETS - kept;
    return static_cast<std::uint32_t>(std::max(departed + out, in));
}

std::vector<MemberParams> random_cluster(std::mt19937_64& rng, std::size_t n, int weights) {
    std::vector<std::uint8_t> prios(64);
    std::iota(prios.begin(), prios.end(), 1);
    std::shuffle(prios.begin(), prios.end(), rng);
    prios.resize(n);
    std::vector<std::uint8_t> w(n, kEqualWeight);
    if (weights > 0)
        for (auto& x : w)
            x = static_cast<std::uint8_t>(weights == 1 ? 1 + rng() % 100 : rng() % 101);
    return members(prios, w);
}

// One join or one leave on a cluster whose map came from g itself (a random history of
// joins and leaves from a cold start), for every size 1..64 and three kinds of weights
// (equal, random 1..100, random 0..100), several seeds: moved buckets against the lower
// bound.
struct MovementSample {
    std::size_t hosts; // the larger of the two memberships
    bool join;
    int weights;
    std::uint32_t moved, minimum;
    double ratio;
};

std::vector<MovementSample> movement_sweep(int seeds) {
    std::vector<MovementSample> out;
    std::mt19937_64 rng(11);
    const std::vector<RuleMode> modes{RuleMode::multiple};
    for (std::size_t n = 1; n <= 64; ++n)
        for (int weights = 0; weights < 3; ++weights)
            for (int seed = 0; seed < seeds; ++seed) {
                auto all = random_cluster(rng, 64, weights);
                // Members: the first n; history: a cold start with n - 1 of them or n + 1,
                // then one leave or join to n.
                const bool join = rng() % 2;
                const std::size_t from = join ? n - 1 : n + 1;
                if (from == 0 || from > 64)
                    continue;
                std::vector<MemberParams> before(all.begin(), all.begin() + from);
                // A few earlier events so the base is g's own output, not allocate()'s.
                auto base = allocate(modes, before);
                for (int e = 0; e < 3; ++e) {
                    auto step = before;
                    if (step.size() > 1 && rng() % 2)
                        step.erase(step.begin() + static_cast<long>(rng() % step.size()));
                    base = reallocate(base.get(), modes, step);
                    base = reallocate(base.get(), modes, before);
                }
                std::vector<MemberParams> after(all.begin(), all.begin() + n);
                auto next = reallocate(base.get(), modes, after);
                const auto min = lower_bound_moves(base->slots[0], after);
                const auto moved = moves(base->slots[0], next->slots[0]);
                out.push_back({std::max(n, from), join, weights, moved, min,
                               min == 0 ? (moved == 0 ? 1.0 : 99.0) : double(moved) / min});
            }
    return out;
}

void check_balanced(const OwnerMap& map, const std::vector<MemberParams>& m, std::size_t rule = 0) {
    auto c = counts(map);
    double total = 0;
    for (const auto& x : m)
        total += effective_weight(x.rules[rule].load_weight, x.control[rule]);
    std::uint32_t owned = 0;
    for (const auto& x : m) {
        const auto w = effective_weight(x.rules[rule].load_weight, x.control[rule]);
        const double share = total == 0 ? 0 : double(NLB_BUCKETS) * w / total;
        INFO("host " << int(x.priority) << " weight " << w);
        CHECK(std::abs(double(c[x.priority]) - share) < 1.0);
        if (w == 0)
            CHECK(c[x.priority] == 0);
        owned += c[x.priority];
    }
    CHECK(owned == (total == 0 ? 0u : NLB_BUCKETS));
}

} // namespace

TEST_CASE("g keeps +-1 balance, weight 0 owns nothing, and is deterministic") {
    std::mt19937_64 rng(5);
    const std::vector<RuleMode> modes{RuleMode::multiple, RuleMode::multiple, RuleMode::single,
                                      RuleMode::disabled};
    for (int trial = 0; trial < 200; ++trial) {
        const std::size_t n = 1 + rng() % 64;
        auto all = random_cluster(rng, 64, trial % 3);
        for (auto& m : all) {
            m.rules[1].load_weight = static_cast<std::uint8_t>(rng() % 101);
            m.rules[2].handling_priority = static_cast<std::uint8_t>(rng());
            if (rng() % 8 == 0)
                m.control[1] = rng() % 2 ? RuleControl::draining : RuleControl::disabled;
        }
        auto base = allocate(modes, std::span(all).first(1 + rng() % 64));
        std::vector<MemberParams> m(all.begin(), all.begin() + static_cast<long>(n));
        auto a = reallocate(base.get(), modes, m);
        INFO("trial " << trial << " n=" << n);
        check_balanced(a->slots[0], m, 0);
        check_balanced(a->slots[1], m, 1);
        // Single, disabled and default slots are those of the stateless allocation.
        auto fresh = allocate(modes, m);
        CHECK(a->slots[2] == fresh->slots[2]);
        CHECK(a->slots[3] == fresh->slots[3]);
        CHECK(a->slots[NLB_RULE_DEFAULT] == fresh->slots[NLB_RULE_DEFAULT]);
        // Deterministic: member order does not matter, and a second run gives the same map.
        std::shuffle(m.begin(), m.end(), rng);
        auto b = reallocate(base.get(), modes, m);
        CHECK(*a == *b);
        // A balanced map stays as it is when nothing changes.
        auto again = reallocate(a.get(), modes, m);
        CHECK(*again == *a);
    }
}

TEST_CASE("g: a host going to weight 0 hands over exactly its buckets") {
    const std::vector<RuleMode> modes{RuleMode::multiple};
    auto m = members({1, 2, 3, 4}, {50, 50, 50, 50});
    auto base = allocate(modes, m);
    m[2].rules[0].load_weight = 0;
    auto next = reallocate(base.get(), modes, m);
    CHECK(counts(next->slots[0])[3] == 0);
    CHECK(moves(base->slots[0], next->slots[0]) == counts(base->slots[0])[3]);
    check_balanced(next->slots[0], m);
    // Everyone at 0: nobody owns the rule, and g starts from nothing when it comes back.
    for (auto& x : m)
        x.rules[0].load_weight = 0;
    auto none = reallocate(next.get(), modes, m);
    CHECK(counts(none->slots[0])[0] == NLB_BUCKETS);
    m[0].rules[0].load_weight = 10;
    auto one = reallocate(none.get(), modes, m);
    CHECK(counts(one->slots[0])[1] == NLB_BUCKETS);
}

TEST_CASE("contract: a single join or leave moves at most 1.15x the minimum") {
    // DESIGN.md section 2, "Movement": over random clusters of 1..64 hosts whose maps come
    // from g's own history, mean and worst.
    const auto samples = movement_sweep(4);
    REQUIRE(samples.size() > 700);
    double sum = 0, worst = 0;
    for (const auto& s : samples) {
        INFO("hosts=" << s.hosts << (s.join ? " join" : " leave") << " weights=" << s.weights
                      << " moved=" << s.moved << " minimum=" << s.minimum);
        CHECK(s.ratio <= 1.15);
        sum += s.ratio;
        worst = std::max(worst, s.ratio);
    }
    CHECK(sum / double(samples.size()) <= 1.15);
    CHECK(worst <= 1.15);
}

// The figures of this sweep: nlb-engine-tests "[.figures]".
TEST_CASE("movement sweep figures", "[.figures]") {
    const auto samples = movement_sweep(10);
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
}

} // namespace test_allocation
