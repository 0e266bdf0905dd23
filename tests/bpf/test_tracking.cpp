// TCP connection tracking across a bucket move, played by two hosts with the same tables:
// the old owner keeps its connections, the new owner takes new ones at once and the old ones
// once the bucket is clean; FIN/RST change no record; established records (the socket
// program's, or nlb_seed's) outlive a SYN flood and end only with their socket; ADOPT records
// connections opened before this host owned the bucket; UDP moves at once; a connection opened
// at any instant of a release is served by one host.
#include <time.h>

#include <random>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"
#include "conn_scanner.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_tracking {

namespace {

const IpAddress kVip4 = ip("10.0.0.100");
const IpAddress kVip6 = ip("2001:db8::100");

// The dataplane stamps closed_ns with the coarse monotonic clock.
std::uint64_t monotonic_ns(clockid_t clock = CLOCK_MONOTONIC_COARSE) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// Host 1 owns every bucket until `moved` goes to host 2.
struct Move {
    DataplaneTables tables{{kVip4, kVip6}, {RuleMatch{}}}; // all ports, single affinity
    DataplaneFixture h1, h2;
    std::uint16_t bucket = 0;

    Move() {
        h1.configure(tables, 1);
        h2.configure(tables, 2);
        h1.own_all(0, 1);
        h2.own_all(0, 1);
    }
    // host 1 entry / host 2 entry for the moving bucket; every other bucket stays host 1's
    void set(std::uint16_t e1, std::uint16_t e2) {
        h1.set_buckets(0, [&](std::uint16_t b) {
            return b == bucket ? e1 : static_cast<std::uint16_t>(1 | NLB_BKT_MINE);
        });
        h2.set_buckets(0, [&](std::uint16_t b) { return b == bucket ? e2 : std::uint16_t{1}; });
    }
    void moved_dirty() { set(2 | NLB_BKT_TRACKED_HERE, 2 | NLB_BKT_MINE | NLB_BKT_DIRTY_OTHER); }
    void clean() { set(2, 2 | NLB_BKT_MINE); }
    // The agent sets the namespace's cookie exactly while the socket program runs, which
    // moves established connections out of the opening table.
    void socket_program(bool on) {
        for (auto* h : {&h1, &h2})
            h->maps().state().config.netns_cookie = on ? 0x5eed : 0;
    }
};

PacketSpec tcp(const IpAddress& client, std::uint16_t port, std::uint8_t flags) {
    PacketSpec s;
    s.src = client;
    s.dst = client.family == NLB_FAMILY_V4 ? kVip4 : kVip6;
    s.sport = port;
    s.dport = 443;
    s.tcp_flags = flags;
    s.payload = 20;
    return s;
}

PacketSpec with_flags(PacketSpec s, std::uint8_t flags) {
    s.tcp_flags = flags;
    return s;
}

} // namespace

