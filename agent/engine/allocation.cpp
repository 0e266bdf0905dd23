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

// -log2 of every possible host's HRW draw for every bucket, Q16: a constant, computed once per
// process and shared by every allocation and rule. Two layouts: by column ([priority - 1]
// [bucket]) for the first choices, by row ([bucket][priority - 1]) for the later ones.
struct DrawTable {
    std::vector<std::uint32_t> columns, rows;
    DrawTable()
        : columns(std::size_t{NLB_BUCKETS} * NLB_MAX_HOSTS),
          rows(std::size_t{NLB_BUCKETS} * NLB_MAX_HOSTS) {
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            for (std::uint32_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
                const auto v = neg_log2_q16(draw(static_cast<std::uint8_t>(p), b));
                columns[std::size_t{p - 1} * NLB_BUCKETS + b] = v;
                rows[std::size_t{b} * NLB_MAX_HOSTS + p - 1] = v;
            }
    }
};

const DrawTable& draw_table() {
    static const DrawTable table;
    return table;
}

// best[b] = min(best[b], key of candidate `position` for bucket b), keys as in assign_with.
// Integer only, so every clone computes the same.
__attribute__((target_clones("avx2", "default"))) void first_choices(const std::uint32_t* column,
                                                                     std::uint32_t reciprocal,
                                                                     std::uint32_t position,
                                                                     std::uint64_t* best) {
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        best[b] = std::min(best[b], ((std::uint64_t{column[b]} * reciprocal) << 6) | position);
}

