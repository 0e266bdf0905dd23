// The connection scan run in the kernel (bpf/conn_scan.bpf.c through ConnScanner) against
// tables filled with every kind of record: it finds what the records say (an oracle computed
// here) and what the copying scan finds, deletes exactly the records that are over, and walks
// a table of more than a million records, which the kernel hands out in several reads. Where
// the kernel refuses map iterators to root by policy, the same checks hold the fallback.
#include <bpf/bpf.h>

#include <map>
#include <random>
#include <set>

#include <catch2/catch.hpp>

#include "conn_scanner.hpp"
#include "dataplane_fixture.hpp"
#include "table_scan.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_conn_scan {

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000ULL;
constexpr std::uint64_t kNow = 1000 * kSecond; // the scan's clock; records are stamped from it

enum class Kind { opening, opening_old, established, closing, closed };

struct Record {
    Kind kind;
    nlb_conn conn{};
};

// The tables' content, per family, as written; the oracle reads it.
struct Content {
    std::map<std::uint32_t, Record> v4; // by index: key i
    std::map<std::uint32_t, Record> v6;
};

nlb_conn_key4 key4(std::uint32_t i) {
    return {
        .saddr = 0x0a000000u + i, .daddr = 0x0a0000feu, .sport = std::uint16_t(i), .dport = 443};
}

nlb_conn_key6 key6(std::uint32_t i) {
    nlb_conn_key6 k{};
    k.saddr[0] = 0x20010db8u;
    k.saddr[3] = i;
    k.daddr[0] = 0x20010db8u;
    k.daddr[3] = 0xfe;
    k.sport = std::uint16_t(i);
    k.dport = 443;
    return k;
}

bool opening_table(Kind k) {
    return k == Kind::opening || k == Kind::opening_old;
}

Record make(Kind kind, std::mt19937& rng) {
    Record r{kind};
    r.conn.rule = std::uint8_t(rng() % (NLB_RULE_SLOTS + 2)); // two slots past the last: counted
    r.conn.bucket = std::uint16_t(rng() % NLB_BUCKETS);
    switch (kind) {
    case Kind::opening:
        r.conn.opened_ns = kNow - 5 * kSecond;
        break;
    case Kind::opening_old:
        r.conn.opened_ns = kNow - NLB_OPENING_MAX_AGE_NS - kSecond;
        break;
    case Kind::established:
        r.conn.opened_ns = kNow - 200 * kSecond;
        break;
    case Kind::closing:
        r.conn.opened_ns = kNow - 200 * kSecond;
        r.conn.closed_ns = kNow - kSecond;
        break;
    case Kind::closed:
        r.conn.opened_ns = kNow - 200 * kSecond;
        r.conn.closed_ns = kNow - NLB_CONN_CLOSE_GRACE_NS - kSecond;
        break;
    }
    return r;
}

template <typename Key> void put(int fd, const Key& k, const nlb_conn& c) {
    REQUIRE(bpf_map_update_elem(fd, &k, &c, BPF_NOEXIST) == 0);
}

// `per_kind` records of each kind in each family; several buffers' worth of keys to delete.
Content fill(DataplaneFixture& dp, std::uint32_t per_kind, std::uint32_t seed) {
    std::mt19937 rng(seed);
    Content c;
    const auto& fds = dp.maps().fds();
    std::uint32_t i = 0;
    for (Kind kind :
         {Kind::opening, Kind::opening_old, Kind::established, Kind::closing, Kind::closed})
        for (std::uint32_t n = 0; n < per_kind; ++n, ++i) {
            const Record r4 = make(kind, rng), r6 = make(kind, rng);
            put(opening_table(kind) ? fds.conns4 : fds.est4, key4(i), r4.conn);
            put(opening_table(kind) ? fds.conns6 : fds.est6, key6(i), r6.conn);
            c.v4[i] = r4;
            c.v6[i] = r6;
        }
    return c;
}

bool over(Kind k, bool age_opening) {
    return k == Kind::closed || (k == Kind::opening_old && age_opening);
}

ConnScan oracle(const Content& content, bool age_opening) {
    ConnScan s;
    for (const auto* family : {&content.v4, &content.v6})
        for (const auto& [i, r] : *family) {
            switch (r.kind) {
            case Kind::opening_old:
                if (age_opening) {
                    s.opening_expired++;
                    continue;
                }
                [[fallthrough]];
            case Kind::opening:
                s.opening++;
                break;
            case Kind::established:
                s.established++;
                break;
            case Kind::closing:
                s.closing++;
                continue;
            case Kind::closed:
                s.expired++;
                continue;
            }
            s.live++;
            if (r.conn.rule < NLB_RULE_SLOTS) {
                s.live_by_rule[r.conn.rule]++;
                s.live_buckets[r.conn.rule].set(r.conn.bucket);
            }
        }
    return s;
}

