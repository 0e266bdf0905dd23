// Fills a running host's opening connection tables, both families, to their size, for
// scripts/bench/cluster.sh's full-table phase (the agent scans what the tables hold). The
// records are made-up tuples stamped a day ahead, so that no scan ages them out while the
// benchmark measures, spread over the buckets this host owns (of the first rule slot where it
// owns any), as a busy host's connections are: a record in a bucket it does not own would be
// a connection it kept through a hand-over, which holds the bucket and has it scan every
// period. Their keys go into the agent's connection filter too (the agent does not walk
// tables its filter shows empty), found through the program of the pinned link: after every
// record is in, and one key of each family first, so that no scan of the agent's sees part
// of them (the first scan of the full tables spaces the next ones by its cost, up to a
// minute). The dataplane adds a key before it records it; here no packet carries these
// tuples. They fill the filter, so the agent rebuilds it now and then (a rebuild copies the
// tables, spaced 1,000 times its cost apart: at most 0.1 % of a core).
//
//   nlb-fill-conns PIN_DIR            (the agent's --pin-dir)
//   nlb-fill-conns --every-rule PIN_DIR   spread over the owned buckets of every rule slot
//   nlb-fill-conns --clear PIN_DIR    deletes those records again (their filter bits stay
//                                     until the agent's next rebuild)
//
// Prints one JSON line: the records each table holds afterwards (an LRU may have made room
// for the last ones by evicting earlier ones).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlb/limits.h>
#include <nlb/maps.h>

#include "conn_filter.hpp"

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "nlb-fill-conns: %s\n", what.c_str());
    std::exit(2);
}

struct Owned {
    std::vector<std::uint8_t> rules; // beside each bucket: its rule slot
    std::vector<std::uint16_t> buckets;
};

// The buckets this host owns, read from the pinned program state: of the first rule slot where
// it owns any, or (every_rule) of every slot.
Owned owned(const std::string& dir, bool every_rule) {
    const std::string path = dir + "/nlb_state";
    const int fd = bpf_obj_get(path.c_str());
    if (fd < 0)
        die("open " + path + ": " + std::strerror(errno));
    auto state = std::make_unique<nlb_state>();
    const __u32 key = 0;
    if (bpf_map_lookup_elem(fd, &key, state.get()))
        die("read " + path + ": " + std::strerror(errno));
    Owned o;
    for (std::uint8_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
        for (std::uint16_t b = 0; b < NLB_BUCKETS; ++b)
            if (state->rules[slot].bucket[b] & NLB_BKT_MINE) {
                o.rules.push_back(slot);
                o.buckets.push_back(b);
            }
        if (!o.buckets.empty() && !every_rule)
            break;
    }
    if (o.buckets.empty())
        die(dir + ": this host owns no bucket");
    return o;
}

// The running agent's connection filter, a map of the program its pinned link runs.
std::unique_ptr<nlb::ConnFilter> agent_filter(const std::string& dir) {
    const std::string path = dir + "/link";
    const int link = bpf_obj_get(path.c_str());
    if (link < 0)
        die("open " + path + ": " + std::strerror(errno));
    bpf_link_info li{};
    __u32 len = sizeof(li);
    if (bpf_obj_get_info_by_fd(link, &li, &len))
        die("read " + path + ": " + std::strerror(errno));
    close(link);
    const int prog = bpf_prog_get_fd_by_id(li.prog_id);
    if (prog < 0)
        die("open the program of " + path + ": " + std::strerror(errno));
    std::vector<__u32> ids(64);
    bpf_prog_info pi{};
    pi.nr_map_ids = static_cast<__u32>(ids.size());
    pi.map_ids = reinterpret_cast<std::uintptr_t>(ids.data());
    len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(prog, &pi, &len))
        die("read the program of " + path + ": " + std::strerror(errno));
    close(prog);
    for (__u32 i = 0; i < std::min<__u32>(pi.nr_map_ids, 64); ++i) {
        const int fd = bpf_map_get_fd_by_id(ids[i]);
        if (fd < 0)
            continue;
        bpf_map_info mi{};
        len = sizeof(mi);
        std::unique_ptr<nlb::ConnFilter> filter;
        if (!bpf_obj_get_info_by_fd(fd, &mi, &len) &&
            std::strcmp(mi.name, "nlb_conn_filter") == 0) {
            try {
                filter = std::make_unique<nlb::ConnFilter>(fd, mi.max_entries); // maps it
            } catch (const std::exception& e) {
                die(e.what());
            }
        }
        close(fd);
        if (filter)
            return filter;
    }
    die("the program of " + path + " has no connection filter");
}

// A pinned table, open, and its description.
struct Table {
    explicit Table(const std::string& path) : path(path), fd(bpf_obj_get(path.c_str())) {
        if (fd < 0)
            die("open " + path + ": " + std::strerror(errno));
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len))
            die("read " + path + "'s size: " + std::strerror(errno));
    }
    ~Table() { close(fd); }
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;
    std::string path;
    int fd;
    bpf_map_info info{};
};