OwnerMap assign_with(std::span<const std::uint8_t> priorities,
                     std::span<const std::uint32_t> weights) {
    OwnerMap owners{};
    const auto n = static_cast<std::uint32_t>(priorities.size());
    // A priority outside 1..NLB_MAX_HOSTS (never admitted by the engine) owns nothing.
    std::vector<std::uint32_t> weight(weights.begin(), weights.end());
    for (std::uint32_t h = 0; h < n; ++h)
        if (priorities[h] == 0 || priorities[h] > NLB_MAX_HOSTS)
            weight[h] = 0;
    const auto quota = bucket_quotas(weight, priorities);
    // Candidates: the members with a quota. Score = -log2(u) * 2^20 / w, lower is preferred.
    std::vector<std::uint32_t> active, column;
    std::vector<std::uint64_t> reciprocal;
    for (std::uint32_t h = 0; h < n; ++h)
        if (quota[h] > 0) {
            active.push_back(h);
            column.push_back(priorities[h] - 1u);
            reciprocal.push_back((std::uint64_t{1} << 20) / weight[h]);
        }
    if (active.empty())
        return owners;
    const DrawTable& table = draw_table();
    const auto k = static_cast<std::uint32_t>(active.size());
    // A candidate's key for a bucket: its score shifted left 6 bits, or'ed with its position
    // among the candidates (score < 2^42, so this is exact): the order of keys is the order of
    // (score, position).
    auto key = [&](std::uint32_t i, std::uint32_t b) {
        return ((std::uint64_t{table.rows[std::size_t{b} * NLB_MAX_HOSTS + column[i]]} *
                 reciprocal[i])
                << 6) |
               i;
    };
    // The bucket's best candidate with a key above `last`.
    auto next_choice = [&](std::uint32_t b, std::uint64_t last) {
        std::uint64_t best = ~std::uint64_t{0};
        for (std::uint32_t i = 0; i < k; ++i) {
            const std::uint64_t c = key(i, b);
            best = std::min(best, c > last ? c : ~std::uint64_t{0}); // branch-free
        }
        return best;
    };

    // Deferred acceptance. A candidate keeps its best `quota` proposals (lowest score, then
    // lowest bucket) in a heap whose top is the worst kept one. The result, the bucket-optimal
    // stable matching, does not depend on the order of proposals, so the first round is done
    // in bulk: every bucket proposes to its first choice, every candidate keeps its best.
    struct Held {
        std::uint64_t score;
        std::uint32_t bucket;
        bool operator<(const Held& o) const {
            return score != o.score ? score < o.score : bucket < o.bucket;
        }
    };
    std::vector<std::vector<Held>> held(k);
    std::vector<std::uint32_t> free_buckets;
    // First choices, the bulk of the work: one candidate (one column of the table) at a time,
    // a loop the compiler vectorizes.
    std::vector<std::uint64_t> last(NLB_BUCKETS, ~std::uint64_t{0});
    for (std::uint32_t i = 0; i < k; ++i)
        first_choices(table.columns.data() + std::size_t{column[i]} * NLB_BUCKETS,
                      static_cast<std::uint32_t>(reciprocal[i]), i, last.data());
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        held[last[b] & 63u].push_back({last[b] >> 6, b});
    for (std::uint32_t i = 0; i < k; ++i) {
        auto& heap = held[i];
        const std::uint32_t q = quota[active[i]];
        if (heap.size() > q) {
            std::nth_element(heap.begin(), heap.begin() + q, heap.end());
            for (auto it = heap.begin() + q; it != heap.end(); ++it)
                free_buckets.push_back(it->bucket);
            heap.resize(q);
        }
        heap.reserve(q);
        std::make_heap(heap.begin(), heap.end());
    }
    while (!free_buckets.empty()) {
        const std::uint32_t b = free_buckets.back();
        free_buckets.pop_back();
        // Each bucket proposes to each candidate at most once, so this ends; a rejected
        // bucket always finds a candidate with room because the quotas add up to NLB_BUCKETS.
        last[b] = next_choice(b, last[b]);
        auto& heap = held[last[b] & 63u];
        const Held offer{last[b] >> 6, b};
        if (heap.size() < quota[active[last[b] & 63u]]) {
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
    for (std::uint32_t i = 0; i < k; ++i)
        for (const auto& kept : held[i])
            owners[kept.bucket] = priorities[active[i]];
    return owners;
}

// g() for one `multiple` rule: see allocation.hpp. Integer arithmetic only.
OwnerMap reassign_with(const OwnerMap& base, std::span<const std::uint8_t> priorities,
                       std::span<const std::uint32_t> weights) {
    OwnerMap owners{};
    const auto n = static_cast<std::uint32_t>(priorities.size());
    std::vector<std::uint64_t> weight(weights.begin(), weights.end());
    std::array<int, NLB_MAX_HOSTS + 1> index{}; // priority -> position + 1, 0 = not a candidate
    std::uint64_t total = 0;
    for (std::uint32_t h = 0; h < n; ++h) {
        if (priorities[h] == 0 || priorities[h] > NLB_MAX_HOSTS)
            weight[h] = 0;
        total += weight[h];
        if (weight[h] > 0)
            index[priorities[h]] = static_cast<int>(h) + 1;
    }
    if (total == 0)
        return owners;
    // Band of each host: floor and ceiling of its weighted share.
    std::vector<std::uint32_t> lo(n), hi(n), count(n, 0), target(n);
    std::vector<std::uint64_t> remainder(n);
    for (std::uint32_t h = 0; h < n; ++h) {
        lo[h] = static_cast<std::uint32_t>(std::uint64_t{NLB_BUCKETS} * weight[h] / total);
        remainder[h] = std::uint64_t{NLB_BUCKETS} * weight[h] % total;
        hi[h] = lo[h] + (remainder[h] != 0);
    }
    for (const auto o : base)
        if (index[o])
            ++count[index[o] - 1];
    // Keep each host's count when it is within its band: only then is movement minimal.
    std::int64_t sum = 0;
    for (std::uint32_t h = 0; h < n; ++h) {
        target[h] = std::clamp(count[h], lo[h], hi[h]);
        sum += target[h];
    }
    if (sum != NLB_BUCKETS) {
        // Every step costs (or saves) the same one bucket, so only the choice of hosts is
        // left: the largest remainders round up, as in bucket_quotas.
        const bool raise = sum < NLB_BUCKETS;
        std::vector<std::uint32_t> order;
        for (std::uint32_t h = 0; h < n; ++h)
            if (raise ? target[h] < hi[h] : target[h] > lo[h])
                order.push_back(h);
        std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
            if (remainder[a] != remainder[b])
                return raise ? remainder[a] > remainder[b] : remainder[a] < remainder[b];
            const auto ka = tie_key(priorities[a]), kb = tie_key(priorities[b]);
            return ka != kb ? ka < kb : priorities[a] < priorities[b];
        });
        // sum(lo) <= NLB_BUCKETS <= sum(hi) and hi - lo <= 1: `order` is long enough.
        for (std::size_t k = 0; sum != NLB_BUCKETS && k < order.size(); ++k) {
            target[order[k]] += raise ? 1 : -1;
            sum += raise ? 1 : -1;
        }
    }
    const DrawTable& table = draw_table();
    std::vector<std::uint64_t> reciprocal(n, 0);
    for (std::uint32_t h = 0; h < n; ++h)
        if (weight[h] > 0)
            reciprocal[h] = (std::uint64_t{1} << 20) / weight[h];
    auto key = [&](std::uint32_t h, std::uint32_t b) {
        return ((std::uint64_t{table.rows[std::size_t{b} * NLB_MAX_HOSTS + priorities[h] - 1]} *
                 reciprocal[h])
                << 6) |
               h;
    };
    // Over-quota hosts keep their best buckets (HRW order); the rest is freed with the
    // buckets of departed, weight-0 or unknown owners.
    std::vector<std::vector<std::uint32_t>> mine(n);
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        if (index[base[b]])
            mine[index[base[b]] - 1].push_back(b);
    std::vector<std::uint32_t> room(n);
    for (std::uint32_t h = 0; h < n; ++h) {
        auto& list = mine[h];
        if (list.size() > target[h]) {
            std::nth_element(
                list.begin(), list.begin() + target[h], list.end(),
                [&](std::uint32_t a, std::uint32_t b) { return key(h, a) < key(h, b); });
            list.resize(target[h]);
        }
        for (const auto b : list)
            owners[b] = priorities[h];
        room[h] = target[h] - static_cast<std::uint32_t>(list.size());
    }
    // Freed buckets, in bucket order, to the best-scoring host that still has room.
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b) {
        if (owners[b])
            continue;
        std::uint64_t best = ~std::uint64_t{0};
        for (std::uint32_t h = 0; h < n; ++h)
            if (room[h] > 0)
                best = std::min(best, key(h, b));
        if (best == ~std::uint64_t{0})
            break; // cannot happen: the targets add up to NLB_BUCKETS
        const auto h = static_cast<std::uint32_t>(best & 63u);
        owners[b] = priorities[h];
        --room[h];
    }
    return owners;
}

} // namespace

