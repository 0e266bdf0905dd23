#include "conn_scanner.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <vector>

#include <nlb/limits.h>
#include <nlb/maps.h>

namespace nlb {

namespace {

// Batched reads: a full table is 262,144 entries, far too many for a lookup per entry.
template <typename Key>
void scan_table(int fd, std::uint64_t now_ns, ConnScan& out) {
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
        for (__u32 i = 0; i < count; ++i) {
            const nlb_conn& c = values[i];
            if (c.closed_ns && now_ns > c.closed_ns &&
                now_ns - c.closed_ns > NLB_CONN_CLOSE_GRACE_NS) {
                dead.push_back(keys[i]);
                continue;
            }
            out.live++;
            out.live_buckets.emplace(c.rule, c.bucket);
        }
        if (err) // ENOENT: that was the last batch
            break;
    }
    for (const auto& k : dead)
        if (bpf_map_delete_elem(fd, &k) == 0)
            out.expired++;
}

} // namespace

ConnScan scan_connections(const DataplaneMaps& maps, std::uint64_t now_ns) {
    ConnScan out;
    scan_table<nlb_conn_key4>(maps.fds().conns4, now_ns, out);
    scan_table<nlb_conn_key6>(maps.fds().conns6, now_ns, out);
    return out;
}

} // namespace nlb
