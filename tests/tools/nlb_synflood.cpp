// Spoofed-SYN flood for the end-to-end tests (issue "SYN floods erase established
// connections"): live frames (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, DESIGN.md §7)
// from a TCP SYN template, the traffic generator rewriting the source address and port of
// every frame, so each frame is a new flow. Run it inside the sending namespace:
//
//   nlb-synflood --ifname IF --dst-mac MAC --dst A.B.C.D --port P --sources A.B.C.D+N
//                [--count 1000000] [--rate 200000]
//
// Bounded by --count; paced to --rate in batches so the receiving veths' backlogs are not
// simply overrun. Where the kernel refuses live frames to this process (EPERM: some sandboxed
// kernels do, as they refuse map iterators), the same frames go out of an AF_PACKET socket
// with sendmmsg, rewritten here (slower, and said so on stderr). The TCP checksum is left as the
// template's, so the hosts' stacks drop the frames (no SYN-ACKs to addresses nobody has) after the
// XDP dataplane saw and recorded them: what a flood does to the connection tables is the
// dataplane's part, the stack's is not under test. Prints one JSON line: frames handed to the
// interface, the time taken, and IF's tx_packets / tx_dropped over the run.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "packet_builder.hpp"
#include "packet_socket.hpp"
#include "trafficgen.skel.h"
#include "trafficgen_frame.hpp"

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "nlb-synflood: %s\n", what.c_str());
    std::exit(2);
}

unsigned long long counter(const std::string& ifname, const char* name) {
    std::ifstream f("/sys/class/net/" + ifname + "/statistics/" + name);
    unsigned long long v = 0;
    f >> v;
    return v;
}

nlb::test::Mac parse_mac(const std::string& text) {
    nlb::test::Mac m{};
    unsigned b[6];
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
                    &b[5]) != 6)
        die("--dst-mac " + text + ": not a MAC address");
    for (int i = 0; i < 6; ++i)
        m[i] = static_cast<std::uint8_t>(b[i]);
    return m;
}

nlb::test::Mac mac_of(const std::string& ifname) {
    std::ifstream f("/sys/class/net/" + ifname + "/address");
    std::string text;
    if (!(f >> text))
        die("interface " + ifname + ": no MAC address");
    return parse_mac(text);
}

// The fallback: `count` frames from `sent` on, out of a packet socket, paced as the live
// frames are. Returns the frames handed to the interface.
long send_packet_socket(unsigned ifindex, const nlb::test::Bytes& frame, std::uint32_t src_base,
                        std::uint32_t src_count, long sent, long count, long rate,
                        std::chrono::steady_clock::time_point start) {
    try {
        nlb::test::TrafficgenSender out(ifindex, frame, src_base, src_count);
        while (sent < count) {
            const auto n = static_cast<unsigned>(std::min<long>(
                {static_cast<long>(nlb::test::PacketSocket::kBatch), rate / 100, count - sent}));
            const unsigned r = out.send(static_cast<std::uint64_t>(sent), n);
            if (r == 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                continue;
            }
            sent += r;
            std::this_thread::sleep_until(start + std::chrono::microseconds(sent * 1000000 / rate));
        }
    } catch (const std::exception& e) {
        die(e.what());
    }
    return sent;
}

} // namespace

int main(int argc, char** argv) {
    std::string ifname, dst_mac, dst, sources;
    long port = 0, count = 1000000, rate = 200000;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                die(a + ": missing value");
            return argv[++i];
        };
        if (a == "--ifname")
            ifname = value();
        else if (a == "--dst-mac")
            dst_mac = value();
        else if (a == "--dst")
            dst = value();
        else if (a == "--port")
            port = std::strtol(value().c_str(), nullptr, 10);
        else if (a == "--sources")
            sources = value();
        else if (a == "--count")
            count = std::strtol(value().c_str(), nullptr, 10);
        else if (a == "--rate")
            rate = std::strtol(value().c_str(), nullptr, 10);
        else
            die("unknown argument " + a);
    }
    auto plus = sources.find('+');
    if (ifname.empty() || dst_mac.empty() || dst.empty() || plus == std::string::npos)
        die("usage: --ifname IF --dst-mac MAC --dst IP --port P --sources A.B.C.D+N");
    if (port < 1 || port > 65535 || count < 1 || count > 100000000 || rate < 1000)
        die("--port 1..65535, --count 1..100000000, --rate >= 1000");
    in_addr first{};
    long nsources = std::strtol(sources.c_str() + plus + 1, nullptr, 10);
    if (inet_pton(AF_INET, sources.substr(0, plus).c_str(), &first) != 1 || nsources < 1)
        die("--sources " + sources + ": expected A.B.C.D+COUNT");
    unsigned ifindex = if_nametoindex(ifname.c_str());
    if (!ifindex)
        die("interface " + ifname + ": " + std::strerror(errno));

    nlb::test::PacketSpec spec;
    spec.src_mac = mac_of(ifname);
    spec.dst_mac = parse_mac(dst_mac);
    spec.src = nlb::test::ip(sources.substr(0, plus));
    spec.dst = nlb::test::ip(dst);
    spec.proto = nlb::test::kTcp;
    spec.tcp_flags = nlb::test::kSyn;
    spec.dport = static_cast<std::uint16_t>(port);
    nlb::test::Bytes frame = nlb::test::build(spec);

    trafficgen_bpf* gen = trafficgen_bpf__open();
    if (!gen)
        die("open trafficgen");
    gen->rodata->ifindex = ifindex;
    gen->rodata->src_base = ntohl(first.s_addr);
    gen->rodata->src_count = static_cast<__u32>(nsources);
    if (trafficgen_bpf__load(gen))
        die(std::string("load trafficgen: ") + std::strerror(errno));

    const unsigned long long tx0 = counter(ifname, "tx_packets");
    const unsigned long long drop0 = counter(ifname, "tx_dropped");
    const long batch = std::max(1L, rate / 100); // 100 batches a second
    const auto start = std::chrono::steady_clock::now();
    long sent = 0;
    while (sent < count) {
        const long n = std::min(batch, count - sent);
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                    .data_size_in = static_cast<__u32>(frame.size()),
                    .repeat = static_cast<int>(n), .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
        if (int err = bpf_prog_test_run_opts(bpf_program__fd(gen->progs.xdp_trafficgen), &opts)) {
            if (sent == 0 && (err == -EPERM || err == -EOPNOTSUPP)) {
                std::fprintf(stderr,
                             "nlb-synflood: live frames refused (%s): sending from a packet "
                             "socket\n",
                             std::strerror(-err));
                sent = send_packet_socket(ifindex, frame, ntohl(first.s_addr),
                                          static_cast<std::uint32_t>(nsources), sent, count, rate,
                                          start);
                break;
            }
            die(std::string("send live frames: ") + std::strerror(-err));
        }
        sent += n;
        std::this_thread::sleep_until(start + std::chrono::microseconds(sent * 1000000 / rate));
    }
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::printf("{\"sent\": %ld, \"seconds\": %.3f, \"tx_packets\": %llu, \"tx_dropped\": %llu}\n",
                sent, took.count(), counter(ifname, "tx_packets") - tx0,
                counter(ifname, "tx_dropped") - drop0);
    trafficgen_bpf__destroy(gen);
    return 0;
}
