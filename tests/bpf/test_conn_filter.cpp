// The connection filter against the real program: the dataplane and the agent put a key's
// bits in the same place; a valid filter is what decides whether a packet in a moved bucket
// looks the tables up (a record written behind the dataplane's back stays hidden until the
// next rebuild, which finds it); a rebuild forgets keys the tables no longer hold; records
// the socket program's seeding makes are found. The other tests of the dataplane run with a
// valid filter too (DataplaneFixture::configure), so every tracking case checks that it never
// hides a recorded connection.
#include <bpf/bpf.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"
#include "conn_scanner.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_conn_filter {

namespace {

const IpAddress kVip4 = ip("10.0.0.100");
const IpAddress kVip6 = ip("2001:db8::100");

// A scan's clock: with opening records not aged and no socket closed it ages nothing.
constexpr std::uint64_t kScanNow = 0;

PacketSpec tcp(const IpAddress& client, std::uint16_t port, std::uint8_t flags) {
    PacketSpec s;
    s.src = client;
    s.dst = client.family == NLB_FAMILY_V4 ? kVip4 : kVip6;
    s.sport = port;
    s.dport = 443;
    s.tcp_flags = flags;
    return s;
}

nlb_conn_key4 key4(const PacketSpec& s) {
    return {s.src.words[0], s.dst.words[0], htons(s.sport), htons(s.dport)};
}

nlb_conn_key6 key6(const PacketSpec& s) {
    nlb_conn_key6 k{};
    std::memcpy(k.saddr, s.src.words.data(), 16);
    std::memcpy(k.daddr, s.dst.words.data(), 16);
    k.sport = htons(s.sport);
    k.dport = htons(s.dport);
    return k;
}

bool may_hold(DataplaneFixture& dp, const PacketSpec& s) {
    return s.src.family == NLB_FAMILY_V4 ? dp.conn_filter().may_hold(key4(s))
                                         : dp.conn_filter().may_hold(key6(s));
}

// A host whose rule slot 0 buckets all belong to host 2 but may hold connections of its own
// (a bucket that moved away): every TCP packet that is no SYN consults the filter, then the
// tables only if the filter says they may hold it.
struct MovedAway {
    DataplaneTables tables{{kVip4, kVip6}, {RuleMatch{}}};
    DataplaneFixture dp;

    MovedAway() {
        dp.configure(tables, 1);
        dp.set_buckets(0, [](std::uint16_t) { return std::uint16_t{2 | NLB_BKT_TRACKED_HERE}; });
    }
    // `s`'s record written into its table as user space writes one, behind the dataplane's
    // back: its key is not added to the filter. 0, or the update's error.
    int write_record(std::uint8_t family, const PacketSpec& s) {
        nlb_conn c{};
        c.bucket =
            nlb_flow_bucket(family, s.src.words.data(), 0, NLB_AFFINITY_SINGLE, tables.flow_seed());
        return with_conn_key(
            dp, s,
            [&](int fd, const void* k) { return bpf_map_update_elem(fd, k, &c, BPF_NOEXIST); },
            true);
    }
};

} // namespace

TEST_CASE("the dataplane and the agent put a key's bits in the same place") {
    DataplaneTables tables({kVip4, kVip6}, {RuleMatch{}});
    DataplaneFixture dp;
    dp.configure(tables, 1);
    dp.own_all(0, 1);
    REQUIRE(dp.conn_filter().valid());
    CHECK(dp.conn_filter().fill() == 0.0);
    std::mt19937 rng(7);
    std::vector<PacketSpec> recorded, absent;
    for (int i = 0; i < 2000; ++i) {
        const std::uint8_t family = i % 2 ? NLB_FAMILY_V6 : NLB_FAMILY_V4;
        PacketSpec s = tcp(random_address(rng, family), 1024 + rng() % 60000, kSyn);
        (i < 1000 ? recorded : absent).push_back(s);
    }
    for (const PacketSpec& s : recorded)
        REQUIRE(verdict(dp, build(s)) == Verdict::accepted); // a SYN in an owned bucket: recorded
    CHECK(dp.maps().read_stats(0).tracked == recorded.size());
    for (const PacketSpec& s : recorded) {
        CAPTURE(s.src.family, s.sport);
        CHECK(may_hold(dp, s));
    }
    // 1,000 keys in a filter sized for a million: almost every other key is surely absent
    std::size_t false_present = 0;
    for (const PacketSpec& s : absent)
        false_present += may_hold(dp, s);
    CHECK(false_present < 10);
    CHECK(dp.conn_filter().fill() > 0.0);
    CHECK(dp.conn_filter().fill() < 0.01);
}

