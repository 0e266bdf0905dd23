// One run of the veth-path benchmark (scripts/bench/veth-path.sh drives it): attaches the
// receiver's XDP program to rx-if inside rx-ns, sends N live frames (BPF_PROG_TEST_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES, many flows) out of tx-if inside tx-ns, and reports the CPU the
// whole path consumed (all CPUs, /proc/stat) and how many frames the receiver's XDP hook saw.
//
//   nlb-bench-veth TX_NS TX_IF RX_NS RX_IF floor|nlb|nlb-tracked|pass PACKETS
//
// floor: bare XDP_DROP; nlb: our program, this host owning none of the traffic; nlb-tracked:
// the same, but every bucket is one this host may track connections in, both connection
// tables are filled to their default size with other connections (the connection filter
// rebuilt from them, as the agent does), and the frames are TCP mid-stream: each consults
// the filter, which answers for almost all (the few it cannot pay both table lookups), then
// is dropped; nlb-tracked-unfiltered: the same with the filter left invalid, so that every
// frame pays an established-table and an opening-table lookup that miss in tables far larger
// than the caches; pass: bare XDP_PASS, so that a netfilter filter installed by the script
// decides. The receiver runs in native XDP
// (what a veth drops with). Where the kernel refuses live frames to this process (EPERM),
// or NLB_BENCH_GENERATOR=packet_socket, the same frames go out of a packet socket, rewritten
// here as the generator would: the sender's cost, then several times a live frame's, is in
// every variant's figure. Prints one JSON line, `generator` naming which sent.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "bare.skel.h"
#include "conn_filter.hpp"
#include "dataplane_maps.hpp"
#include "dataplane_tables.hpp"
#include "nlb.skel.h"
#include "packet_builder.hpp"
#include "packet_socket.hpp"
#include "trafficgen.skel.h"
#include "trafficgen_frame.hpp"

using namespace nlb;

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "nlb-bench-veth: %s\n", what.c_str());
    std::exit(1);
}

void enter_netns(const std::string& name) {
    std::string path = "/run/netns/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
        die("enter netns " + name + ": " + strerror(errno));
    close(fd);
}

unsigned ifindex_of(const std::string& ifname) {
    unsigned idx = if_nametoindex(ifname.c_str());
    if (!idx)
        die("interface " + ifname + ": " + strerror(errno));
    return idx;
}

test::Mac mac_of(const std::string& ifname) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq req{};
    std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    if (s < 0 || ioctl(s, SIOCGIFHWADDR, &req) != 0)
        die("MAC of " + ifname + ": " + strerror(errno));
    close(s);
    test::Mac mac;
    std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
    return mac;
}

// Frames the receiver's XDP hook processed (veth's per-queue XDP counter).
unsigned long long xdp_packets(const std::string& ifname) {
    std::string cmd = "ethtool -S " + ifname + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p)
        die("run ethtool");
    unsigned long long total = 0;
    char line[256];
    while (std::fgets(line, sizeof(line), p)) {
        char name[128];
        unsigned long long v;
        if (std::sscanf(line, " %127[^:]: %llu", name, &v) == 2 &&
            std::strstr(name, "_xdp_packets") && std::strncmp(name, "rx_queue_", 9) == 0)
            total += v;
    }
    pclose(p);
    return total;
}

// Busy CPU time of the whole machine so far, in ns.
double busy_ns() {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
    stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    if (cpu != "cpu")
        die("read /proc/stat");
    double tick_ns = 1e9 / static_cast<double>(sysconf(_SC_CLK_TCK));
    return static_cast<double>(user + nice + system + irq + softirq + steal) * tick_ns;
}

