// The IGMP querier's pure parts: the query it sends, the strict reading of queries heard (a
// network's datagrams are hostile), and the election (RFC 2236 §3, RFC 3376 §6.6.2).
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <cstdint>
#include <vector>

#include "igmp_querier.hpp"

using namespace nlb;
using ms = std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::uint16_t internet_checksum(const std::vector<std::uint8_t>& b, std::size_t from,
                                std::size_t len) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < len; i += 2)
        sum += static_cast<std::uint32_t>(b[from + i] << 8) + (i + 1 < len ? b[from + i + 1] : 0u);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

void put_checksum(std::vector<std::uint8_t>& b, std::size_t from, std::size_t len, std::size_t at) {
    b[at] = b[at + 1] = 0;
    std::uint16_t c = internet_checksum(b, from, len);
    b[at] = static_cast<std::uint8_t>(c >> 8);
    b[at + 1] = static_cast<std::uint8_t>(c);
}

std::uint32_t addr(const char* text) {
    in_addr a{};
    inet_pton(AF_INET, text, &a);
    return a.s_addr;
}

// An IPv4 datagram carrying `igmp`, with the Router Alert option, checksums right.
std::vector<std::uint8_t> datagram(std::vector<std::uint8_t> igmp, const char* src = "10.0.0.5",
                                   const char* dst = "224.0.0.1") {
    std::vector<std::uint8_t> d{0x46, 0xc0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0};
    std::uint32_t s = addr(src), t = addr(dst);
    const auto* sp = reinterpret_cast<const std::uint8_t*>(&s);
    const auto* tp = reinterpret_cast<const std::uint8_t*>(&t);
    d.insert(d.end(), sp, sp + 4);
    d.insert(d.end(), tp, tp + 4);
    d.insert(d.end(), {0x94, 4, 0, 0});
    std::size_t total = d.size() + igmp.size();
    d[2] = static_cast<std::uint8_t>(total >> 8);
    d[3] = static_cast<std::uint8_t>(total);
    put_checksum(d, 0, 24, 10);
    d.insert(d.end(), igmp.begin(), igmp.end());
    return d;
}

std::vector<std::uint8_t> v2_query(std::uint8_t max_resp = 100) {
    std::vector<std::uint8_t> m{0x11, max_resp, 0, 0, 0, 0, 0, 0};
    put_checksum(m, 0, m.size(), 2);
    return m;
}

std::vector<std::uint8_t> v3_query() {
    auto q = igmp::general_query(seconds(125));
    return {q.begin(), q.end()};
}

} // namespace

TEST_CASE("the general query is IGMPv3's, checksummed, with the interval's codes") {
    auto q = igmp::general_query(seconds(125));
    std::vector<std::uint8_t> m(q.begin(), q.end());
    CHECK(m[0] == 0x11);
    CHECK(m[1] == 100); // 10 s max response time
    CHECK(internet_checksum(m, 0, m.size()) == 0);
    CHECK(std::vector<std::uint8_t>(m.begin() + 4, m.begin() + 8) ==
          std::vector<std::uint8_t>{0, 0, 0, 0}); // general: group 0.0.0.0
    CHECK(m[8] == igmp::kRobustness);
    CHECK(m[9] == 125);
    CHECK(m[10] == 0);
    CHECK(m[11] == 0);
    // A one-second interval: members must answer within it.
    CHECK(igmp::general_query(seconds(1))[1] == 5);
    // Our own query parses as what it is.
    auto parsed = igmp::parse_query(datagram(m));
    REQUIRE(parsed);
    CHECK(parsed->version == 3);
    CHECK(parsed->group == 0);
    CHECK(parsed->source == addr("10.0.0.5"));
}

TEST_CASE("codes above 127 are mantissa and exponent, rounded down") {
    CHECK(igmp::encode_code(0) == 0);
    CHECK(igmp::encode_code(127) == 127);
    CHECK(igmp::decode_code(igmp::encode_code(128)) == 128);
    for (std::uint32_t v : {128u, 129u, 200u, 1000u, 3600u, 31744u}) {
        std::uint32_t back = igmp::decode_code(igmp::encode_code(v));
        CHECK(back <= v);
        CHECK(back * 17 >= v * 16); // within one part in 16
    }
    CHECK(igmp::encode_code(3600) >= 0x80);
    CHECK(igmp::encode_code(1000000) == 0xff);
    CHECK(igmp::decode_code(0xff) == 31744);
}