TEST_CASE("a record written behind the dataplane's back is hidden until the filter is rebuilt") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    MovedAway h;
    std::mt19937 rng(family);
    PacketSpec s = tcp(random_address(rng, family), 4242, kAck);
    REQUIRE(h.write_record(family, s) == 0);
    // The tables hold it, the filter does not: the dataplane does not look.
    CHECK_FALSE(may_hold(h.dp, s));
    CHECK(verdict(h.dp, build(s)) == Verdict::dropped);
    // The rebuild reads the tables: found, and served.
    const std::uint64_t before = h.dp.conn_filter().rebuilds();
    const FilterRebuild r = h.dp.conn_filter().rebuild(h.dp.maps());
    CHECK(r.keys == 1);
    CHECK(h.dp.conn_filter().rebuilds() == before + 1);
    CHECK(may_hold(h.dp, s));
    CHECK(verdict(h.dp, build(s)) == Verdict::accepted);
    // Another tuple in the same buckets, recorded nowhere: dropped, as before the filter.
    CHECK(verdict(h.dp, build(tcp(s.src, 4243, kAck))) == Verdict::dropped);
}

TEST_CASE("a record written from user space passes once its key is recorded in the filter") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    MovedAway h;
    std::mt19937 rng(family + 40);
    PacketSpec s = tcp(random_address(rng, family), 4343, kAck);
    REQUIRE(h.write_record(family, s) == 0);
    CHECK(verdict(h.dp, build(s)) == Verdict::dropped);
    if (family == NLB_FAMILY_V4)
        h.dp.conn_filter().record(key4(s));
    else
        h.dp.conn_filter().record(key6(s));
    CHECK(may_hold(h.dp, s));
    CHECK(verdict(h.dp, build(s)) == Verdict::accepted);
}

TEST_CASE("a rebuild forgets the keys the tables no longer hold") {
    DataplaneTables tables({kVip4, kVip6}, {RuleMatch{}});
    DataplaneFixture dp;
    dp.configure(tables, 1);
    dp.own_all(0, 1);
    std::mt19937 rng(11);
    std::vector<PacketSpec> syns;
    for (int i = 0; i < 5000; ++i)
        syns.push_back(tcp(random_address(rng, NLB_FAMILY_V4), 1024 + rng() % 60000, kSyn));
    for (const PacketSpec& s : syns)
        REQUIRE(verdict(dp, build(s)) == Verdict::accepted);
    const double full = dp.conn_filter().fill();
    CHECK(full > 0.001);
    // The connections ended: their records gone, their bits still set until a rebuild.
    for (const PacketSpec& s : syns)
        with_conn_key(dp, s, [](int fd, const void* k) { return bpf_map_delete_elem(fd, k); });
    CHECK(dp.conn_filter().fill() == full);
    // One connection still open: the rebuild keeps exactly it.
    PacketSpec open = tcp(random_address(rng, NLB_FAMILY_V4), 80, kSyn);
    REQUIRE(verdict(dp, build(open)) == Verdict::accepted);
    const FilterRebuild r = dp.conn_filter().rebuild(dp.maps());
    CHECK(r.keys == 1);
    CHECK(dp.conn_filter().fill() < full / 1000);
    CHECK(may_hold(dp, open));
    std::size_t still_present = 0;
    for (const PacketSpec& s : syns)
        still_present += may_hold(dp, s);
    CHECK(still_present < 10);
}

TEST_CASE("connections the agent seeds from the socket table pass the filter") {
    auto family = GENERATE(as<std::uint8_t>{}, NLB_FAMILY_V4, NLB_FAMILY_V6);
    CAPTURE(int(family));
    MovedAway h;
    std::mt19937 rng(family + 20);
    PacketSpec s = tcp(random_address(rng, family), 5555, kAck);
    CHECK(verdict(h.dp, build(s)) == Verdict::dropped);
    REQUIRE(h.dp.seed(tuple_of(s)) == XDP_PASS); // nlb_seed runs the socket program's nlb_establish
    CHECK(may_hold(h.dp, s));
    CHECK(verdict(h.dp, build(s)) == Verdict::accepted);
}