OwnerMap assign_buckets(std::span<const std::uint8_t> priorities,
                        std::span<const std::uint32_t> weights) {
    return assign_with(priorities, weights);
}

OwnerMap reassign_buckets(const OwnerMap& base, std::span<const std::uint8_t> priorities,
                          std::span<const std::uint32_t> weights) {
    return reassign_with(base, priorities, weights);
}

void prepare_allocation() {
    draw_table();
}

std::unique_ptr<ClusterMap> allocate(std::span<const RuleMode> modes,
                                     std::span<const MemberParams> members_in) {
    return reallocate(nullptr, modes, members_in);
}

std::unique_ptr<ClusterMap> reallocate(const ClusterMap* base, std::span<const RuleMode> modes,
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
    struct Redone {
        std::vector<std::uint32_t> weights;
        std::size_t rule;
    };
    std::vector<Redone> redone;
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
            if (!base) {
                auto it = done.find(weights);
                if (it == done.end())
                    it = done.emplace(weights, assign_with(priorities, weights)).first;
                slot = it->second;
                break;
            }
            // Same weights and same previous map: same result.
            const auto same = std::find_if(redone.begin(), redone.end(), [&](const auto& d) {
                return d.weights == weights && base->slots[d.rule] == base->slots[r];
            });
            if (same != redone.end()) {
                slot = map->slots[same->rule];
                break;
            }
            slot = reassign_with(base->slots[r], priorities, weights);
            redone.push_back({std::move(weights), r});
            break;
        }
        }
    }
    map->slots[NLB_RULE_DEFAULT].fill(members.empty() ? 0 : members.front().priority);
    return map;
}

std::uint64_t ClusterMap::digest() const {
    // The slots one after another, as they lie in memory (no padding between byte arrays):
    // hashed in place rather than copied, 135 KB at every convergence.
    static_assert(sizeof(slots) == std::size_t{NLB_RULE_SLOTS} * NLB_BUCKETS);
    return digest64({reinterpret_cast<const std::uint8_t*>(slots.data()), sizeof(slots)});
}

} // namespace nlb
