// Convergence benchmark (scripts/bench/convergence.sh): allocation time, heartbeat size and
// bandwidth, movement on joins and leaves, balance, simulated failover and join times.
// Human-readable lines first, one JSON object on the last line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>

#include "heartbeat_codec.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace {

constexpr std::int64_t kPeriod = 1000;

std::vector<MemberParams> random_members(std::mt19937_64& rng, std::size_t n, bool weighted,
                                         std::size_t rules) {
    std::vector<std::uint8_t> prios(NLB_MAX_HOSTS);
    std::iota(prios.begin(), prios.end(), 1);
    std::shuffle(prios.begin(), prios.end(), rng);
    std::vector<MemberParams> m(n);
    for (std::size_t i = 0; i < n; ++i) {
        m[i].priority = prios[i];
        for (std::size_t r = 0; r < rules; ++r)
            m[i].rules[r].load_weight =
                weighted ? static_cast<std::uint8_t>(1 + rng() % 100) : kEqualWeight;
    }
    return m;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::uint32_t moved(const OwnerMap& a, const OwnerMap& b) {
    std::uint32_t m = 0;
    for (std::size_t i = 0; i < NLB_BUCKETS; ++i)
        m += a[i] != b[i];
    return m;
}

std::uint32_t minimum(const OwnerMap& a, const OwnerMap& b) {
    std::map<std::uint8_t, std::int64_t> before, after;
    for (auto o : a)
        ++before[o];
    for (auto o : b)
        ++after[o];
    std::uint32_t m = 0;
    for (auto [h, n] : before)
        m += static_cast<std::uint32_t>(std::max<std::int64_t>(0, n - after[h]));
    return m;
}

EngineConfig keyed(std::uint8_t p) {
    auto c = default_config(p);
    c.cluster.key.assign(32, 0x5a);
    return c;
}

} // namespace