TEST_CASE("keys recorded while the filter is rebuilt over and over are never hidden") {
    // The dataplane records (XDP SYNs, and nlb_seed's established records, the socket
    // program's code) on this thread while another rebuilds and switches without pause:
    // after each record, the agent's view of the active half (the dataplane's own test)
    // must hold the key, unless the table no longer does.
    DataplaneTables tables({kVip4, kVip6}, {RuleMatch{}});
    DataplaneFixture dp;
    dp.configure(tables, 1);
    dp.own_all(0, 1);
    std::atomic<bool> done{false};
    std::atomic<int> rebuilds{0};
    std::thread rebuilder([&] {
        while (!done) {
            dp.conn_filter().rebuild(dp.maps());
            ++rebuilds;
        }
    });
    std::mt19937 rng(99);
    int recorded = 0;
    std::vector<std::pair<PacketSpec, bool>> keys; // and whether seeded (established)
    auto hidden = [&](const PacketSpec& s, bool seeded) {
        if (may_hold(dp, s))
            return false;
        nlb_conn c{};
        return with_conn_key( // still recorded, yet hidden
            dp, s, [&](int fd, const void* k) { return bpf_map_lookup_elem(fd, k, &c) == 0; },
            seeded);
    };
    int hidden_fresh = 0, hidden_later = 0;
    // Until 30 rebuilds (each waits out a grace period: 10-100 ms here), or until the
    // established tables, which take a sixth of the records a family and evict nothing, are
    // about to be full (the opening ones, LRUs, evict their oldest long before: `hidden`
    // forgives a key no table holds). Where each record costs more than usual (a loaded
    // machine: 25 rebuilds took 98,304 records on 2026-12-06), the bound ends it first.
    const int records = 6 * static_cast<int>(DataplaneFixture::kTestTableEntries) - 6;
    for (int i = 0; i < records && rebuilds < 30; ++i) {
        const std::uint8_t family = i % 2 ? NLB_FAMILY_V6 : NLB_FAMILY_V4;
        PacketSpec s = tcp(random_address(rng, family), 1024 + rng() % 60000, kSyn);
        const bool seeded = i % 3 == 0;
        if (seeded) {
            REQUIRE(dp.seed(tuple_of(s)) == XDP_PASS);
        } else {
            REQUIRE(verdict(dp, build(s)) == Verdict::accepted);
        }
        ++recorded;
        hidden_fresh += hidden(s, seeded);
        // A scan would not walk a family it shows empty: never while a key of it is recorded.
        hidden_fresh += dp.conn_filter().holds_nothing(family);
        keys.emplace_back(s, seeded);
        if (keys.size() % 8192 == 0) // the older ones, through the rebuilds since
            for (const auto& [k, est] : keys)
                hidden_later += hidden(k, est);
    }
    done = true;
    rebuilder.join();
    dp.conn_filter().rebuild(dp.maps());
    for (const auto& [k, est] : keys)
        hidden_later += hidden(k, est);
    CAPTURE(recorded);
    CHECK(rebuilds >= 5);
    CHECK(hidden_fresh == 0);
    CHECK(hidden_later == 0);
    CHECK(dp.conn_filter().valid());
}