// Both IPv4 connection tables full of connections the generated traffic never matches
// (clients 10.97.x.y; the generator sends from 10.98.0.0/20).
void fill_tables(nlb_bpf* dp) {
    const int tables[] = {bpf_map__fd(dp->maps.nlb_est4), bpf_map__fd(dp->maps.nlb_conns4)};
    for (int fd : tables) {
        const std::uint32_t entries =
            fd == tables[0] ? NLB_EST_TABLE_ENTRIES : NLB_CONN_TABLE_ENTRIES;
        for (std::uint32_t i = 0; i < entries; ++i) {
            nlb_conn_key4 key{};
            key.saddr = htonl(0x0a610000u | (i >> 6));
            key.daddr = htonl(0x0a630064u); // 10.99.0.100
            key.sport = htons(static_cast<std::uint16_t>(1024 + (i & 63)));
            key.dport = htons(80);
            nlb_conn value{};
            if (bpf_map_update_elem(fd, &key, &value, BPF_NOEXIST))
                die(std::string("fill a connection table: ") + strerror(errno));
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 7)
        die("usage: nlb-bench-veth TX_NS TX_IF RX_NS RX_IF "
            "floor|nlb|nlb-tracked|nlb-tracked-unfiltered|pass PACKETS");
    std::string tx_ns = argv[1], tx_if = argv[2], rx_ns = argv[3], rx_if = argv[4];
    std::string variant = argv[5];
    long packets = std::atol(argv[6]);
    const IpAddress vip = test::ip("10.99.0.100");

    // Receiver.
    enter_netns(rx_ns);
    unsigned rx_idx = ifindex_of(rx_if);
    test::Mac rx_mac = mac_of(rx_if);
    bare_bpf* bare = bare_bpf__open_and_load();
    nlb_bpf* dp = nlb_bpf__open_and_load();
    if (!bare || !dp)
        die(std::string("load BPF objects: ") + strerror(errno));
    int prog = -1;
    if (variant == "floor") {
        prog = bpf_program__fd(bare->progs.xdp_bare_drop);
    } else if (variant == "pass") {
        prog = bpf_program__fd(bare->progs.xdp_bare_pass);
    } else if (variant == "nlb" || variant == "nlb-tracked" ||
               variant == "nlb-tracked-unfiltered") {
        // A 4-host cluster in which this host owns no bucket of the generated traffic.
        const bool tracked = variant != "nlb";
        static DataplaneTables tables({vip}, {RuleMatch{}});
        static DataplaneMaps maps(DataplaneMapFds{
            bpf_map__fd(dp->maps.bss), bpf_map__fd(dp->maps.nlb_ports),
            bpf_map__fd(dp->maps.nlb_conns4), bpf_map__fd(dp->maps.nlb_conns6),
            bpf_map__fd(dp->maps.nlb_stats), bpf_map__fd(dp->maps.nlb_est4),
            bpf_map__fd(dp->maps.nlb_est6)});
        if (tracked) {
            fill_tables(dp);
            // As the agent leaves it once attached: rebuilt from the full tables, valid. (The
            // generator's tuples are in none of them: the filter answers for almost all.)
            // nlb-tracked-unfiltered leaves it invalid: every packet pays both lookups.
            static ConnFilter filter(bpf_map__fd(dp->maps.nlb_conn_filter),
                                     bpf_map__max_entries(dp->maps.nlb_conn_filter));
            if (variant == "nlb-tracked")
                filter.rebuild(maps);
        }
        nlb_config cfg{};
        cfg.host_priority = 1;
        std::memcpy(cfg.own_mac, rx_mac.data(), 6);
        maps.write_config(cfg);
        maps.write_tables(tables);
        maps.state().config.alive = 1;
        for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
            nlb_rule& r = maps.state().rules[slot];
            r.affinity = tables.affinity_of(slot);
            for (auto& b : r.bucket) // owned by host 2 (of 2..4), never by this host (1)
                b = static_cast<std::uint16_t>(2 | (tracked ? NLB_BKT_TRACKED_HERE : 0));
        }
        prog = bpf_program__fd(dp->progs.nlb_xdp);
    } else {
        die("unknown variant " + variant);
    }
    if (int err = bpf_xdp_attach(static_cast<int>(rx_idx), prog, XDP_FLAGS_DRV_MODE, nullptr))
        die("attach XDP to " + rx_if + ": " + strerror(-err));
    unsigned long long seen_before = xdp_packets(rx_if);

    // Sender.
    enter_netns(tx_ns);
    unsigned tx_idx = ifindex_of(tx_if);
    test::PacketSpec spec;
    spec.src_mac = mac_of(tx_if);
    spec.dst_mac = rx_mac;
    spec.src = test::ip("10.98.0.1");
    spec.dst = vip;
    // UDP, or a TCP ACK (the generator rewrites the source port at the same offset).
    const bool tcp = variant.rfind("nlb-tracked", 0) == 0;
    spec.proto = tcp ? test::kTcp : test::kUdp;
    spec.payload = tcp ? 6 : 18; // 60-byte frame, the Ethernet minimum
    test::Bytes frame = test::build(spec);

    trafficgen_bpf* gen = trafficgen_bpf__open();
    if (!gen)
        die("open trafficgen");
    gen->rodata->ifindex = tx_idx;
    gen->rodata->src_base = ntohl(spec.src.words[0]);
    gen->rodata->src_count = 4096;
    if (trafficgen_bpf__load(gen))
        die(std::string("load trafficgen: ") + strerror(errno));

    // Whether this kernel lets the process send live frames, by one frame before the clock
    // starts (the receiver counts it too: `seen` is taken against what it had before), unless
    // NLB_BENCH_GENERATOR=packet_socket asks for the fallback (its test, where live frames work).
    bool live = true;
    const char* asked = std::getenv("NLB_BENCH_GENERATOR");
    if (asked && std::string(asked) == "packet_socket") {
        live = false;
    } else {
        LIBBPF_OPTS(bpf_test_run_opts, probe, .data_in = frame.data(),
                    .data_size_in = static_cast<__u32>(frame.size()), .repeat = 1,
                    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
        int err = bpf_prog_test_run_opts(bpf_program__fd(gen->progs.xdp_trafficgen), &probe);
        if (err == -EPERM || err == -EOPNOTSUPP) {
            std::fprintf(stderr,
                         "nlb-bench-veth: live frames refused (%s): sending from a "
                         "packet socket\n",
                         strerror(-err));
            live = false;
        } else if (err) {
            die(std::string("send live frames: ") + strerror(-err));
        }
    }
    const char* generator = live ? "live_frames" : "packet_socket";
    std::optional<test::TrafficgenSender> out;
    if (!live) {
        try {
            out.emplace(tx_idx, frame, gen->rodata->src_base, gen->rodata->src_count);
        } catch (const std::exception& e) {
            die(e.what());
        }
    }

    double busy_start = busy_ns();
    auto wall_start = std::chrono::steady_clock::now();
    long sent = 0;
    while (sent < packets) {
        if (!live) {
            // As the generator would: each frame's source address and port rewritten here,
            // which the whole path's CPU then includes, in every variant alike.
            const auto n = static_cast<unsigned>(
                std::min<long>(static_cast<long>(test::PacketSocket::kBatch), packets - sent));
            unsigned r = 0;
            try {
                r = out->send(static_cast<std::uint64_t>(sent), n);
            } catch (const std::exception& e) {
                die(e.what());
            }
            if (r == 0)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            sent += r;
            continue;
        }
        long batch = std::min(packets - sent, 1L << 20);
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                    .data_size_in = static_cast<__u32>(frame.size()),
                    .repeat = static_cast<int>(batch), .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
        if (int err = bpf_prog_test_run_opts(bpf_program__fd(gen->progs.xdp_trafficgen), &opts))
            die(std::string("send live frames: ") + strerror(-err));
        sent += batch;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // let the receiver drain
    double busy = busy_ns() - busy_start;
    std::chrono::duration<double> wall = std::chrono::steady_clock::now() - wall_start;

    enter_netns(rx_ns);
    unsigned long long seen = xdp_packets(rx_if) - seen_before;
    bpf_xdp_detach(static_cast<int>(rx_idx), XDP_FLAGS_DRV_MODE, nullptr);
    std::printf("{\"variant\": \"%s\", \"xdp_mode\": \"native\", \"generator\": \"%s\", "
                "\"sent\": %ld, \"received\": %llu, \"busy_ns\": %.0f, "
                "\"wall_s\": %.3f, \"ns_per_packet\": %.2f}\n",
                variant.c_str(), generator, sent, seen, busy, wall.count(),
                seen ? busy / static_cast<double>(seen) : 0.0);
    trafficgen_bpf__destroy(gen);
    nlb_bpf__destroy(dp);
    bare_bpf__destroy(bare);
    return seen ? 0 : 1;
}
