// Helpers shared by the BPF tests: bucket owners, verdict classification, counters and the
// connection table, addresses whose bucket satisfies a predicate.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <ostream>
#include <random>
#include <utility>
#include <vector>

#include <nlb/flow.h>

#include "dataplane_fixture.hpp"

namespace nlb::test {

// What the program did with a frame, as far as the tests care.
enum class Verdict {
    accepted, // XDP_PASS with only the destination MAC rewritten to this host's own
    passed,   // XDP_PASS, frame untouched
    dropped,  // XDP_DROP
    tx,       // XDP_TX
    other,    // anything else (a PASS that changed more than the MAC, ABORTED, ...)
};

inline std::ostream& operator<<(std::ostream& os, Verdict v) {
    switch (v) {
    case Verdict::accepted:
        return os << "accepted";
    case Verdict::passed:
        return os << "passed";
    case Verdict::dropped:
        return os << "dropped";
    case Verdict::tx:
        return os << "tx";
    case Verdict::other:
        return os << "other";
    }
    return os << "?";
}

inline Verdict classify(const RunResult& r, const Bytes& in, std::uint8_t priority) {
    switch (r.action) {
    case XDP_DROP:
        return Verdict::dropped;
    case XDP_TX:
        return Verdict::tx;
    case XDP_PASS: {
        if (r.out == in)
            return Verdict::passed;
        if (r.out.size() != in.size())
            return Verdict::other;
        Mac own = DataplaneFixture::own_mac(priority);
        if (!std::equal(own.begin(), own.end(), r.out.begin()))
            return Verdict::other;
        if (!std::equal(in.begin() + 6, in.end(), r.out.begin() + 6))
            return Verdict::other;
        return Verdict::accepted;
    }
    default:
        return Verdict::other;
    }
}

inline Verdict verdict(DataplaneFixture& dp, const Bytes& frame) {
    return classify(dp.run(frame), frame, dp.priority());
}

// Bucket entry for `owner` as host `me` sees it.
inline std::uint16_t entry_for(std::uint8_t owner, std::uint8_t me, std::uint16_t flags = 0) {
    return static_cast<std::uint16_t>(owner | (owner == me ? NLB_BKT_MINE : 0) | flags);
}

// Every bucket of `slot` to owner(bucket), flagged MINE where that is this host.
inline void set_owners(DataplaneFixture& dp, std::uint32_t slot,
                       const std::function<std::uint8_t(std::uint16_t)>& owner) {
    std::uint8_t me = dp.priority();
    dp.set_buckets(slot, [&](std::uint16_t b) { return entry_for(owner(b), me); });
}

// Owner of bucket b when two hosts split a rule slot: odd buckets host 2, even ones host 1.
inline std::uint8_t half(std::uint16_t b) { return static_cast<std::uint8_t>(1 + (b & 1)); }

// Two hosts (priorities 1 and 2) with the same tables, every rule slot split by half().
struct TwoHosts {
    DataplaneTables tables;
    DataplaneFixture h1, h2;

    TwoHosts(std::vector<IpAddress> vips, std::vector<RuleMatch> rules)
        : tables(std::move(vips), std::move(rules)) {
        h1.configure(tables, 1);
        h2.configure(tables, 2);
        for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
            set_owners(h1, slot, half);
            set_owners(h2, slot, half);
        }
    }
    DataplaneFixture& host(std::uint8_t priority) { return priority == 1 ? h1 : h2; }
};

// The bucket the dataplane computes; sport in host byte order.
inline std::uint16_t bucket_of(const IpAddress& src, std::uint16_t sport, std::uint8_t affinity,
                               std::uint32_t seed = NLB_FLOW_SEED) {
    return nlb_flow_bucket(src.family, src.words.data(), htons(sport), affinity, seed);
}

inline nlb_stats stats(DataplaneFixture& dp, std::uint32_t slot) {
    return dp.maps().read_stats(slot);
}

// Every slot summed.
inline nlb_stats total_stats(DataplaneFixture& dp) {
    nlb_stats sum{};
    for (std::uint32_t slot = 0; slot < NLB_STATS_SLOTS; ++slot)
        add_stats(sum, dp.maps().read_stats(slot));
    return sum;
}

