// Dataplane cost per packet under BPF_PROG_TEST_RUN, next to the bare XDP program in the same
// run: IPv4 and IPv6; a SYN whose tuple is recorded, and SYNs of new tuples, each an
// insertion into the opening table; a heartbeat over its source's budget (a flood's frames);
// a later fragment of a datagram whose first fragment was accepted. Rounds interleave the
// cases so that drift of this shared machine hits all of them alike; each figure is the
// median over the rounds of the kernel's mean over `repeat` runs (or over one run of each
// of the new tuples). Prints one JSON object on its last line.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlb/flow.h>

#include "bare.skel.h"
#include "dataplane_fixture.hpp"
#include "replay.skel.h"

using namespace nlb;
using namespace nlb::test;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// A source address (of `first`'s family) whose bucket (single affinity) satisfies `want`.
IpAddress source_where(const std::function<bool(std::uint16_t)>& want,
                       const char* first = "198.51.100.1") {
    IpAddress a = ip(first);
    const std::size_t last = a.family == NLB_FAMILY_V4 ? 0 : 3;
    for (;;) {
        a.words[last] = htonl(ntohl(a.words[last]) + 1);
        if (want(nlb_flow_bucket(a.family, a.words.data(), 0, NLB_AFFINITY_SINGLE,
                                 NLB_FLOW_SEED)))
            return a;
    }
}

// SYNs of new tuples per round, their records removed between rounds: every one an insertion
// into a table with room (a flood's insertions that evict cost more: not measured here).
constexpr std::uint16_t kNewSyns = 20000;

// The kernel's mean time of one run per frame, each frame run once: what a frame costs when
// every frame differs (the per-run clock reads are in it, as in the bare program's figure).
double single_runs_ns(int prog_fd, const std::vector<Bytes>& frames) {
    double total = 0;
    for (const Bytes& f : frames) {
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f.data(),
                    .data_size_in = static_cast<__u32>(f.size()), .repeat = 1);
        if (bpf_prog_test_run_opts(prog_fd, &opts))
            throw std::runtime_error("test run: " + std::string(strerror(errno)));
        total += opts.duration;
    }
    return total / static_cast<double>(frames.size());
}

void expect(int got, int want, const char* what) {
    if (got != want) {
        std::fprintf(stderr, "bench: %s: verdict %d, expected %d\n", what, got, want);
        std::exit(1);
    }
}

} // namespace

