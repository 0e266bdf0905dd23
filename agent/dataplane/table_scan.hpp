// Reads every record of one connection table (nlb_conns*, nlb_est*) out of the kernel in
// batches: a full table is 262,144 entries, far too many for a lookup each. Each hash bucket
// is copied under its lock, so a record that stays in the table for the whole walk is seen
// (what the connection filter's rebuild relies on); one added or removed meanwhile may or
// may not be.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <utility>
#include <vector>

#include <nlb/maps.h>

namespace nlb {

// The record a scan judged is still the one in the table: the tuple was not closed, ended
// and opened anew by another connection (a client behind NAT reuses ports) since it was read.
inline bool same_record(const nlb_conn& read, const nlb_conn& now) {
    return read.opened_ns == now.opened_ns && read.closed_ns == now.closed_ns;
}

// `visit(key, value)` returns true to delete the record (after the walk: a delete in a bucket
// the walk has yet to reach would not change what it sees, but keeps the walk simple to
// reason about). A record is deleted only if it is still the one visited: a walk of full
// tables takes a few hundred ms, time enough for its tuple to be reused. False when a read
// failed before the end (errno says why); the records visited until then were visited.
template <typename Key, typename Visit> bool scan_table(int fd, Visit visit) {
    constexpr __u32 kBatch = 4096;
    std::vector<Key> keys(kBatch);
    std::vector<nlb_conn> values(kBatch);
    std::vector<std::pair<Key, nlb_conn>> dead;
    Key next{};
    bool first = true;
    bool complete = false;
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
                dead.emplace_back(keys[i], values[i]);
        if (err) { // ENOENT: that was the last batch
            complete = true;
            break;
        }
    }
    const int saved = errno;
    for (const auto& [k, read] : dead) {
        nlb_conn now{};
        // a few µs between this look and the delete, where the walk left a few hundred ms
        if (bpf_map_lookup_elem(fd, &k, &now) == 0 && same_record(read, now))
            bpf_map_delete_elem(fd, &k);
    }
    errno = saved;
    return complete;
}

} // namespace nlb
