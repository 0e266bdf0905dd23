// Fills a running host's opening connection tables, both families, to their size, for
// scripts/bench/cluster.sh's full-table phase (the agent scans what the tables hold). The
// records are made-up tuples stamped a day ahead, so that no scan ages them out while the
// benchmark measures, spread over the buckets this host owns (of the first rule slot where it
// owns any), as a busy host's connections are: a record in a bucket it does not own would be
// a connection it kept through a hand-over, which holds the bucket and has it scan every
// period. Written from here, they are not in the agent's connection filter until it next
// rebuilds it (no harm: no packet carries their tuples); nor do they fill it, so no rebuild
// of theirs is in the benchmark's CPU (a rebuild copies the tables, spaced 1,000 times its
// cost apart: at most 0.1 % of a core).
//
//   nlb-fill-conns PIN_DIR      (the agent's --pin-dir)
//
// Prints one JSON line: the records each table holds afterwards (an LRU may have made room
// for the last ones by evicting earlier ones).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlb/limits.h>
#include <nlb/maps.h>

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "nlb-fill-conns: %s\n", what.c_str());
    std::exit(2);
}

struct Owned {
    std::uint8_t rule = 0;
    std::vector<std::uint16_t> buckets;
};

// The buckets this host owns, read from the pinned program state.
Owned owned(const std::string& dir) {
    const std::string path = dir + "/nlb_state";
    const int fd = bpf_obj_get(path.c_str());
    if (fd < 0)
        die("open " + path + ": " + std::strerror(errno));
    auto state = std::make_unique<nlb_state>();
    const __u32 key = 0;
    if (bpf_map_lookup_elem(fd, &key, state.get()))
        die("read " + path + ": " + std::strerror(errno));
    for (std::uint8_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
        Owned o{slot, {}};
        for (std::uint16_t b = 0; b < NLB_BUCKETS; ++b)
            if (state->rules[slot].bucket[b] & NLB_BKT_MINE)
                o.buckets.push_back(b);
        if (!o.buckets.empty())
            return o;
    }
    die(dir + ": this host owns no bucket");
}

template <typename Key, typename MakeKey>
std::uint64_t fill(const std::string& path, const Owned& mine, std::uint64_t stamp,
                   MakeKey make_key) {
    const int fd = bpf_obj_get(path.c_str());
    if (fd < 0)
        die("open " + path + ": " + std::strerror(errno));
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len))
        die("read " + path + "'s size: " + std::strerror(errno));
    if (info.key_size != sizeof(Key) || info.value_size != sizeof(nlb_conn))
        die(path + ": not a connection table of this build");
    std::vector<Key> keys(info.max_entries);
    std::vector<nlb_conn> values(info.max_entries);
    for (std::uint32_t i = 0; i < info.max_entries; ++i) {
        keys[i] = make_key(i);
        values[i].opened_ns = stamp;
        values[i].rule = mine.rule;
        values[i].bucket = mine.buckets[i % mine.buckets.size()];
    }
    std::uint32_t count = info.max_entries;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts))
        die("fill " + path + ": " + std::strerror(errno));
    // How many it holds now: a walk of the keys.
    std::uint64_t held = 0;
    Key key{}, next{};
    for (bool first = true; !bpf_map_get_next_key(fd, first ? nullptr : &key, &next);
         first = false, key = next)
        ++held;
    return held;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: nlb-fill-conns PIN_DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t day_ahead =
        (std::uint64_t(ts.tv_sec) + 86400) * 1'000'000'000ULL + std::uint64_t(ts.tv_nsec);
    const Owned mine = owned(dir);
    // 198.18.0.0/15 and 2001:db8::/32: documentation and benchmarking ranges, no real client.
    const std::uint64_t v4 =
        fill<nlb_conn_key4>(dir + "/nlb_conns4", mine, day_ahead, [](std::uint32_t i) {
            return nlb_conn_key4{.saddr = htonl(0xc6120000u | (i >> 8)),
                                 .daddr = htonl(0xc6130001u),
                                 .sport = htons(std::uint16_t(1024 + (i & 0xff))),
                                 .dport = htons(9)};
        });
    const std::uint64_t v6 =
        fill<nlb_conn_key6>(dir + "/nlb_conns6", mine, day_ahead, [](std::uint32_t i) {
            nlb_conn_key6 k{};
            k.saddr[0] = htonl(0x20010db8u);
            k.saddr[3] = htonl(i);
            k.daddr[0] = htonl(0x20010db8u);
            k.daddr[3] = htonl(1);
            k.sport = htons(1024);
            k.dport = htons(9);
            return k;
        });
    std::printf("{\"opening4\": %llu, \"opening6\": %llu}\n", static_cast<unsigned long long>(v4),
                static_cast<unsigned long long>(v6));
    return 0;
}