TEST_CASE("queries of every version are read") {
    auto v2 = igmp::parse_query(datagram(v2_query()));
    REQUIRE(v2);
    CHECK(v2->version == 2);
    auto v1 = igmp::parse_query(datagram(v2_query(0)));
    REQUIRE(v1);
    CHECK(v1->version == 1);
    CHECK(v2->robustness == 0);
    CHECK(v2->interval_s == 0);
    auto v3 = igmp::parse_query(datagram(v3_query(), "10.0.0.1"));
    REQUIRE(v3);
    CHECK(v3->source == addr("10.0.0.1"));
    // An IGMPv3 query says its querier's robustness and interval (QRV, QQIC).
    CHECK(v3->robustness == 2);
    CHECK(v3->interval_s == 125);
    // A group-specific query (to the group) counts too.
    auto m = v2_query();
    m[4] = 239, m[5] = 255, m[6] = 0, m[7] = 100;
    put_checksum(m, 0, m.size(), 2);
    auto specific = igmp::parse_query(datagram(m, "10.0.0.5", "239.255.0.100"));
    REQUIRE(specific);
    CHECK(specific->group == addr("239.255.0.100"));
}

TEST_CASE("anything malformed, forged or not a query is refused") {
    const auto good = datagram(v3_query());
    REQUIRE(igmp::parse_query(good));
    // Every truncation.
    for (std::size_t n = 0; n < good.size(); ++n)
        CHECK_FALSE(igmp::parse_query(std::span(good.data(), n)));
    // Every single-bit flip: the IP header checksum and the IGMP checksum cover every byte.
    for (std::size_t byte = 0; byte < good.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            auto d = good;
            d[byte] ^= static_cast<std::uint8_t>(1 << bit);
            INFO("byte " << byte << " bit " << bit);
            CHECK_FALSE(igmp::parse_query(d));
        }
    }
    auto other = [](std::vector<std::uint8_t> m, const char* src, const char* dst) {
        return igmp::parse_query(datagram(std::move(m), src, dst));
    };
    CHECK_FALSE(other(v3_query(), "0.0.0.0", "224.0.0.1")); // a snooping switch's proxy query
    CHECK_FALSE(other(v3_query(), "127.0.0.1", "224.0.0.1"));
    CHECK_FALSE(other(v3_query(), "224.0.0.5", "224.0.0.1"));
    CHECK_FALSE(other(v3_query(), "255.255.255.255", "224.0.0.1"));
    CHECK_FALSE(other(v3_query(), "10.0.0.5", "10.0.0.1")); // unicast: no election
    // Lengths 9 to 11 are nothing (RFC 3376 §7.1).
    for (std::size_t len : {9u, 10u, 11u}) {
        std::vector<std::uint8_t> m = v3_query();
        m.resize(len);
        put_checksum(m, 0, m.size(), 2);
        CHECK_FALSE(igmp::parse_query(datagram(m)));
    }
    // A v3 query that claims more sources than it carries.
    auto m = v3_query();
    m[11] = 1;
    put_checksum(m, 0, m.size(), 2);
    CHECK_FALSE(igmp::parse_query(datagram(m)));
    m.insert(m.end(), {10, 0, 0, 9});
    put_checksum(m, 0, m.size(), 2);
    CHECK(igmp::parse_query(datagram(m)));
    // Reports are not queries.
    std::vector<std::uint8_t> report{0x16, 0, 0, 0, 239, 255, 0, 100};
    put_checksum(report, 0, report.size(), 2);
    CHECK_FALSE(igmp::parse_query(datagram(report, "10.0.0.5", "239.255.0.100")));
    // A group that is no multicast address.
    auto bad_group = v2_query();
    bad_group[4] = 10;
    put_checksum(bad_group, 0, bad_group.size(), 2);
    CHECK_FALSE(igmp::parse_query(datagram(bad_group)));
    // A fragment; an IP header length beyond the datagram; a total length beyond it.
    auto frag = good;
    frag[6] |= 0x20;
    put_checksum(frag, 0, 24, 10);
    CHECK_FALSE(igmp::parse_query(frag));
    auto long_ihl = good;
    long_ihl[0] = 0x4f;
    CHECK_FALSE(igmp::parse_query(std::span(long_ihl.data(), 40)));
    auto long_total = good;
    long_total[3] = static_cast<std::uint8_t>(long_total[3] + 4);
    put_checksum(long_total, 0, 24, 10);
    CHECK_FALSE(igmp::parse_query(long_total));
    // Trailing bytes beyond the IP total length (Ethernet padding) are not the message's.
    auto padded = datagram(v2_query());
    padded.insert(padded.end(), {0, 0, 0, 0, 0, 0});
    auto q = igmp::parse_query(padded);
    REQUIRE(q);
    CHECK(q->version == 2);
}

