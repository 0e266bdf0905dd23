// Forged-heartbeat flood for tests/faults (fault "forged flood"): sends EtherType 0x886F
// frames that carry the right cluster IP at payload bytes 12-15 but are forged: well-formed
// heartbeats with a wrong HMAC, the same without the HMAC flag, map chunks with a wrong HMAC,
// and garbage after the magic (bad lengths). Sender priorities are random over 1..64, so the
// real members' priorities are forged too. AF_PACKET raw socket + sendmmsg, paced to --rate,
// bounded by --count frames and --duration seconds, whichever comes first. Run it inside a
// namespace on the test bridge (ip netns exec NS nlb-flood --ifname eth0 ...).
//
//   nlb-flood --ifname IF --cluster-ip A.B.C.D [--rate 100000] [--duration 5] [--count N]
//             [--cluster-mac MAC] [--src own|random] [--seed S]
//
// Destination MACs alternate between broadcast and --cluster-mac (today's heartbeats go to
// the one, the design's to the other). Source MACs: IF's own (--src own, the default), or
// random locally administered unicast ones, one per frame of the pool (--src random: at most
// 4096 distinct sources, as an attacker who varies them would send; the bridge learns them).
// Prints one JSON line: frames handed to the kernel, the rate reached, send errors, and IF's
// tx_packets / tx_dropped counters over the run (what really left the interface).
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "packet_socket.hpp"

namespace {

constexpr std::uint16_t kEtherType = 0x886F;
constexpr std::size_t kPool = 4096; // distinct frames, cycled

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "nlb-flood: %s\n", what.c_str());
    std::exit(2);
}

struct Rng { // xorshift64*: reproducible with --seed, cheap
    std::uint64_t s;
    std::uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 2685821657736338717ULL;
    }
    std::uint8_t byte() { return static_cast<std::uint8_t>(next() >> 56); }
};

using Mac = std::array<std::uint8_t, 6>;

Mac parse_mac(const std::string& text) {
    Mac m{};
    unsigned v[6];
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
                    &v[5]) != 6)
        die("bad MAC " + text);
    for (int i = 0; i < 6; ++i)
        m[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v[i]);
    return m;
}

std::uint64_t read_counter(const std::string& ifname, const char* name) {
    std::ifstream in("/sys/class/net/" + ifname + "/statistics/" + name);
    std::uint64_t v = 0;
    in >> v;
    return v;
}

void put16(std::vector<std::uint8_t>& f, std::size_t at, std::uint16_t v) {
    f[at] = static_cast<std::uint8_t>(v >> 8);
    f[at + 1] = static_cast<std::uint8_t>(v);
}

// One forged frame (Ethernet header included). kind: 0 heartbeat + wrong HMAC, 1 heartbeat
// without HMAC, 2 map chunk + wrong HMAC, 3 magic + cluster IP then garbage.
std::vector<std::uint8_t> forge(int kind, Rng& rng, const Mac& dst, const Mac& src,
                                std::uint32_t cluster_ip) {
    std::size_t payload = 0;
    switch (kind) {
    case 0:
        payload = 104 + 32;
        break;
    case 1:
        payload = 104;
        break;
    case 2:
        payload = 56 + 1 + rng.next() % 1200 + 32;
        break;
    default:
        payload = 16 + rng.next() % 1484;
        break;
    }
    std::vector<std::uint8_t> f(14 + payload);
    for (auto& b : f)
        b = rng.byte();
    std::copy(dst.begin(), dst.end(), f.begin());
    std::copy(src.begin(), src.end(), f.begin() + 6);
    put16(f, 12, kEtherType);
    std::uint8_t* p = f.data() + 14;
    std::memcpy(p, kind == 2 ? "NLBM" : "NLBH", 4);
    p[4] = 1; // major
    p[12] = static_cast<std::uint8_t>(cluster_ip >> 24);
    p[13] = static_cast<std::uint8_t>(cluster_ip >> 16);
    p[14] = static_cast<std::uint8_t>(cluster_ip >> 8);
    p[15] = static_cast<std::uint8_t>(cluster_ip);
    if (kind == 3)
        return f; // the rest is garbage: lengths, version minor, everything
    p[5] = 1;     // minor
    put16(f, 14 + 6, kind == 2 ? 56 : 104);            // header length
    put16(f, 14 + 8, static_cast<std::uint16_t>(payload)); // total length
    put16(f, 14 + 10, kind == 1 ? 0 : 1);              // flags: HMAC present (but wrong)
    p[16] = static_cast<std::uint8_t>(1 + rng.next() % 64); // any priority, members' too
    if (kind == 2) {
        p[17] = 0;
        std::uint16_t count = static_cast<std::uint16_t>(1 + rng.next() % 3);
        put16(f, 14 + 18, static_cast<std::uint16_t>(rng.next() % count));
        put16(f, 14 + 20, count);
        put16(f, 14 + 22, 0);
    } else {
        p[17] = static_cast<std::uint8_t>(rng.next() % 6); // state
        p[18] = 0;                                          // refusal reason
        p[19] = 0;                                          // no rules: no rules section
        std::memset(p + 20, 0, 4);
    }
    return f;
}

} // namespace