void check_same(const ConnScan& got, const ConnScan& want) {
    CHECK(got.live == want.live);
    CHECK(got.opening == want.opening);
    CHECK(got.established == want.established);
    CHECK(got.closing == want.closing);
    CHECK(got.expired == want.expired);
    CHECK(got.opening_expired == want.opening_expired);
    CHECK(got.live_by_rule == want.live_by_rule);
    for (std::size_t r = 0; r < NLB_RULE_SLOTS; ++r) {
        CAPTURE(r);
        CHECK(got.live_buckets[r] == want.live_buckets[r]);
    }
}

// Which records are still in the tables (by index), per family.
template <typename Key>
std::set<std::uint32_t> remaining(Key (*key)(std::uint32_t), int opening_fd, int est_fd,
                                  const std::map<std::uint32_t, Record>& family) {
    std::set<std::uint32_t> out;
    for (const auto& [i, r] : family) {
        nlb_conn c{};
        const Key k = key(i);
        if (bpf_map_lookup_elem(opening_table(r.kind) ? opening_fd : est_fd, &k, &c) == 0)
            out.insert(i);
    }
    return out;
}

std::set<std::uint32_t> expected_remaining(const std::map<std::uint32_t, Record>& family,
                                           bool age_opening) {
    std::set<std::uint32_t> out;
    for (const auto& [i, r] : family)
        if (!over(r.kind, age_opening))
            out.insert(i);
    return out;
}

// The scanner runs in the kernel, or this kernel refuses map iterators to root by policy
// (kernel_refuses_iterators): then the scan is the copying fallback, and the same checks hold
// for it. Any other reason to copy fails.
bool expect_in_kernel(const ConnScanner& scanner) {
    if (scanner.in_kernel())
        return true;
    INFO(scanner.error());
    REQUIRE(kernel_refuses_iterators());
    REQUIRE(scanner.error().find("refuses map iterator programs") != std::string::npos);
    WARN("this kernel refuses map iterators to root: checking the copying fallback instead");
    return false;
}

} // namespace

// A walk of full tables takes a few hundred ms: a tuple judged over may be opened anew by
// another connection (a client behind NAT reuses ports) before the deletes come.
TEST_CASE("the copying scan deletes a record only if it is still the one it judged") {
    LIBBPF_OPTS(bpf_map_create_opts, o);
    const int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "nlb_test_scan", sizeof(nlb_conn_key4),
                                  sizeof(nlb_conn), 16, &o);
    REQUIRE(fd >= 0);
    for (std::uint32_t i = 0; i < 3; ++i) {
        nlb_conn c{};
        c.opened_ns = kNow - 100 * kSecond;
        c.closed_ns = kNow - 50 * kSecond; // long over
        const auto k = key4(i);
        REQUIRE(bpf_map_update_elem(fd, &k, &c, BPF_ANY) == 0);
    }
    std::size_t visited = 0;
    const bool complete =
        scan_table<nlb_conn_key4>(fd, [&](const nlb_conn_key4& k, const nlb_conn&) {
            ++visited;
            if (k.saddr == key4(1).saddr) { // reused meanwhile: a live connection's record
                nlb_conn fresh{};
                fresh.opened_ns = kNow;
                REQUIRE(bpf_map_update_elem(fd, &k, &fresh, BPF_ANY) == 0);
            }
            return true; // judged over when read
        });
    CHECK(complete);
    CHECK(visited == 3);
    nlb_conn left{};
    for (std::uint32_t i : {0u, 2u}) {
        const auto k = key4(i);
        CHECK(bpf_map_lookup_elem(fd, &k, &left) != 0);
    }
    const auto k1 = key4(1);
    REQUIRE(bpf_map_lookup_elem(fd, &k1, &left) == 0);
    CHECK(left.opened_ns == kNow);
    close(fd);
}

