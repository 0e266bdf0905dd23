#include "allocation.hpp"

#include <algorithm>
#include <map>
#include <numeric>

#include "digest.hpp"

namespace nlb {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// HRW draw of host `priority` for bucket `b`, uniform in [1, 2^32).
std::uint32_t draw(std::uint8_t priority, std::uint32_t b) {
    const auto x = splitmix64((std::uint64_t{priority} << 32) ^ b ^ 0x6e6c6268ull /* "nlbh" */);
    return static_cast<std::uint32_t>(x >> 32) | 1u;
}

// -log2(u / 2^32) in Q16 fixed point, integer only (a quadratic fit of log2 on the mantissa,
// error < 0.006): identical on every CPU, unlike std::log.
std::uint32_t neg_log2_q16(std::uint32_t u) {
    const int n = 31 - __builtin_clz(u);
    const std::uint32_t m = n >= 16 ? u >> (n - 16) : u << (16 - n); // 1.16 fixed
    const std::uint32_t f = m & 0xffffu;
    const std::uint32_t log2_frac = f + ((((f * (65536u - f)) >> 16) * 22713u) >> 16);
    const std::uint32_t log2_q16 = (static_cast<std::uint32_t>(n) << 16) + log2_frac;
    return (32u << 16) - log2_q16;
}

// Host tie-break key for largest remainders: fixed per priority, so it does not reshuffle
// when others join or leave.
std::uint32_t tie_key(std::uint8_t priority) {
    return static_cast<std::uint32_t>(splitmix64(0x7175u ^ priority));
}

struct Choice {
    std::uint64_t score; // lower is preferred
    std::uint32_t host;  // candidate index
};

bool better(const Choice& a, const Choice& b) {
    return a.score != b.score ? a.score < b.score : a.host < b.host;
}

} // namespace

std::vector<std::uint32_t> bucket_quotas(std::span<const std::uint32_t> weights,
                                         std::span<const std::uint8_t> priorities) {
    const std::uint64_t total = std::accumulate(weights.begin(), weights.end(), std::uint64_t{0});
    std::vector<std::uint32_t> quota(weights.size(), 0);
    if (total == 0)
        return quota;
    std::uint64_t given = 0;
    std::vector<std::uint32_t> order;
    for (std::uint32_t i = 0; i < weights.size(); ++i) {
        quota[i] = static_cast<std::uint32_t>(std::uint64_t{NLB_BUCKETS} * weights[i] / total);
        given += quota[i];
        if (weights[i] > 0)
            order.push_back(i);
    }
    auto remainder = [&](std::uint32_t i) {
        return std::uint64_t{NLB_BUCKETS} * weights[i] % total;
    };
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
        const auto ra = remainder(a), rb = remainder(b);
        if (ra != rb)
            return ra > rb;
        const auto ka = tie_key(priorities[a]), kb = tie_key(priorities[b]);
        return ka != kb ? ka < kb : priorities[a] < priorities[b];
    });
    for (std::uint32_t k = 0; given < NLB_BUCKETS; ++k, ++given)
        ++quota[order[k]];
    return quota;
}

namespace {

// -log2 of every member's HRW draw for every bucket, [bucket][member]: the part of the
// scores that does not depend on a rule's weights, computed once per allocation.
struct DrawTable {
    std::uint32_t hosts = 0;
    std::vector<std::uint32_t> neg_log2; // Q16