// How many records a table holds: a walk of its keys (bounded: an LRU that evicts meanwhile
// can make a walk restart).
template <typename Key> std::uint64_t count_keys(const Table& t) {
    std::uint64_t held = 0;
    Key key{}, next{};
    for (bool first = true; held < 2ULL * t.info.max_entries &&
                            !bpf_map_get_next_key(t.fd, first ? nullptr : &key, &next);
         first = false, key = next)
        ++held;
    return held;
}

template <typename Key, typename MakeKey>
std::uint64_t fill(const Table& t, const Owned& mine, std::uint64_t stamp, std::vector<Key>& keys,
                   MakeKey make_key) {
    if (t.info.key_size != sizeof(Key) || t.info.value_size != sizeof(nlb_conn))
        die(t.path + ": not a connection table of this build");
    keys.resize(t.info.max_entries);
    std::vector<nlb_conn> values(t.info.max_entries);
    for (std::uint32_t i = 0; i < t.info.max_entries; ++i) {
        keys[i] = make_key(i);
        values[i].opened_ns = stamp;
        values[i].rule = mine.rules[i % mine.rules.size()];
        values[i].bucket = mine.buckets[i % mine.buckets.size()];
    }
    std::uint32_t count = t.info.max_entries;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_update_batch(t.fd, keys.data(), values.data(), &count, &opts))
        die("fill " + t.path + ": " + std::strerror(errno));
    return count_keys<Key>(t);
}

// Deletes the records fill() made (those an LRU evicted meanwhile are gone already).
template <typename Key, typename MakeKey> void clear(const Table& t, MakeKey make_key) {
    for (std::uint32_t i = 0; i < t.info.max_entries; ++i) {
        const Key k = make_key(i);
        if (bpf_map_delete_elem(t.fd, &k) && errno != ENOENT)
            die("clear " + t.path + ": " + std::strerror(errno));
    }
}

// 198.18.0.0/15 and 2001:db8::/32: documentation and benchmarking ranges, no real client.
nlb_conn_key4 key4(std::uint32_t i) {
    return nlb_conn_key4{.saddr = htonl(0xc6120000u | (i >> 8)),
                         .daddr = htonl(0xc6130001u),
                         .sport = htons(std::uint16_t(1024 + (i & 0xff))),
                         .dport = htons(9)};
}

nlb_conn_key6 key6(std::uint32_t i) {
    nlb_conn_key6 k{};
    k.saddr[0] = htonl(0x20010db8u);
    k.saddr[3] = htonl(i);
    k.daddr[0] = htonl(0x20010db8u);
    k.daddr[3] = htonl(1);
    k.sport = htons(1024);
    k.dport = htons(9);
    return k;
}

} // namespace

int main(int argc, char** argv) {
    const bool clearing = argc == 3 && std::strcmp(argv[1], "--clear") == 0;
    const bool every_rule = argc == 3 && std::strcmp(argv[1], "--every-rule") == 0;
    if (argc != 2 && !clearing && !every_rule) {
        std::fprintf(stderr, "usage: nlb-fill-conns [--clear | --every-rule] PIN_DIR\n");
        return 2;
    }
    const std::string dir = argv[argc - 1];
    const Table t4(dir + "/nlb_conns4");
    const Table t6(dir + "/nlb_conns6");
    if (clearing) {
        clear<nlb_conn_key4>(t4, key4);
        clear<nlb_conn_key6>(t6, key6);
        std::printf("{\"opening4\": %llu, \"opening6\": %llu}\n",
                    static_cast<unsigned long long>(count_keys<nlb_conn_key4>(t4)),
                    static_cast<unsigned long long>(count_keys<nlb_conn_key6>(t6)));
        return 0;
    }
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t day_ahead =
        (std::uint64_t(ts.tv_sec) + 86400) * 1'000'000'000ULL + std::uint64_t(ts.tv_nsec);
    const Owned mine = owned(dir, every_rule);
    const auto filter = agent_filter(dir);
    std::vector<nlb_conn_key4> keys4;
    std::vector<nlb_conn_key6> keys6;
    const std::uint64_t v4 = fill<nlb_conn_key4>(t4, mine, day_ahead, keys4, key4);
    const std::uint64_t v6 = fill<nlb_conn_key6>(t6, mine, day_ahead, keys6, key6);
    if (!keys4.empty() && !keys6.empty()) {
        filter->record(keys4[0]);
        filter->record(keys6[0]);
        for (const auto& k : keys4)
            filter->record(k);
        for (const auto& k : keys6)
            filter->record(k);
    }
    std::printf("{\"opening4\": %llu, \"opening6\": %llu}\n", static_cast<unsigned long long>(v4),
                static_cast<unsigned long long>(v6));
    return 0;
}