// A read the kernel refuses midway leaves a scan a part of the records; a release judged by
// it would give busy buckets up as clean, so the scan says so (ConnScan::complete), and the
// agent then holds every bucket busy (Agent::scan_connections_now).
TEST_CASE("a table the kernel will not read is said to be unread, not taken for empty") {
    LIBBPF_OPTS(bpf_map_create_opts, o);
    // a queue has no batch reads: the first read fails, as a later one may under pressure
    const int fd = bpf_map_create(BPF_MAP_TYPE_QUEUE, "nlb_test_queue", 0, sizeof(nlb_conn), 4, &o);
    REQUIRE(fd >= 0);
    std::size_t visited = 0;
    errno = 0;
    CHECK_FALSE(scan_table<nlb_conn_key4>(fd, [&](const nlb_conn_key4&, const nlb_conn&) {
        ++visited;
        return false;
    }));
    CHECK(errno != 0);
    CHECK(visited == 0);
    // A host's scan whose established table will not be read: incomplete, and says why.
    DataplaneFixture h;
    DataplaneMapFds fds = h.maps().fds();
    fds.est4 = fd;
    const DataplaneMaps broken(fds);
    const ConnScan scan = scan_by_copy(broken, kNow, false, ScanFamilies{true, false});
    CHECK_FALSE(scan.complete);
    CHECK(scan.error != 0);
    CHECK(scan_by_copy(h.maps(), kNow, false, ScanFamilies{true, false}).complete);
    close(fd);
}

TEST_CASE("the in-kernel scan counts, marks and ends what the records say") {
    const bool age_opening = GENERATE(true, false);
    CAPTURE(age_opening);
    DataplaneFixture kernel_dp, copy_dp;
    // 3,000 records of each kind in each family: the keys to delete fill several of the
    // iterator's 32 KB reads.
    const Content content = fill(kernel_dp, 3000, 7);
    fill(copy_dp, 3000, 7);

    ConnScanner scanner(kernel_dp.maps());
    INFO(scanner.error());
    const bool in_kernel = expect_in_kernel(scanner);
    const ConnScan got = scanner.scan(kNow, age_opening);
    CHECK(scanner.in_kernel() == in_kernel); // it did not fall back to copying
    const ConnScan want = oracle(content, age_opening);
    check_same(got, want);
    check_same(scan_by_copy(copy_dp.maps(), kNow, age_opening), want);

    const auto& fds = kernel_dp.maps().fds();
    CHECK(remaining(key4, fds.conns4, fds.est4, content.v4) ==
          expected_remaining(content.v4, age_opening));
    CHECK(remaining(key6, fds.conns6, fds.est6, content.v6) ==
          expected_remaining(content.v6, age_opening));

    // A second scan finds the same live records and nothing more to end.
    const ConnScan again = scanner.scan(kNow, age_opening);
    CHECK(again.live == want.live);
    CHECK(again.expired == 0);
    CHECK(again.opening_expired == 0);
    CHECK(again.live_buckets == want.live_buckets);
}

TEST_CASE("the in-kernel scan of empty tables finds nothing") {
    DataplaneFixture dp;
    ConnScanner scanner(dp.maps());
    const bool in_kernel = expect_in_kernel(scanner);
    const ConnScan s = scanner.scan(kNow, true);
    CHECK(scanner.in_kernel() == in_kernel);
    CHECK(s.live == 0);
    CHECK(s.opening + s.established + s.closing + s.expired + s.opening_expired == 0);
    for (const auto& rule : s.live_buckets)
        CHECK(rule.none());
}

// The kernel hands out at most a million records per read with nothing to show for them
// (EAGAIN); the walk must go on to the end, in the kernel.
TEST_CASE("the in-kernel scan walks a table of more than a million records") {
    constexpr std::uint32_t kRecords = 1'050'000;
    DataplaneFixture dp(1'200'000);
    const int fd = dp.maps().fds().conns4;
    std::vector<nlb_conn_key4> keys(kRecords);
    std::vector<nlb_conn> values(kRecords);
    for (std::uint32_t i = 0; i < kRecords; ++i) {
        keys[i] = key4(i);
        values[i].opened_ns = kNow - kSecond;
        values[i].rule = 0;
        values[i].bucket = std::uint16_t(i % NLB_BUCKETS);
    }
    std::uint32_t count = kRecords;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    REQUIRE(bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts) == 0);
    REQUIRE(count == kRecords);

    ConnScanner scanner(dp.maps());
    const bool in_kernel = expect_in_kernel(scanner);
    const ConnScan s = scanner.scan(kNow, true);
    CHECK(scanner.in_kernel() == in_kernel);
    CHECK(s.opening == kRecords);
    CHECK(s.live_by_rule[0] == kRecords);
    CHECK(s.live_buckets[0].all());
}

} // namespace test_conn_scan