int main() {
    std::mt19937_64 rng(2024);

    // Allocation: 64 hosts, 32 rules, every rule with its own weights (nothing shared), and
    // the common case of rules with the same weights.
    const std::vector<RuleMode> modes(NLB_MAX_RULES, RuleMode::multiple);
    std::vector<double> distinct, same;
    for (int i = 0; i < 5; ++i) {
        auto m = random_members(rng, 64, true, NLB_MAX_RULES);
        auto t0 = std::chrono::steady_clock::now();
        auto map = allocate(modes, m);
        distinct.push_back(ms_since(t0));
        auto e = random_members(rng, 64, false, NLB_MAX_RULES);
        t0 = std::chrono::steady_clock::now();
        map = allocate(modes, e);
        same.push_back(ms_since(t0));
    }
    const double alloc_ms = median(distinct), alloc_same_ms = median(same);
    // g (reallocate) on one leave, 64 -> 63 hosts, 32 rules with distinct weights.
    std::vector<double> regs;
    for (int i = 0; i < 5; ++i) {
        auto m = random_members(rng, 64, true, NLB_MAX_RULES);
        const auto base = allocate(modes, m);
        m.erase(m.begin() + static_cast<long>(rng() % m.size()));
        auto t0 = std::chrono::steady_clock::now();
        const auto next = reallocate(base.get(), modes, m);
        regs.push_back(ms_since(t0));
        (void)next;
    }
    const double realloc_ms = median(regs);
    std::printf("g (reallocate) on one leave, 64 hosts x 32 rules: %.2f ms\n", realloc_ms);
    std::printf("allocation 64 hosts x 32 rules: %.2f ms (distinct weights), %.2f ms (same)\n",
                alloc_ms, alloc_same_ms);

    // Largest heartbeat: 32 rules, HMAC, every slot's buckets dirty in a scattered pattern.
    Heartbeat hb;
    hb.priority = 64;
    hb.rule_count = NLB_MAX_RULES;
    hb.flags = Heartbeat::kFlagAuthenticated;
    for (std::uint8_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        DirtySlot d{s, {}};
        for (std::uint32_t b = 0; b < NLB_BUCKETS; b += 3)
            d.buckets.set(b);
        hb.dirty.push_back(d);
    }
    const auto largest = encode_heartbeat(hb).size();
    hb.dirty.clear();
    const auto typical = encode_heartbeat(hb).size();
    std::printf("heartbeat: %zu bytes with 32 rules and HMAC, %zu at most (every slot dirty)\n",
                typical, largest);

    // Movement and balance over random clusters: one join or one leave under g (the map is a
    // function of the previous one), equal or random weights.
    double ratio_sum = 0, ratio_worst = 0, max_dev = 0;
    int trials = 0;
    std::map<std::size_t, std::pair<double, int>> by_size;
    for (int t = 0; t < 400; ++t) {
        const std::size_t n = 2 + rng() % 63;
        const bool weighted = t % 2;
        auto m = random_members(rng, n, weighted, 1);
        const std::vector<RuleMode> one{RuleMode::multiple};
        // g (reallocate) on one join (t % 4 < 2) or one leave of host n, from a map with the
        // other membership that g itself produced after a cold start.
        const bool join = t % 4 < 2;
        std::vector<MemberParams> from(m.begin(), m.end() - (join ? 1 : 0));
        std::vector<MemberParams> to(m.begin(), m.end() - (join ? 0 : 1));
        auto cold = allocate(one, std::vector<MemberParams>(m.begin(), m.end() - 1));
        auto before = reallocate(cold.get(), one, from);
        auto big = reallocate(before.get(), one, to);
        const auto mv = moved(before->slots[0], big->slots[0]);
        const auto mn = minimum(before->slots[0], big->slots[0]);
        m = to; // balance is checked on the new map
        const double r = double(mv) / double(std::max<std::uint32_t>(mn, 1));
        ratio_sum += r;
        ratio_worst = std::max(ratio_worst, r);
        ++trials;
        auto& bucket = by_size[n <= 4 ? 4 : n <= 8 ? 8 : n <= 16 ? 16 : n <= 32 ? 32 : 64];
        bucket.first += r;
        ++bucket.second;
        double total = 0;
        for (const auto& x : m)
            total += effective_weight(x.rules[0].load_weight, RuleControl::enabled);
        std::map<std::uint8_t, int> count;
        for (auto o : big->slots[0])
            ++count[o];
        for (const auto& x : m) {
            const double share = NLB_BUCKETS *
                                 effective_weight(x.rules[0].load_weight, RuleControl::enabled) /
                                 total;
            max_dev = std::max(max_dev, std::abs(count[x.priority] - share));
        }
    }
    std::printf("movement on one join/leave: mean %.3f, worst %.3f x the minimum\n",
                ratio_sum / trials, ratio_worst);
    for (auto [size, v] : by_size)
        std::printf("  clusters up to %2zu hosts: mean %.3f\n", size, v.first / v.second);
    std::printf("balance: worst deviation from the weighted share %.3f buckets\n", max_dev);

    // Heartbeat bandwidth: 16 keyed hosts at 1 s, two minutes after convergence (Ethernet
    // header included).
    double bandwidth = 0;
    std::uint64_t join_chunk_bytes = 0;
    {
        Simulator sim(5, {});
        for (std::uint8_t p = 1; p <= 16; ++p)
            sim.add_host(keyed(p));
        sim.run_until([&] { return sim.settled(); }, 60 * kPeriod);
        std::uint64_t bytes0 = 0, frames0 = 0;
        for (std::size_t i = 0; i < sim.size(); ++i) {
            bytes0 += sim.host(i).bytes_sent;
            frames0 += sim.host(i).frames_sent;
        }
        const auto t0 = sim.now();
        sim.run_until(t0 + 120 * kPeriod);
        std::uint64_t bytes = 0, frames = 0;
        for (std::size_t i = 0; i < sim.size(); ++i) {
            bytes += sim.host(i).bytes_sent;
            frames += sim.host(i).frames_sent;
        }
        bandwidth = double(bytes - bytes0 + 14 * (frames - frames0)) / 120.0;
        std::printf("heartbeat bandwidth, 16 hosts at 1 s: %.0f B/s (NLB: 24 KB/s)\n", bandwidth);
        // A 17th host joins: the map chunks it takes (they flow only then).
        std::uint64_t chunk0 = 0, chunk1 = 0;
        for (std::size_t i = 0; i < sim.size(); ++i)
            chunk0 += sim.host(i).chunk_bytes_sent + 14 * sim.host(i).chunk_frames_sent;
        sim.add_host(keyed(17));
        sim.run_until([&] { return sim.settled(); }, sim.now() + 60 * kPeriod);
        for (std::size_t i = 0; i < sim.size(); ++i)
            chunk1 += sim.host(i).chunk_bytes_sent + 14 * sim.host(i).chunk_frames_sent;
        join_chunk_bytes = chunk1 - chunk0;
        std::printf("map transfer for a join (16 -> 17 hosts, one rule): %llu bytes\n",
                    static_cast<unsigned long long>(join_chunk_bytes));
    }

    // Failover and join in the simulator, in heartbeat periods (tolerance 5).
    double failover_worst = 0, failover_sum = 0, join_worst = 0, join_sum = 0;
    int runs = 0;
    for (std::uint64_t seed = 0; seed < 10; ++seed) {
        const std::size_t n = 4 + seed % 13;
        Simulator sim(100 + seed, {});
        for (std::size_t i = 0; i < n; ++i)
            sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
        sim.run_until([&] { return sim.settled(); }, 60 * kPeriod);
        sim.run_until(sim.now() + 1000 + static_cast<std::int64_t>(rng() % 1000));
        auto t0 = sim.now();
        sim.kill(n / 2);
        sim.run_until([&] { return sim.unowned(0) == 0 && sim.unowned(NLB_RULE_DEFAULT) == 0; },
                      t0 + 60 * kPeriod);
        const double failover = double(sim.now() - t0) / kPeriod;
        sim.run_until([&] { return sim.settled(); }, sim.now() + 60 * kPeriod);
        sim.run_until(sim.now() + 1000 + static_cast<std::int64_t>(rng() % 1000));
        t0 = sim.now();
        sim.add_host(default_config(static_cast<std::uint8_t>(n + 1)));
        sim.run_until([&] { return sim.settled(); }, t0 + 60 * kPeriod);
        const double join = double(sim.now() - t0) / kPeriod;
        failover_worst = std::max(failover_worst, failover);
        failover_sum += failover;
        join_worst = std::max(join_worst, join);
        join_sum += join;
        ++runs;
    }
    std::printf("simulated failover: mean %.2f, worst %.2f periods; join: mean %.2f, worst %.2f\n",
                failover_sum / runs, failover_worst, join_sum / runs, join_worst);

    // Forged frames: the worst case an attacker can send (the largest frame, every dirty slot
    // at full width, the cluster's IP, a wrong MAC) through a keyed engine, against one
    // HMAC-SHA256 of the same length: admission must cost about one HMAC.
    double forged_ns = 0, hmac_ns = 0;
    {
        EngineConfig c = default_config(1);
        c.cluster.key.assign(32, 0x42);
        ConvergenceEngine engine(c, 7, Millis{0});
        Heartbeat hb;
        hb.flags = Heartbeat::kFlagAuthenticated;
        hb.cluster_ip = c.cluster.ip;
        hb.priority = 2;
        hb.rule_count = NLB_MAX_RULES;
        for (std::uint8_t s = 0; s < NLB_RULE_SLOTS; ++s) {
            DirtySlot d{s, {}};
            for (std::uint32_t b = 0; b < NLB_BUCKETS; b += 3)
                d.buckets.set(b);
            hb.dirty.push_back(d);
        }
        for (std::uint8_t p = 3; p <= NLB_MAX_HOSTS; ++p)
            hb.echoes.push_back({p, Heartbeat::kPathSegment, p});
        hb.has_contact = hb.has_config = true;
        const auto frame = encode_heartbeat(hb); // MAC zero: wrong
        HeartbeatAuth auth(c.cluster.key);
        const int n = 200000;
        auto best = [&](auto&& body) {
            double ns = 1e18;
            for (int round = 0; round < 5; ++round) {
                const auto t0 = std::chrono::steady_clock::now();
                body();
                const auto t1 = std::chrono::steady_clock::now();
                ns = std::min(ns, std::chrono::duration<double, std::nano>(t1 - t0).count() / n);
            }
            return ns;
        };
        std::int64_t t = 0;
        forged_ns = best([&] {
            for (int i = 0; i < n; ++i)
                engine.on_heartbeat(frame, Millis{t += 0});
        });
        volatile bool sink = false;
        hmac_ns = best([&] {
            for (int i = 0; i < n; ++i)
                sink = sink ^ auth.verify(frame, frame.size());
        });
        std::printf("forged frame (%zu bytes): %.0f ns, one HMAC of it %.0f ns: %.2fx\n",
                    frame.size(), forged_ns, hmac_ns, forged_ns / hmac_ns);
    }

    // Steady state: the engine's CPU per host (of one core), keyed, every frame by both
    // paths; the simulator's own work is included, so it is an upper bound. The 16-host
    // figure is the baseline: per-host cost should grow about linearly with the frames each
    // host receives (64/16 = 4x), not with their square.
    auto steady_pct = [](std::size_t n, std::int64_t period, std::int64_t periods) {
        Simulator sim(7, {});
        for (std::size_t i = 1; i <= n; ++i) {
            auto c = default_config(static_cast<std::uint8_t>(i));
            c.cluster.key.assign(32, 0x5a);
            c.cluster.heartbeat_ms = static_cast<std::uint32_t>(period);
            sim.add_host(std::move(c));
        }
        sim.run_until([&] { return sim.settled(); }, 200 * period);
        sim.run_until(sim.now() + 5 * period);
        const auto t0 = std::chrono::steady_clock::now();
        sim.run_until(sim.now() + periods * period);
        return ms_since(t0) / double(n) / double(periods * period) * 100.0;
    };
    const double cpu16 = steady_pct(16, kPeriod, 60), cpu64 = steady_pct(64, kPeriod, 30),
                 cpu64_fast = steady_pct(64, 100, 60);
    std::printf("steady engine CPU per host: 16 hosts %.3f %%, 64 hosts %.3f %% (%.1fx) at "
                "1000 ms; 64 hosts at 100 ms %.3f %%\n",
                cpu16, cpu64, cpu64 / cpu16, cpu64_fast);

    std::printf("{\"alloc_ms_64h_32r\": %.3f, \"alloc_ms_64h_32r_same_weights\": %.3f, "
                "\"heartbeat_bytes_64h_32r\": %zu, \"hb_bandwidth_Bps_16h\": %.0f, "
                "\"move_ratio_mean\": %.3f, \"move_ratio_worst\": %.3f, "
                "\"balance_max_dev_buckets\": %.3f, \"sim_failover_periods\": %.2f, "
                "\"sim_join_periods\": %.2f, \"realloc_ms_64h_32r\": %.3f, "
                "\"map_transfer_bytes_join\": %llu, \"forged_frame_ns\": %.0f, "
                "\"forged_frame_ratio\": %.2f, \"engine_cpu_pct_16h\": %.3f, "
                "\"engine_cpu_pct_64h\": %.3f, \"engine_cpu_ratio_64h_16h\": %.2f, "
                "\"engine_cpu_pct_64h_100ms\": %.3f}\n",
                alloc_ms, alloc_same_ms, largest, bandwidth, ratio_sum / trials, ratio_worst,
                max_dev, failover_worst, join_worst, realloc_ms,
                static_cast<unsigned long long>(join_chunk_bytes), forged_ns, forged_ns / hmac_ns,
                cpu16, cpu64, cpu64 / cpu16, cpu64_fast);
    return 0;
}