    explicit DrawTable(std::span<const std::uint8_t> priorities)
        : hosts(static_cast<std::uint32_t>(priorities.size())),
          neg_log2(std::size_t{NLB_BUCKETS} * priorities.size()) {
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            for (std::uint32_t h = 0; h < hosts; ++h)
                neg_log2[std::size_t{b} * hosts + h] = neg_log2_q16(draw(priorities[h], b));
    }
};

OwnerMap assign_with(const DrawTable& table, std::span<const std::uint8_t> priorities,
                     std::span<const std::uint32_t> weights) {
    OwnerMap owners{};
    const auto quota = bucket_quotas(weights, priorities);
    const std::uint32_t n = table.hosts;
    // Score = -log2(u) * 2^20 / w; a host with quota 0 is never proposed to.
    std::vector<std::uint64_t> reciprocal(n, 0);
    bool any = false;
    for (std::uint32_t h = 0; h < n; ++h)
        if (quota[h] > 0) {
            reciprocal[h] = (std::uint64_t{1} << 20) / weights[h];
            any = true;
        }
    if (!any)
        return owners;
    auto score = [&](std::uint32_t h, std::uint32_t b) {
        return std::uint64_t{table.neg_log2[std::size_t{b} * n + h]} * reciprocal[h];
    };
    // The bucket's next choice: the best candidate strictly worse than the last one it tried
    // (lexicographic on score, then candidate index); recomputed on demand, since most
    // buckets are kept by their first choice.
    auto next_choice = [&](std::uint32_t b, const Choice* last) {
        Choice best{~std::uint64_t{0}, n};
        for (std::uint32_t h = 0; h < n; ++h) {
            if (quota[h] == 0)
                continue;
            const Choice c{score(h, b), h};
            if ((!last || better(*last, c)) && better(c, best))
                best = c;
        }
        return best;
    };

    // Deferred acceptance. A host keeps its best `quota` proposals (lowest score, then lowest
    // bucket) in a heap whose top is the worst kept one.
    struct Held {
        std::uint64_t score;
        std::uint32_t bucket;
        bool operator<(const Held& o) const {
            return score != o.score ? score < o.score : bucket < o.bucket;
        }
    };
    std::vector<std::vector<Held>> held(n);
    for (std::uint32_t h = 0; h < n; ++h)
        held[h].reserve(quota[h]);
    std::vector<Choice> last(NLB_BUCKETS);
    std::vector<bool> started(NLB_BUCKETS, false);
    std::vector<std::uint32_t> free_buckets(NLB_BUCKETS);
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        free_buckets[b] = NLB_BUCKETS - 1 - b;
    while (!free_buckets.empty()) {
        const std::uint32_t b = free_buckets.back();
        free_buckets.pop_back();
        // Each bucket proposes to each host at most once, so this ends after at most
        // NLB_BUCKETS * n proposals; a rejected bucket always finds a host with room because
        // the quotas add up to NLB_BUCKETS.
        const Choice c = next_choice(b, started[b] ? &last[b] : nullptr);
        started[b] = true;
        last[b] = c;
        auto& heap = held[c.host];
        const Held offer{c.score, b};
        if (heap.size() < quota[c.host]) {
            heap.push_back(offer);
            std::push_heap(heap.begin(), heap.end());
        } else if (offer < heap.front()) {
            std::pop_heap(heap.begin(), heap.end());
            free_buckets.push_back(heap.back().bucket);
            heap.back() = offer;
            std::push_heap(heap.begin(), heap.end());
        } else {
            free_buckets.push_back(b);
        }
    }
    for (std::uint32_t h = 0; h < n; ++h)
        for (const auto& kept : held[h])
            owners[kept.bucket] = priorities[h];
    return owners;
}

} // namespace

OwnerMap assign_buckets(std::span<const std::uint8_t> priorities,
                        std::span<const std::uint32_t> weights) {
    const DrawTable table(priorities);
    return assign_with(table, priorities, weights);
}

std::unique_ptr<ClusterMap> allocate(std::span<const RuleMode> modes,
                                     std::span<const MemberParams> members_in) {
    auto map = std::make_unique<ClusterMap>();
    std::vector<MemberParams> members(members_in.begin(), members_in.end());
    std::sort(members.begin(), members.end(),
              [](const auto& a, const auto& b) { return a.priority < b.priority; });
    std::vector<std::uint8_t> priorities;
    for (const auto& m : members)
        priorities.push_back(m.priority);

    // Rules with the same weight vector share one computation.
    std::map<std::vector<std::uint32_t>, OwnerMap> done;
    std::unique_ptr<DrawTable> table;
    const auto rule_count = std::min<std::size_t>(modes.size(), NLB_MAX_RULES);
    for (std::size_t r = 0; r < rule_count; ++r) {
        auto& slot = map->slots[r];
        switch (modes[r]) {
        case RuleMode::disabled:
            break;
        case RuleMode::single: {
            const MemberParams* best = nullptr;
            for (const auto& m : members) {
                if (m.control[r] != RuleControl::enabled)
                    continue;
                if (!best || m.rules[r].handling_priority < best->rules[r].handling_priority)
                    best = &m;
            }
            slot.fill(best ? best->priority : 0);
            break;
        }
        case RuleMode::multiple: {
            std::vector<std::uint32_t> weights;
            for (const auto& m : members)
                weights.push_back(effective_weight(m.rules[r].load_weight, m.control[r]));
            auto it = done.find(weights);
            if (it == done.end()) {
                if (!table)
                    table = std::make_unique<DrawTable>(priorities);
                it = done.emplace(weights, assign_with(*table, priorities, weights)).first;
            }
            slot = it->second;
            break;
        }
        }
    }
    map->slots[NLB_RULE_DEFAULT].fill(members.empty() ? 0 : members.front().priority);
    return map;
}

std::uint64_t ClusterMap::digest() const {
    DigestBuilder d;
    for (const auto& slot : slots)
        d.bytes(slot);
    return d.finish();
}

} // namespace nlb
