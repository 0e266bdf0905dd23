#include "conn_scanner.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include <nlb/limits.h>
#include <nlb/maps.h>

namespace nlb {

namespace {

// Batched reads: a full table is 262,144 entries, far too many for a lookup per entry.
// `visit(key, value)` returns true to delete the entry.
template <typename Key, typename Visit> void scan_table(int fd, Visit visit) {
    constexpr __u32 kBatch = 4096;
    std::vector<Key> keys(kBatch);
    std::vector<nlb_conn> values(kBatch);
    std::vector<Key> dead;
    Key next{};
    bool first = true;
    for (;;) {
        __u32 count = kBatch;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &next, &next, keys.data(),
                                       values.data(), &count, &opts);
        first = false;
        if (err && errno != ENOENT)
            break;
        for (__u32 i = 0; i < count; ++i)
            if (visit(keys[i], values[i]))
                dead.push_back(keys[i]);
        if (err) // ENOENT: that was the last batch
            break;
    }
    for (const auto& k : dead)
        bpf_map_delete_elem(fd, &k);
}

void mark(ConnScan& out, const nlb_conn& c) {
    if (c.rule < NLB_RULE_SLOTS && c.bucket < NLB_BUCKETS)
        out.live_buckets[c.rule].set(c.bucket);
}

bool older(std::uint64_t stamp_ns, std::uint64_t now_ns, std::uint64_t age_ns) {
    return now_ns > stamp_ns && now_ns - stamp_ns > age_ns;
}

// Opening before established: the socket program moves a record from the one to the other
// while this runs. Read in this order, a record moved before the opening scan reached it is in
// the established table before that scan begins, and one moved later was seen opening; in the
// other order a connection established between the two scans would be in neither, and its
// bucket released as clean (a second host would then take its packets).
template <typename Key>
void scan_pair(int opening_fd, int est_fd, std::uint64_t now_ns, bool age_opening,
               ConnScan& out) {
    scan_table<Key>(opening_fd, [&](const Key&, const nlb_conn& c) {
        if (age_opening && older(c.opened_ns, now_ns, NLB_OPENING_MAX_AGE_NS)) {
            out.opening_expired++;
            return true;
        }
        out.opening++;
        out.live++;
        if (c.rule < NLB_RULE_SLOTS)
            out.live_by_rule[c.rule]++;
        mark(out, c);
        return false;
    });
    scan_table<Key>(est_fd, [&](const Key&, const nlb_conn& c) {
        if (c.closed_ns) {
            // Its socket is gone: nothing is left to serve, so it keeps no bucket dirty (a
            // drainstop ends when the last socket closes); the record only steers stray
            // packets through the grace period while the bucket is still tracked here.
            if (!older(c.closed_ns, now_ns, NLB_CONN_CLOSE_GRACE_NS)) {
                out.closing++;
                return false;
            }
            out.expired++;
            return true;
        }
        out.established++;
        out.live++;
        if (c.rule < NLB_RULE_SLOTS)
            out.live_by_rule[c.rule]++;
        mark(out, c);
        return false;
    });
}

// A tuple as a string of bytes, for the set of sockets.
template <typename Key> std::string bytes(const Key& k) {
    return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

nlb_conn_key4 key4(const nlb_tuple& t) {
    return {.saddr = t.saddr[0], .daddr = t.daddr[0], .sport = t.sport, .dport = t.dport};
}

nlb_conn_key6 key6(const nlb_tuple& t) {
    nlb_conn_key6 k{};
    std::memcpy(k.saddr, t.saddr, sizeof(k.saddr));
    std::memcpy(k.daddr, t.daddr, sizeof(k.daddr));
    k.sport = t.sport;
    k.dport = t.dport;
    return k;
}

template <typename Key>
std::uint64_t end_orphans_in(int fd, const std::unordered_set<std::string>& sockets,
                             std::uint64_t listed_at_ns, std::uint64_t now_ns) {
    std::vector<std::pair<Key, nlb_conn>> orphans;
    scan_table<Key>(fd, [&](const Key& k, const nlb_conn& c) {
        if (!c.closed_ns && c.opened_ns < listed_at_ns && !sockets.count(bytes(k)))
            orphans.emplace_back(k, c);
        return false;
    });
    std::uint64_t n = 0;
    for (auto& [k, c] : orphans) {
        c.closed_ns = now_ns;
        // BPF_EXIST: a record the dataplane removed meanwhile stays removed
        n += bpf_map_update_elem(fd, &k, &c, BPF_EXIST) == 0;
    }
    return n;
}

} // namespace

ConnScan scan_connections(const DataplaneMaps& maps, std::uint64_t now_ns, bool age_opening) {
    ConnScan out;
    scan_pair<nlb_conn_key4>(maps.fds().conns4, maps.fds().est4, now_ns, age_opening, out);
    scan_pair<nlb_conn_key6>(maps.fds().conns6, maps.fds().est6, now_ns, age_opening, out);
    return out;
}

std::uint64_t end_orphans(const DataplaneMaps& maps, const std::vector<nlb_tuple>& sockets,
                          std::uint64_t listed_at_ns, std::uint64_t now_ns) {
    std::unordered_set<std::string> v4, v6;
    for (const auto& t : sockets)
        (t.family == NLB_FAMILY_V4 ? v4.insert(bytes(key4(t))) : v6.insert(bytes(key6(t))));
    return end_orphans_in<nlb_conn_key4>(maps.fds().est4, v4, listed_at_ns, now_ns) +
           end_orphans_in<nlb_conn_key6>(maps.fds().est6, v6, listed_at_ns, now_ns);
}

} // namespace nlb