// Calls fn(map fd, key pointer) with the connection-table map and key of a TCP packet spec
// (client → VIP), so that readers and writers of the table build the key one way.
template <typename Fn>
auto with_conn_key(DataplaneFixture& dp, const PacketSpec& s, Fn fn, bool established = false) {
    const auto& fds = dp.maps().fds();
    if (s.src.family == NLB_FAMILY_V4) {
        nlb_conn_key4 k{};
        k.saddr = s.src.words[0];
        k.daddr = s.dst.words[0];
        k.sport = htons(s.sport);
        k.dport = htons(s.dport);
        return fn(established ? fds.est4 : fds.conns4, static_cast<const void*>(&k));
    }
    nlb_conn_key6 k{};
    std::memcpy(k.saddr, s.src.words.data(), 16);
    std::memcpy(k.daddr, s.dst.words.data(), 16);
    k.sport = htons(s.sport);
    k.dport = htons(s.dport);
    return fn(established ? fds.est6 : fds.conns6, static_cast<const void*>(&k));
}

// The tuple of a TCP packet spec (client → VIP) as the agent hands it to nlb_seed.
inline nlb_tuple tuple_of(const PacketSpec& s) {
    nlb_tuple t{};
    t.family = s.src.family;
    std::memcpy(t.saddr, s.src.words.data(), 16);
    std::memcpy(t.daddr, s.dst.words.data(), 16);
    t.sport = htons(s.sport);
    t.dport = htons(s.dport);
    return t;
}

// The established-table entry of a TCP packet spec, if any.
inline std::optional<nlb_conn> est_of(DataplaneFixture& dp, const PacketSpec& s) {
    nlb_conn c{};
    bool found = with_conn_key(
        dp, s, [&](int fd, const void* k) { return bpf_map_lookup_elem(fd, k, &c) == 0; }, true);
    return found ? std::optional<nlb_conn>(c) : std::nullopt;
}

inline void put_est(DataplaneFixture& dp, const PacketSpec& s, const nlb_conn& c) {
    with_conn_key(
        dp, s, [&](int fd, const void* k) { return bpf_map_update_elem(fd, k, &c, BPF_ANY); },
        true);
}

// The connection-table entry of a TCP packet spec, if any.
inline std::optional<nlb_conn> conn_of(DataplaneFixture& dp, const PacketSpec& s) {
    nlb_conn c{};
    int err =
        with_conn_key(dp, s, [&](int fd, const void* k) { return bpf_map_lookup_elem(fd, k, &c); });
    if (err)
        return std::nullopt;
    return c;
}

inline void put_conn(DataplaneFixture& dp, const PacketSpec& s, const nlb_conn& c) {
    with_conn_key(dp, s,
                  [&](int fd, const void* k) { return bpf_map_update_elem(fd, k, &c, BPF_ANY); });
}

// A port rule as the dataplane sees it.
inline RuleMatch rule_ports(std::optional<std::size_t> vip, std::uint16_t first, std::uint16_t last,
                            Protocol proto, std::uint8_t mode = NLB_MODE_MULTIPLE,
                            std::uint8_t affinity = NLB_AFFINITY_SINGLE) {
    RuleMatch r;
    r.vip = vip;
    r.first_port = first;
    r.last_port = last;
    r.protocol = proto;
    r.mode = mode;
    r.affinity = affinity;
    return r;
}

// Entries in a connection table.
inline std::size_t conn_count(int map_fd, std::size_t key_size) {
    std::vector<std::uint8_t> key(key_size), next(key_size);
    std::size_t n = 0;
    void* prev = nullptr;
    while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
        ++n;
        key = next;
        prev = key.data();
    }
    return n;
}

inline IpAddress random_address(std::mt19937& rng, std::uint8_t family) {
    IpAddress a;
    a.family = family;
    if (family == NLB_FAMILY_V4) {
        // 198.18.0.0/15 (benchmarking range), anything in it
        a.words[0] = htonl(0xc6120000u | (rng() & 0x1ffffu));
    } else {
        a.words[0] = htonl(0x20010db8u);
        for (int i = 1; i < 4; ++i)
            a.words[i] = static_cast<std::uint32_t>(rng());
    }
    return a;
}

// A source address (and, for affinity none, port) whose bucket satisfies `want`.
struct Source {
    IpAddress addr;
    std::uint16_t port;
};

inline Source source_where(std::mt19937& rng, std::uint8_t family, std::uint8_t affinity,
                           const std::function<bool(std::uint16_t)>& want) {
    for (;;) {
        Source s{random_address(rng, family), static_cast<std::uint16_t>(1024 + rng() % 60000)};
        if (want(bucket_of(s.addr, s.port, affinity)))
            return s;
    }
}

} // namespace nlb::test