TEST_CASE("TCP connections survive a bucket move") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    Move m;
    std::mt19937 rng(family);
    IpAddress client = random_address(rng, family);
    m.bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);
    m.set(1 | NLB_BKT_MINE, 1);

    // the old owner accepts and records the connection
    PacketSpec old_conn = tcp(client, 1111, kSyn);
    CHECK(verdict(m.h1, build(old_conn)) == Verdict::accepted);
    CHECK(verdict(m.h2, build(old_conn)) == Verdict::dropped);
    CHECK(stats(m.h1, 0).tracked == 1);
    CHECK(stats(m.h2, 0).tracked == 0);
    auto entry = conn_of(m.h1, old_conn);
    REQUIRE(entry);
    CHECK(entry->bucket == m.bucket);
    CHECK(entry->rule == 0);
    CHECK(entry->closed_ns == 0);
    CHECK_FALSE(conn_of(m.h2, old_conn));
    old_conn.tcp_flags = kAck;
    CHECK(verdict(m.h1, build(old_conn)) == Verdict::accepted);
    CHECK(verdict(m.h2, build(old_conn)) == Verdict::dropped);

    m.moved_dirty();
    m.h1.maps().clear_stats();
    m.h2.maps().clear_stats();

    SECTION("old owner keeps its connection, new owner takes new ones, then the rest") {
        // mid-stream packets of the old connection: the old owner's
        for (std::uint8_t flags : {kAck, std::uint8_t(kAck | 0x08)}) {
            CHECK(verdict(m.h1, build(with_flags(old_conn, flags))) == Verdict::accepted);
            CHECK(verdict(m.h2, build(with_flags(old_conn, flags))) == Verdict::dropped);
        }
        CHECK(stats(m.h2, 0).dropped_dirty == 2);
        CHECK(stats(m.h2, 0).accepted == 0);

        // a new connection in the same bucket: the new owner's, tracked there
        PacketSpec new_conn = tcp(client, 2222, kSyn);
        CHECK(verdict(m.h1, build(new_conn)) == Verdict::dropped);
        CHECK(verdict(m.h2, build(new_conn)) == Verdict::accepted);
        CHECK(stats(m.h2, 0).tracked == 1);
        CHECK(conn_of(m.h2, new_conn));
        CHECK_FALSE(conn_of(m.h1, new_conn));
        new_conn.tcp_flags = kAck;
        CHECK(verdict(m.h1, build(new_conn)) == Verdict::dropped);
        CHECK(verdict(m.h2, build(new_conn)) == Verdict::accepted);

        // mid-stream, tracked by nobody: while dirty, nobody takes it
        PacketSpec stray = tcp(client, 3333, kAck);
        CHECK(verdict(m.h1, build(stray)) == Verdict::dropped);
        CHECK(verdict(m.h2, build(stray)) == Verdict::dropped);
        CHECK(stats(m.h2, 0).dropped_dirty == 3);

        // an ICMP error quoting the old connection follows it to the old owner
        PacketSpec quoted = tcp(client, 1111, kAck);
        std::swap(quoted.src, quoted.dst);
        std::swap(quoted.sport, quoted.dport);
        PacketSpec outer;
        outer.src = family == NLB_FAMILY_V4 ? ip("192.0.2.1") : ip("2001:db8:ffff::1");
        outer.dst = old_conn.dst;
        Bytes err = build_icmp_error(outer, build(quoted), family == NLB_FAMILY_V4 ? 3 : 2);
        CHECK(verdict(m.h1, err) == Verdict::accepted);
        CHECK(verdict(m.h2, err) == Verdict::dropped);

        // clean: the new owner takes everything in the bucket
        m.clean();
        CHECK(verdict(m.h2, build(old_conn)) == Verdict::accepted);
        CHECK(verdict(m.h2, build(stray)) == Verdict::accepted);
        CHECK(verdict(m.h2, build(new_conn)) == Verdict::accepted);
        CHECK(verdict(m.h2, err) == Verdict::accepted);
        CHECK(verdict(m.h1, build(old_conn)) == Verdict::dropped);
        CHECK(verdict(m.h1, build(stray)) == Verdict::dropped);
        CHECK(stats(m.h2, 0).dropped_dirty == 4);
        CHECK(stats(m.h2, 0).tracked == 1); // a clean owned bucket records nothing new
    }
    SECTION("a SYN in a bucket that moved away is the new owner's, even for a tracked tuple") {
        PacketSpec reuse = with_flags(old_conn, kSyn);
        CHECK(verdict(m.h1, build(reuse)) == Verdict::dropped);
        CHECK(verdict(m.h2, build(reuse)) == Verdict::accepted);
        CHECK(conn_of(m.h2, reuse));
        // from then on the tuple is the new owner's connection alone
        CHECK(verdict(m.h2, build(old_conn)) == Verdict::accepted);
        CHECK(verdict(m.h1, build(old_conn)) == Verdict::dropped);
        CHECK_FALSE(conn_of(m.h1, old_conn));
    }
    SECTION("an established record whose socket closed longer ago than the grace period ends") {
        REQUIRE(m.h1.seed(tuple_of(old_conn)) == XDP_PASS);
        nlb_conn c = *est_of(m.h1, old_conn);
        CHECK(c.bucket == m.bucket);
        CHECK(c.closed_ns == 0);
        CHECK_FALSE(conn_of(m.h1, old_conn)); // the opening record moved to the table for good
        CHECK(verdict(m.h1, build(old_conn)) == Verdict::accepted);
        c.closed_ns = 1; // closed at boot
        put_est(m.h1, old_conn, c);
        CHECK(verdict(m.h1, build(old_conn)) == Verdict::dropped);
        // closed just now: still within grace
        c.closed_ns = monotonic_ns();
        put_est(m.h1, old_conn, c);
        CHECK(verdict(m.h1, build(old_conn)) == Verdict::accepted);
    }
    SECTION("a SYN on a tuple whose socket here is open goes to that socket, not away") {
        REQUIRE(m.h1.seed(tuple_of(old_conn)) == XDP_PASS);
        PacketSpec forged = with_flags(old_conn, kSyn);
        // the stack answers with a challenge ACK; the record stays
        CHECK(verdict(m.h1, build(forged)) == Verdict::accepted);
        CHECK(est_of(m.h1, old_conn));
        CHECK(verdict(m.h1, build(old_conn)) == Verdict::accepted);
        // once the socket closed, the tuple is the new owner's
        nlb_conn c = *est_of(m.h1, old_conn);
        c.closed_ns = monotonic_ns();
        put_est(m.h1, old_conn, c);
        CHECK(verdict(m.h1, build(forged)) == Verdict::dropped);
        CHECK_FALSE(est_of(m.h1, old_conn));
        CHECK(verdict(m.h2, build(forged)) == Verdict::accepted);
    }
    SECTION("UDP moves at once") {
        PacketSpec udp = tcp(client, 1111, 0);
        udp.proto = kUdp;
        CHECK(verdict(m.h1, build(udp)) == Verdict::dropped);
        CHECK(verdict(m.h2, build(udp)) == Verdict::accepted);
        m.set(1 | NLB_BKT_MINE, 1);
        CHECK(verdict(m.h1, build(udp)) == Verdict::accepted);
        CHECK(verdict(m.h2, build(udp)) == Verdict::dropped);
        CHECK(stats(m.h1, 0).tracked == 0);
        CHECK(stats(m.h2, 0).tracked == 0);
        CHECK(conn_count(m.h2.maps().fds().conns4, sizeof(nlb_conn_key4)) == 0);
        CHECK(conn_count(m.h2.maps().fds().conns6, sizeof(nlb_conn_key6)) == 0);
    }
}