int main(int argc, char** argv) {
    std::string ifname, cluster_ip_text;
    double rate = 100000, duration = 5;
    std::uint64_t count = 0, seed = 0x6e6c62666c6f6f64ULL;
    Mac cluster_mac{};
    bool have_cluster_mac = false;
    bool random_src = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                die(a + " needs a value");
            return argv[++i];
        };
        if (a == "--ifname")
            ifname = value();
        else if (a == "--cluster-ip")
            cluster_ip_text = value();
        else if (a == "--rate")
            rate = std::stod(value());
        else if (a == "--duration")
            duration = std::stod(value());
        else if (a == "--count")
            count = std::stoull(value());
        else if (a == "--seed")
            seed = std::stoull(value());
        else if (a == "--src") {
            std::string v = value();
            if (v != "own" && v != "random")
                die("--src is own or random");
            random_src = v == "random";
        } else if (a == "--cluster-mac") {
            cluster_mac = parse_mac(value());
            have_cluster_mac = true;
        } else if (a == "--help" || a == "-h") {
            std::printf("nlb-flood --ifname IF --cluster-ip A.B.C.D [--rate 100000] "
                        "[--duration 5] [--count N] [--cluster-mac MAC] [--src own|random] "
                        "[--seed S]\n");
            return 0;
        } else
            die("unknown argument " + a);
    }
    if (ifname.empty() || cluster_ip_text.empty())
        die("--ifname and --cluster-ip are required (--help)");
    if (rate <= 0 || duration <= 0 || duration > 60)
        die("--rate must be > 0 and --duration in (0, 60]");
    if (count == 0)
        count = static_cast<std::uint64_t>(rate * duration);
    in_addr ip{};
    if (inet_pton(AF_INET, cluster_ip_text.c_str(), &ip) != 1)
        die("bad --cluster-ip " + cluster_ip_text);
    std::uint32_t cluster_ip = ntohl(ip.s_addr);
    if (!have_cluster_mac) // unicast mode's 02:bf:a:b:c:d
        cluster_mac = {0x02, 0xbf, static_cast<std::uint8_t>(cluster_ip >> 24),
                       static_cast<std::uint8_t>(cluster_ip >> 16),
                       static_cast<std::uint8_t>(cluster_ip >> 8),
                       static_cast<std::uint8_t>(cluster_ip)};

    unsigned ifindex = if_nametoindex(ifname.c_str());
    if (!ifindex)
        die("interface " + ifname + ": " + std::strerror(errno));
    Mac own{};
    {
        std::ifstream in("/sys/class/net/" + ifname + "/address");
        std::string text;
        in >> text;
        own = parse_mac(text);
    }
    Rng rng{seed | 1};
    const Mac broadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    std::vector<std::vector<std::uint8_t>> pool;
    pool.reserve(kPool);
    for (std::size_t i = 0; i < kPool; ++i) {
        Mac src = own;
        if (random_src) {
            for (auto& b : src)
                b = rng.byte();
            src[0] = static_cast<std::uint8_t>((src[0] & 0xfc) | 0x02); // unicast, local
        }
        pool.push_back(forge(static_cast<int>(i % 4), rng, (i / 4) % 2 ? cluster_mac : broadcast,
                             src, cluster_ip));
    }

    const std::uint64_t tx0 = read_counter(ifname, "tx_packets");
    const std::uint64_t drop0 = read_counter(ifname, "tx_dropped");
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    std::uint64_t sent = 0, errors = 0;
    try {
        nlb::test::PacketSocket out(ifindex);
        out.option(SOL_SOCKET, SO_SNDBUF, 4 << 20);
        for (;;) {
            double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
            if (elapsed >= duration || sent >= count)
                break;
            auto due =
                std::min<std::uint64_t>(count, static_cast<std::uint64_t>(rate * elapsed) + 1);
            if (due <= sent) {
                std::this_thread::sleep_for(std::chrono::microseconds(100));
                continue;
            }
            const auto n = static_cast<unsigned>(
                std::min<std::uint64_t>(due - sent, nlb::test::PacketSocket::kBatch));
            const unsigned r = out.send(
                n, [&](unsigned k) -> const auto& { return pool[(sent + k) % kPool]; });
            if (r == 0) {
                ++errors;
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                continue;
            }
            sent += r;
        }
    } catch (const std::exception& e) {
        die(e.what());
    }
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::uint64_t tx = read_counter(ifname, "tx_packets") - tx0;
    std::uint64_t dropped = read_counter(ifname, "tx_dropped") - drop0;
    std::printf("{\"sent\": %llu, \"seconds\": %.3f, \"rate\": %.0f, \"target_rate\": %.0f, "
                "\"sources\": \"%s\", "
                "\"send_errors\": %llu, \"tx_packets\": %llu, \"tx_dropped\": %llu, "
                "\"tx_rate\": %.0f}\n",
                static_cast<unsigned long long>(sent), seconds, sent / seconds, rate,
                random_src ? "random" : "own",
                static_cast<unsigned long long>(errors), static_cast<unsigned long long>(tx),
                static_cast<unsigned long long>(dropped), tx / seconds);
    return 0;
}