TEST_CASE("election: start-up queries a quarter interval apart, then one per interval") {
    QuerierElection e(ntohl(addr("10.0.0.5")), seconds(8), ms(1000));
    CHECK(e.querier());
    CHECK(e.next_deadline() == ms(1000));
    CHECK(e.on_tick(ms(1000)).send);
    CHECK(e.next_deadline() == ms(3000));
    CHECK_FALSE(e.on_tick(ms(2999)).send);
    CHECK(e.on_tick(ms(3000)).send);
    CHECK(e.next_deadline() == ms(11000));
    CHECK(e.on_tick(ms(11000)).send);
    CHECK(e.next_deadline() == ms(19000));
}

TEST_CASE("election: a lower address silences, a higher one or our own does not") {
    const std::uint32_t own = ntohl(addr("10.0.0.5"));
    QuerierElection e(own, seconds(8), ms(0));
    CHECK(e.on_tick(ms(0)).send);
    CHECK_FALSE(e.on_query(ntohl(addr("10.0.0.9")), ms(100)));
    CHECK_FALSE(e.on_query(own, ms(100)));
    CHECK(e.querier());
    CHECK_FALSE(e.other_querier());

    // Other Querier Present Interval: 2 × 8 s + half of 4 s.
    CHECK(e.other_querier_present_interval() == ms(18000));
    CHECK(e.on_query(ntohl(addr("10.0.0.1")), ms(500)));
    CHECK_FALSE(e.querier());
    CHECK(e.other_querier() == ntohl(addr("10.0.0.1")));
    CHECK(e.next_deadline() == ms(18500));
    // Heard again: silent for longer; a second lower query says nothing new.
    CHECK_FALSE(e.on_query(ntohl(addr("10.0.0.1")), ms(8500)));
    CHECK(e.next_deadline() == ms(26500));
    for (ms t{2000}; t < ms(26500); t += ms(1000)) {
        auto step = e.on_tick(t);
        CHECK_FALSE(step.send);
        CHECK_FALSE(step.resumed);
    }
    // Quiet long enough: this host queries again at once, then every interval.
    auto step = e.on_tick(ms(26500));
    CHECK(step.resumed);
    CHECK(step.send);
    CHECK(e.querier());
    CHECK_FALSE(e.other_querier());
    CHECK(e.next_deadline() == ms(34500));
}

TEST_CASE("election: a querier that queries less often than this host is waited for as it says") {
    // A router queries every 125 s (its queries say so); this host's interval is 10 s. Timed
    // by its own interval alone (2 × 10 s + 2.5 s), this host took the router for gone 22.5 s
    // after each of its queries and queried beside it until the next one: two queriers for
    // four fifths of the time, and a pair of igmp_querier events every 125 s.
    const std::uint32_t own = ntohl(addr("10.0.0.5"));
    const std::uint32_t router = ntohl(addr("10.0.0.1"));
    QuerierElection e(own, seconds(10), ms(0));
    CHECK(e.on_tick(ms(0)).send);
    CHECK(e.other_querier_present_interval() == ms(22500));
    const auto heard = igmp::parse_query(datagram(v3_query(), "10.0.0.1"));
    REQUIRE(heard);
    for (ms at : {ms(1000), ms(126000), ms(251000)}) {
        CHECK(e.on_query(router, at, heard->robustness, heard->interval_s) == (at == ms(1000)));
        // 2 × 125 s + half of this host's max response time (5 s).
        CHECK(e.other_querier_present_interval() == ms(252500));
        CHECK(e.next_deadline() == at + ms(252500));
        for (ms t = at; t < at + ms(125000); t += ms(500)) {
            const auto step = e.on_tick(t);
            CHECK_FALSE(step.send);
            CHECK_FALSE(step.resumed);
        }
    }
    // Gone for good: this host takes over once that interval passed.
    const auto step = e.on_tick(ms(251000 + 252500));
    CHECK(step.resumed);
    CHECK(step.send);

    // A querier that queries more often than this host, or says nothing (IGMPv2), does not
    // shorten this host's own wait: its death is taken over no sooner than before.
    QuerierElection f(own, seconds(10), ms(0));
    CHECK(f.on_query(router, ms(0), 1, 2));
    CHECK(f.other_querier_present_interval() == ms(22500));
    CHECK_FALSE(f.on_query(router, ms(1000)));
    CHECK(f.other_querier_present_interval() == ms(22500));
    // The interval a query says is bounded by what a configuration may say (3600 s).
    CHECK(f.on_query(router, ms(2000), 7, 31744) == false);
    CHECK(f.other_querier_present_interval() == ms(7 * 3600000 + 2500));
}