// A SYN forged with the 4-tuple of a connection another host serves, in a bucket that moved
// here: the new owner takes it (a new connection is its own) and its stack answers with a
// SYN-ACK, which the client answers from its own sequence space. That answer is the other
// host's packet: taken here, it would make this stack reset the client's connection.
TEST_CASE("a forged SYN on another host's connection: the new owner takes only what continues it") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    // IPv4 with options takes the general path, without them the fast one
    auto options = family == NLB_FAMILY_V4 ? GENERATE(0u, 4u) : 0u;
    CAPTURE(int(family), options);
    Move m;
    std::mt19937 rng(300 + family + options);
    IpAddress client = random_address(rng, family);
    m.bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);
    m.set(1 | NLB_BKT_MINE, 1);
    m.socket_program(true);
    auto packet = [&](std::uint16_t port, std::uint8_t flags, std::uint32_t seq) {
        PacketSpec p = tcp(client, port, flags);
        p.seq = seq;
        p.ipv4_options = options;
        return build(p);
    };
    // host 1's connection, established by its stack; then the bucket moves to host 2
    REQUIRE(m.h1.seed(tuple_of(tcp(client, 1111, kAck))) == XDP_PASS);
    m.moved_dirty();

    const std::uint32_t forged = 0x5000'0000, client_next = 0x1234'5678;
    CHECK(verdict(m.h2, packet(1111, kSyn, forged)) == Verdict::accepted);
    CHECK(verdict(m.h1, packet(1111, kSyn, forged)) == Verdict::accepted); // its socket's
    auto e = conn_of(m.h2, tcp(client, 1111, kSyn));
    REQUIRE(e);
    CHECK(e->flags == NLB_CONN_SYN_SEQ);
    CHECK(e->syn_seq == forged);
    // the client's answer to host 2's SYN-ACK: host 1's connection, not host 2's
    const auto dirty = stats(m.h2, 0).dropped_dirty;
    CHECK(verdict(m.h2, packet(1111, kAck, client_next)) == Verdict::dropped);
    CHECK(verdict(m.h1, packet(1111, kAck, client_next)) == Verdict::accepted);
    CHECK(stats(m.h2, 0).dropped_dirty == dirty + 1);
    // what does continue the SYN (the sender's own handshake) is host 2's: its first window
    CHECK(verdict(m.h2, packet(1111, kAck, forged + 1)) == Verdict::accepted);
    CHECK(verdict(m.h2, packet(1111, kAck | 0x08, forged + 1 + 60'000)) == Verdict::accepted);
    CHECK(verdict(m.h2, packet(1111, kAck, forged + 1 + NLB_OPENING_SEQ_WINDOW)) ==
          Verdict::dropped);
    CHECK(verdict(m.h2, packet(1111, kAck, forged)) == Verdict::accepted);    // a keepalive's
    CHECK(verdict(m.h2, packet(1111, kAck, forged - 1)) == Verdict::dropped); // before it

    // a genuine new connection of the bucket, its sequence numbers wrapping past 2^32
    CHECK(verdict(m.h2, packet(2222, kSyn, 0xFFFF'FFF0u)) == Verdict::accepted);
    CHECK(verdict(m.h2, packet(2222, kAck, 0xFFFF'FFF1u)) == Verdict::accepted);
    CHECK(verdict(m.h2, packet(2222, kAck | 0x08, 0x10)) == Verdict::accepted);
    // a retransmitted or repeated SYN with another number opens the tuple anew
    CHECK(verdict(m.h2, packet(2222, kSyn, 7)) == Verdict::accepted);
    CHECK(conn_of(m.h2, tcp(client, 2222, kSyn))->syn_seq == 7);
    CHECK(verdict(m.h2, packet(2222, kAck, 8)) == Verdict::accepted);
    CHECK(verdict(m.h2, packet(2222, kAck, 0xFFFF'FFF0u)) == Verdict::dropped);

    // a record made mid-stream (ADOPT) has no SYN to continue: any sequence number is its
    m.set(1, 2 | NLB_BKT_MINE | NLB_BKT_ADOPT);
    CHECK(verdict(m.h2, packet(3333, kAck, 0xABCD'0000)) == Verdict::accepted);
    auto adopted = conn_of(m.h2, tcp(client, 3333, kAck));
    REQUIRE(adopted);
    CHECK(adopted->flags == 0);
    m.set(1, 2 | NLB_BKT_MINE | NLB_BKT_DIRTY_OTHER);
    CHECK(verdict(m.h2, packet(3333, kAck, 0x0BCD'0000)) == Verdict::accepted);
}

// The window above is safe only because the socket program moves an established connection
// to nlb_est*. Where it does not run (no cgroup v2), or the established table was full, the
// opening record is the connection's only one for its whole life, past its first 128 KB.
TEST_CASE("a connection only its opening record tracks is served past its SYN's first window") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    Move m;
    std::mt19937 rng(700 + family);
    IpAddress client = random_address(rng, family);
    m.bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);
    const std::uint32_t isn = 0x1000'0000, far = isn + 1 + 200'000;
    auto packet = [&](std::uint16_t port, std::uint8_t flags, std::uint32_t seq) {
        PacketSpec p = tcp(client, port, flags);
        p.seq = seq;
        return build(p);
    };
    auto accepted_by = [&](const Bytes& frame) {
        return int(verdict(m.h1, frame) == Verdict::accepted) +
               int(verdict(m.h2, frame) == Verdict::accepted);
    };

    SECTION("no socket program: opened in a dirty bucket, served past 128 KB, by one host") {
        m.moved_dirty();
        REQUIRE(verdict(m.h2, packet(2222, kSyn, isn)) == Verdict::accepted);
        CHECK(accepted_by(packet(2222, kAck, isn + 1)) == 1);
        CHECK(accepted_by(packet(2222, kAck, far)) == 1);
        CHECK(verdict(m.h2, packet(2222, kAck, far)) == Verdict::accepted);
        CHECK(accepted_by(packet(2222, kAck, isn)) == 1); // a keepalive
        // a SYN forged on its tuple changes the number, and nothing it judges by
        CHECK(verdict(m.h2, packet(2222, kSyn, 0x7000'0000)) == Verdict::accepted);
        CHECK(accepted_by(packet(2222, kAck, far + 1000)) == 1);
    }
    SECTION("no socket program: opened while owned, then the bucket moves") {
        m.set(1 | NLB_BKT_MINE, 1);
        REQUIRE(verdict(m.h1, packet(3333, kSyn, isn)) == Verdict::accepted);
        m.moved_dirty();
        CHECK(verdict(m.h1, packet(3333, kAck, far)) == Verdict::accepted);
        CHECK(verdict(m.h2, packet(3333, kAck, far)) == Verdict::dropped);
    }
    SECTION("socket program, established table full: the proven record holds no window") {
        m.socket_program(true);
        m.set(1 | NLB_BKT_MINE, 1);
        REQUIRE(verdict(m.h1, packet(4444, kSyn, isn)) == Verdict::accepted);
        REQUIRE(conn_of(m.h1, tcp(client, 4444, kSyn))->flags == NLB_CONN_SYN_SEQ);
        // the table full: nlb_seed (the socket program's recording) keeps the opening record
        DataplaneFixture& h1 = m.h1;
        int full = 0;
        for (std::uint32_t i = 0; i < 2 * DataplaneFixture::kTestTableEntries && !full; ++i)
            full = h1.seed(tuple_of(tcp(random_address(rng, family), 9000, kAck))) == XDP_DROP;
        REQUIRE(full);
        CHECK(h1.seed(tuple_of(tcp(client, 4444, kSyn))) == XDP_DROP);
        auto c = conn_of(h1, tcp(client, 4444, kSyn));
        REQUIRE(c);
        CHECK(c->flags == 0);
        m.moved_dirty();
        CHECK(verdict(m.h1, packet(4444, kAck, far)) == Verdict::accepted);
        CHECK(verdict(m.h1, packet(4444, kAck, isn)) == Verdict::accepted);
        CHECK(verdict(m.h2, packet(4444, kAck, far)) == Verdict::dropped);
    }
}

TEST_CASE("FIN and RST change no record: an off-path RST or a half-close keeps the connection") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    Move m;
    std::mt19937 rng(50 + family);
    IpAddress client = random_address(rng, family);
    m.bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);
    m.set(1 | NLB_BKT_MINE, 1);

    for (std::uint8_t closing : {std::uint8_t(kFin | kAck), kRst, std::uint8_t(kRst | kAck)}) {
        CAPTURE(int(closing));
        PacketSpec opening = tcp(client, static_cast<std::uint16_t>(5000 + closing), kSyn);
        PacketSpec established = tcp(client, static_cast<std::uint16_t>(6000 + closing), kSyn);
        REQUIRE(verdict(m.h1, build(opening)) == Verdict::accepted);
        REQUIRE(verdict(m.h1, build(established)) == Verdict::accepted);
        REQUIRE(m.h1.seed(tuple_of(established)) == XDP_PASS);
        CHECK(verdict(m.h1, build(with_flags(opening, closing))) == Verdict::accepted);
        CHECK(verdict(m.h1, build(with_flags(established, closing))) == Verdict::accepted);
        CHECK(conn_of(m.h1, opening));
        CHECK(est_of(m.h1, established)->closed_ns == 0);
    }
    // after the move both kinds still reach their host, whatever FIN or RST came by
    m.moved_dirty();
    for (std::uint16_t port : {5000 + kRst, 6000 + kRst}) {
        PacketSpec c = tcp(client, port, kAck);
        CHECK(verdict(m.h1, build(c)) == Verdict::accepted);
        CHECK(verdict(m.h2, build(c)) == Verdict::dropped);
    }
}

TEST_CASE("a SYN flood evicts only unproven records: established connections keep their host") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    constexpr std::uint32_t kOpening = 1024;
    DataplaneTables tables{{kVip4, kVip6}, {RuleMatch{}}};
    DataplaneFixture h1(kOpening);
    h1.configure(tables, 1);
    h1.own_all(0, 1);
    std::mt19937 rng(90 + family);
    IpAddress client = random_address(rng, family);
    const std::uint16_t bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);
    PacketSpec proven = tcp(client, 1000, kSyn);
    PacketSpec unproven = tcp(client, 1001, kSyn);
    REQUIRE(verdict(h1, build(proven)) == Verdict::accepted);
    REQUIRE(verdict(h1, build(unproven)) == Verdict::accepted);
    REQUIRE(h1.seed(tuple_of(proven)) == XDP_PASS); // the stack established it
    // 8 × the opening table of spoofed SYNs, all in owned buckets
    for (std::uint32_t i = 0; i < 8 * kOpening; ++i) {
        PacketSpec syn = tcp(random_address(rng, family), static_cast<std::uint16_t>(i), kSyn);
        CHECK(verdict(h1, build(syn)) == Verdict::accepted);
    }
    CHECK_FALSE(conn_of(h1, unproven)); // evicted: the flood's own kind
    REQUIRE(est_of(h1, proven));
    // the bucket moves away: the established connection is still this host's
    h1.set_buckets(0, [&](std::uint16_t b) {
        return b == bucket ? std::uint16_t(2 | NLB_BKT_TRACKED_HERE)
                           : std::uint16_t(1 | NLB_BKT_MINE);
    });
    CHECK(verdict(h1, build(with_flags(proven, kAck))) == Verdict::accepted);
    CHECK(verdict(h1, build(with_flags(unproven, kAck))) == Verdict::dropped);
    CHECK(stats(h1, 0).established == 1);
}

TEST_CASE("an established table that is full leaves a connection its opening record") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    constexpr std::uint32_t kEstablished = 64;
    DataplaneTables tables{{kVip4, kVip6}, {RuleMatch{}}};
    DataplaneFixture h1(DataplaneFixture::kTestTableEntries, kEstablished);
    h1.configure(tables, 1);
    h1.own_all(0, 1);
    std::mt19937 rng(500 + family);
    int full = 0;
    for (std::uint32_t i = 0; i < 2 * kEstablished && !full; ++i)
        full = h1.seed(tuple_of(tcp(random_address(rng, family), 9000, kAck))) == XDP_DROP;
    REQUIRE(full);
    // a new connection: its SYN recorded, then its stack establishes it, the table full
    IpAddress client = random_address(rng, family);
    const PacketSpec syn = tcp(client, 1000, kSyn);
    REQUIRE(verdict(h1, build(syn)) == Verdict::accepted);
    CHECK(h1.seed(tuple_of(syn)) == XDP_DROP);
    CHECK(conn_of(h1, syn));
    CHECK_FALSE(est_of(h1, syn));
    CHECK(stats(h1, 0).established_full >= 2);
    // so it stays with this host when its bucket moves
    const std::uint16_t bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);
    h1.set_buckets(0, [&](std::uint16_t b) {
        return b == bucket ? std::uint16_t(2 | NLB_BKT_TRACKED_HERE)
                           : std::uint16_t(1 | NLB_BKT_MINE);
    });
    CHECK(verdict(h1, build(with_flags(syn, kAck))) == Verdict::accepted);
}

TEST_CASE("nlb_seed records connections of this cluster's rules only") {
    DataplaneTables tables{{kVip4, kVip6}, {RuleMatch{}}};
    DataplaneFixture h1;
    h1.configure(tables, 1);
    h1.own_all(0, 1);
    std::mt19937 rng(7);
    PacketSpec to_vip = tcp(random_address(rng, NLB_FAMILY_V4), 4000, kAck);
    PacketSpec elsewhere = to_vip;
    elsewhere.dst = ip("10.0.0.1"); // the dedicated IP, say
    CHECK(h1.seed(tuple_of(to_vip)) == XDP_PASS);
    CHECK(h1.seed(tuple_of(elsewhere)) == XDP_PASS);
    CHECK(est_of(h1, to_vip));
    CHECK_FALSE(est_of(h1, elsewhere));
    nlb_tuple bad = tuple_of(to_vip);
    bad.family = 9;
    CHECK(h1.seed(bad) == XDP_ABORTED);
}

TEST_CASE("ADOPT records mid-stream connections opened before this host owned the bucket") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    Move m;
    std::mt19937 rng(70 + family);
    IpAddress client = random_address(rng, family);
    m.bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);

    // without ADOPT, an owned bucket records nothing mid-stream
    m.set(1 | NLB_BKT_MINE, 1);
    PacketSpec plain = tcp(client, 7000, kAck);
    CHECK(verdict(m.h1, build(plain)) == Verdict::accepted);
    CHECK_FALSE(conn_of(m.h1, plain));

    m.set(1 | NLB_BKT_MINE | NLB_BKT_ADOPT, 1);
    PacketSpec adopted = tcp(client, 7001, kAck);
    CHECK(verdict(m.h1, build(adopted)) == Verdict::accepted);
    auto e = conn_of(m.h1, adopted);
    REQUIRE(e);
    CHECK(e->bucket == m.bucket);
    CHECK(e->closed_ns == 0);
    CHECK(stats(m.h1, 0).tracked == 1);
    CHECK(verdict(m.h1, build(adopted)) == Verdict::accepted);
    CHECK(stats(m.h1, 0).tracked == 1); // recorded once
    // a closing packet is not adopted
    PacketSpec closing = tcp(client, 7002, kFin | kAck);
    CHECK(verdict(m.h1, build(closing)) == Verdict::accepted);
    CHECK_FALSE(conn_of(m.h1, closing));
    // the watchdog: a stopped dataplane adopts nothing
    m.h1.set_alive(false);
    PacketSpec dead = tcp(client, 7003, kAck);
    CHECK(verdict(m.h1, build(dead)) == Verdict::dropped);
    CHECK_FALSE(conn_of(m.h1, dead));
    m.h1.set_alive(true);

    // the bucket moves on: the adopted connection stays with this host
    m.moved_dirty();
    CHECK(verdict(m.h1, build(adopted)) == Verdict::accepted);
    CHECK(verdict(m.h2, build(adopted)) == Verdict::dropped);
    CHECK(verdict(m.h1, build(plain)) == Verdict::dropped);
}

// The release protocol (agent.cpp apply()): the old owner installs its new maps with the
// bucket still tracked here, scans, then installs the final maps (tracked here if the scan found
// a connection) and tells the new owner, which takes the bucket dirty or clean accordingly. A
// connection whose SYN arrives at any instant of that sequence is served by one host only.
TEST_CASE("a connection opened at any instant of a release is served by exactly one host") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    enum Instant { before_release, before_scan, after_hand_over };
    auto instant = GENERATE(before_release, before_scan, after_hand_over);
    CAPTURE(int(family), int(instant));
    Move m;
    std::mt19937 rng(family);
    IpAddress client = random_address(rng, family);
    m.bucket = bucket_of(client, 0, NLB_AFFINITY_SINGLE);
    m.set(1 | NLB_BKT_MINE, 1);
    PacketSpec syn = tcp(client, 4444, kSyn);
    int syn_accepted = 0;
    auto send_syn = [&] {
        syn_accepted += verdict(m.h1, build(syn)) == Verdict::accepted;
        syn_accepted += verdict(m.h2, build(syn)) == Verdict::accepted;
    };

    if (instant == before_release)
        send_syn();
    m.set(2 | NLB_BKT_TRACKED_HERE, 1); // released, still tracked here; not yet taken
    if (instant == before_scan)
        send_syn(); // nobody takes it: the client sends it again
    const ConnScan scan = scan_by_copy(m.h1.maps(), monotonic_ns(CLOCK_MONOTONIC), true);
    const bool dirty = scan.live_buckets[0].test(m.bucket);
    CHECK(dirty == (instant == before_release));
    if (dirty)
        m.moved_dirty();
    else
        m.clean();
    if (syn_accepted == 0)
        send_syn(); // the retransmission, after the hand-over
    CHECK(syn_accepted == 1);

    // every later packet of the connection goes to one host, the one that took its SYN
    for (std::uint8_t flags : {kAck, std::uint8_t(kAck | 0x08), std::uint8_t(kAck | kFin)}) {
        const bool at1 = verdict(m.h1, build(with_flags(syn, flags))) == Verdict::accepted;
        const bool at2 = verdict(m.h2, build(with_flags(syn, flags))) == Verdict::accepted;
        CHECK(at1 != at2);
        CHECK(at1 == (instant == before_release));
    }
}

} // namespace test_tracking