int main(int argc, char** argv) {
    std::uint32_t repeat = argc > 1 ? static_cast<std::uint32_t>(std::atoi(argv[1])) : 1000000;
    int rounds = argc > 2 ? std::atoi(argv[2]) : 9;

    IpAddress vip = ip("10.0.0.100");
    IpAddress vip6 = ip("2001:db8::100");
    DataplaneTables tables({vip, vip6}, {RuleMatch{}});
    DataplaneFixture dp(DataplaneFixture::kObjectSize, DataplaneFixture::kObjectSize);
    const std::uint8_t me = 1;
    dp.configure(tables, me);
    // 1 of 4 hosts: this host owns every fourth bucket.
    auto owner = [](std::uint16_t b) { return static_cast<std::uint8_t>(1 + b % 4); };
    auto steady = [&](std::uint16_t b) {
        return static_cast<std::uint16_t>(owner(b) | (owner(b) == me ? NLB_BKT_MINE : 0));
    };
    dp.set_buckets(0, steady);
    dp.own_all(NLB_RULE_DEFAULT, me);

    PacketSpec spec;
    spec.dst = vip;
    spec.src = source_where([&](std::uint16_t b) { return owner(b) != me; });
    Bytes foreign = build(spec);
    spec.src = source_where([&](std::uint16_t b) { return owner(b) == me; });
    Bytes owned = build(spec);
    // A SYN in an owned bucket: recorded in the opening table (one entry, refreshed each run:
    // a retransmission). And SYNs of new tuples, one run each, every one an insertion.
    PacketSpec syn = spec;
    syn.tcp_flags = kSyn;
    Bytes syn_owned = build(syn);
    std::vector<Bytes> syn_new;
    for (std::uint16_t port = 1024; port < 1024 + kNewSyns; ++port) {
        syn.sport = port;
        syn_new.push_back(build(syn));
    }

    PacketSpec spec6;
    spec6.dst = vip6;
    spec6.src = source_where([&](std::uint16_t b) { return owner(b) != me; }, "2001:db8:1::1");
    Bytes foreign6 = build(spec6);
    spec6.src = source_where([&](std::uint16_t b) { return owner(b) == me; }, "2001:db8:1::1");
    Bytes owned6 = build(spec6);

    // Tracked: a connection accepted at its SYN while the bucket was ours, then the bucket
    // moved to another host and this host kept serving it.
    spec.src = source_where([&](std::uint16_t b) { return owner(b) == me && b % 8 == 0; });
    std::uint16_t moved = nlb_flow_bucket(NLB_FAMILY_V4, spec.src.words.data(), 0,
                                          NLB_AFFINITY_SINGLE, tables.flow_seed());
    spec.tcp_flags = kSyn;
    expect(dp.run(build(spec)).action, XDP_PASS, "SYN in an owned bucket");
    dp.set_buckets(0, [&](std::uint16_t b) {
        return b == moved ? static_cast<std::uint16_t>(2 | NLB_BKT_TRACKED_HERE) : steady(b);
    });
    spec.tcp_flags = kAck;
    Bytes tracked = build(spec);

    // A fragmented UDP datagram from an owned source: the first fragment records the verdict,
    // the timed frame is a later fragment looking it up (IPv4 without options: its short path).
    PacketSpec frag;
    frag.dst = vip;
    frag.src = source_where([&](std::uint16_t b) { return owner(b) == me; });
    frag.proto = kUdp;
    frag.fragment = true;
    frag.more_fragments = true;
    frag.payload = 64;
    Bytes frag_first = build(frag);
    frag.frag_offset = 9;
    Bytes frag_later = build(frag);

    Bytes arp = build_arp_request(Mac{0x02, 0, 0, 0, 0, 0xc1}, ip("10.0.0.7"), vip);
    arp.resize(128, 0);

    // A heartbeat-sized 0x886F frame from one source: after its burst every run is the flood
    // case, a frame dropped over its source's budget.
    Bytes heartbeat = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0xc2, 0x88, 0x6f};
    heartbeat.resize(14 + 200, 0);

    expect(dp.run(foreign).action, XDP_DROP, "drop-foreign");
    expect(dp.run(owned).action, XDP_PASS, "accept-owned");
    expect(dp.run(syn_owned).action, XDP_PASS, "SYN in an owned bucket, recorded");
    expect(dp.run(foreign6).action, XDP_DROP, "IPv6 drop-foreign");
    expect(dp.run(owned6).action, XDP_PASS, "IPv6 accept-owned");
    expect(dp.run(tracked).action, XDP_PASS, "accept-tracked");
    expect(dp.run(arp).action, XDP_TX, "ARP request for the VIP");
    expect(dp.run(heartbeat).action, XDP_PASS, "heartbeat within budget");
    expect(dp.run(frag_first).action, XDP_PASS, "first fragment");
    expect(dp.run(frag_later).action, XDP_PASS, "later fragment");
    expect(dp.maps().read_stats(NLB_STATS_GLOBAL).fragments_unmatched == 0, 1,
           "later fragment follows its first");
    // Not a verdict after the burst: a preemption of a millisecond between two runs refills
    // a token. The counter says the burst was spent; the timed runs then refill one frame
    // a millisecond, a few in a million.
    test_run_ns(dp.prog_fd(), heartbeat, 4 * NLB_HB_BURST);
    expect(dp.maps().read_stats(NLB_STATS_GLOBAL).heartbeat_rate_dropped > 0, 1,
           "heartbeats over budget dropped");

    bare_bpf* bare = bare_bpf__open_and_load();
    replay_bpf* replay = replay_bpf__open_and_load();
    if (!bare || !replay) {
        std::fprintf(stderr, "bench: load bare/replay programs: %s\n", strerror(errno));
        return 1;
    }
    std::memcpy(replay->bss->template_frame, arp.data(), sizeof(replay->bss->template_frame));
    int bare_fd = bpf_program__fd(bare->progs.xdp_bare_pass);
    int replay_fd = bpf_program__fd(replay->progs.xdp_replay);
    int target_fd = bpf_map__fd(replay->maps.replay_target);
    auto replay_into = [&](int prog_fd) {
        __u32 key = 0;
        if (bpf_map_update_elem(target_fd, &key, &prog_fd, BPF_ANY))
            throw std::runtime_error("replay: set tail-call target");
        return test_run_ns(replay_fd, arp, repeat);
    };
    {
        __u32 key = 0;
        int fd = dp.prog_fd();
        bpf_map_update_elem(target_fd, &key, &fd, BPF_ANY);
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = arp.data(),
                    .data_size_in = static_cast<__u32>(arp.size()), .repeat = 3);
        bpf_prog_test_run_opts(replay_fd, &opts);
        expect(static_cast<int>(opts.retval), XDP_TX, "replayed ARP request");
    }

    // The new tuples' records, removed before each round so that every SYN is new again.
    auto forget_new_syns = [&, src = syn.src.words[0], dst = vip.words[0]] {
        for (std::uint16_t port = 1024; port < 1024 + kNewSyns; ++port) {
            nlb_conn_key4 k{src, dst, htons(port), htons(syn.dport)};
            bpf_map_delete_elem(dp.opening4_fd(), &k);
        }
    };
    std::map<std::string, std::vector<double>> t;
    for (int r = 0; r < rounds; ++r) {
        t["bare"].push_back(test_run_ns(bare_fd, owned, repeat));
        t["drop"].push_back(test_run_ns(dp.prog_fd(), foreign, repeat));
        t["accept"].push_back(test_run_ns(dp.prog_fd(), owned, repeat));
        t["tracked"].push_back(test_run_ns(dp.prog_fd(), tracked, repeat));
        t["syn"].push_back(test_run_ns(dp.prog_fd(), syn_owned, repeat));
        forget_new_syns();
        t["bare_single"].push_back(single_runs_ns(bare_fd, syn_new));
        t["syn_new"].push_back(single_runs_ns(dp.prog_fd(), syn_new));
        t["drop6"].push_back(test_run_ns(dp.prog_fd(), foreign6, repeat));
        t["accept6"].push_back(test_run_ns(dp.prog_fd(), owned6, repeat));
        t["replay_arp"].push_back(replay_into(dp.prog_fd()));
        t["replay_bare"].push_back(replay_into(bare_fd));
        t["heartbeat_drop"].push_back(test_run_ns(dp.prog_fd(), heartbeat, repeat));
        dp.run(frag_first); // a fresh record: the rounds may outlast its 30 s
        t["fragment"].push_back(test_run_ns(dp.prog_fd(), frag_later, repeat));
    }
    expect(dp.maps().read_stats(NLB_STATS_GLOBAL).fragments_unmatched == 0, 1,
           "timed later fragments followed their first");
    double bare_ns = median(t["bare"]);
    double arp_ns = bare_ns + median(t["replay_arp"]) - median(t["replay_bare"]);
    std::printf("{\"bare_ns\": %.1f, \"drop_foreign_ns\": %.1f, \"accept_owned_ns\": %.1f, "
                "\"accept_tracked_ns\": %.1f, \"arp_ns\": %.1f, "
                "\"heartbeat_over_budget_ns\": %.1f, \"fragment_ns\": %.1f, "
                "\"syn_record_ns\": %.1f, \"ipv6_drop_foreign_ns\": %.1f, "
                "\"ipv6_accept_owned_ns\": %.1f, \"bare_single_ns\": %.1f, "
                "\"syn_new_ns\": %.1f}\n",
                bare_ns, median(t["drop"]), median(t["accept"]), median(t["tracked"]), arp_ns,
                median(t["heartbeat_drop"]), median(t["fragment"]), median(t["syn"]),
                median(t["drop6"]), median(t["accept6"]), median(t["bare_single"]),
                median(t["syn_new"]));
    replay_bpf__destroy(replay);
    bare_bpf__destroy(bare);
    return 0;
}