TEST_CASE("a family's tables the filter shows empty are not walked, and hold nothing") {
    DataplaneTables tables({kVip4, kVip6}, {RuleMatch{}});
    DataplaneFixture dp;
    dp.configure(tables, 1);
    dp.own_all(0, 1);
    auto scan = [&] {
        const ScanFamilies walk = families_to_walk(dp.conn_filter());
        return std::make_pair(walk, scan_by_copy(dp.maps(), kScanNow, false, walk));
    };
    auto [walk, found] = scan();
    CHECK_FALSE(walk.v4);
    CHECK_FALSE(walk.v6);
    CHECK(found.opening + found.established == 0);

    // A connection opens (IPv4): that family's tables are walked and it is found.
    std::mt19937 rng(5);
    PacketSpec syn4 = tcp(random_address(rng, NLB_FAMILY_V4), 40000, kSyn);
    REQUIRE(verdict(dp, build(syn4)) == Verdict::accepted);
    std::tie(walk, found) = scan();
    CHECK(walk.v4);
    CHECK_FALSE(walk.v6);
    CHECK(found.opening == 1);
    // One established by the stack (the socket program's code), IPv6.
    PacketSpec est6 = tcp(random_address(rng, NLB_FAMILY_V6), 40001, kAck);
    REQUIRE(dp.seed(tuple_of(est6)) == XDP_PASS);
    std::tie(walk, found) = scan();
    CHECK(walk.v4);
    CHECK(walk.v6);
    CHECK(found.opening == 1);
    CHECK(found.established == 1);

    // Both end: their bits stay until a rebuild, which finds the tables empty again.
    with_conn_key(dp, syn4, [](int fd, const void* k) { return bpf_map_delete_elem(fd, k); });
    with_conn_key(
        dp, est6, [](int fd, const void* k) { return bpf_map_delete_elem(fd, k); }, true);
    std::tie(walk, found) = scan();
    CHECK(walk.v4);
    CHECK(walk.v6);
    CHECK(found.opening + found.established == 0);
    dp.conn_filter().rebuild(dp.maps());
    std::tie(walk, found) = scan();
    CHECK_FALSE(walk.v4);
    CHECK_FALSE(walk.v6);
}

TEST_CASE("an invalid filter shows no family empty") {
    // A program loaded a moment ago, before its agent's first rebuild: its tables may hold
    // what a predecessor recorded.
    DataplaneFixture dp;
    CHECK_FALSE(dp.conn_filter().valid());
    CHECK_FALSE(dp.conn_filter().holds_nothing(NLB_FAMILY_V4));
    CHECK_FALSE(dp.conn_filter().holds_nothing(NLB_FAMILY_V6));
}

TEST_CASE("the filter's default size is the one the agent gives the default tables") {
    CHECK(ConnFilter::entries_for(NLB_CONN_TABLE_ENTRIES, NLB_EST_TABLE_ENTRIES) == 1 + 4 * 16384);
    CHECK(nlb_filter_blocks_per_half(1) == 1);
    CHECK(nlb_filter_blocks_per_half(32) == 1);
    CHECK(nlb_filter_blocks_per_half(33) == 2);
    // 16 bits an entry: a family's two default tables in 16,384 blocks of 512 bits
    CHECK(nlb_filter_blocks_per_half(2 * 262144) == 16384);
}

TEST_CASE("with a family's default tables full, under 1 % of absent keys read as present") {
    // The filter's whole worth: a false "present" costs two lookups that miss in tables far
    // larger than the caches. The shared functions, on a half of the default size, filled with
    // as many keys as the family's two tables hold.
    const std::uint32_t per_half = nlb_filter_blocks_per_half(2 * 262144);
    std::vector<nlb_filter_block> half(per_half);
    std::mt19937 rng(7);
    const std::uint32_t seed = rng();
    auto key = [&rng] {
        return nlb_conn_key4{static_cast<__be32>(rng()), htonl(0x0a000064),
                             static_cast<__be16>(rng()), htons(443)};
    };
    auto place = [&](std::uint32_t hash) -> __u64& {
        // nlb_filter_index of half 0, counted from the half's first block
        const std::uint32_t block = nlb_filter_index(hash, NLB_FAMILY_V4, 0, per_half) - 1;
        return half[block].word[nlb_filter_word(hash)];
    };
    for (std::uint32_t i = 0; i < 2 * 262144; i++) {
        const nlb_conn_key4 k = key();
        const std::uint32_t h = nlb_filter_hash4(&k, seed);
        place(h) |= nlb_filter_mask(h);
    }
    std::size_t present = 0;
    constexpr std::size_t kAsked = 200000;
    for (std::size_t i = 0; i < kAsked; i++) {
        const nlb_conn_key4 k = key();
        const std::uint32_t h = nlb_filter_hash4(&k, seed);
        present += (place(h) & nlb_filter_mask(h)) == nlb_filter_mask(h);
    }
    // about 0.5 %; 8 bits and three a key gave 3.7 %
    CHECK(present < kAsked / 100);
    CHECK(present > 0);
}

} // namespace test_conn_filter
