// Heartbeat wire format and authentication.
#include <catch2/catch.hpp>

#include <random>

#include "heartbeat_auth.hpp"
#include "heartbeat_codec.hpp"

using namespace nlb;

namespace {

Heartbeat sample(std::size_t rules = 32) {
    Heartbeat hb;
    hb.cluster_ip = 0xc0000264;
    hb.priority = 17;
    hb.state = HostState::converged;
    hb.rule_count = static_cast<std::uint8_t>(rules);
    hb.nonce = 0x1122334455667788ull;
    hb.sequence = 42;
    hb.fingerprint = 0xabcdef;
    hb.view = 0xffffffffffffffffull;
    hb.view_digest = 7;
    hb.claim = 8;
    hb.claim_members = 0xff;
    hb.map_digest = 9;
    hb.connections = 1000;
    hb.score = 5000;
    for (std::size_t r = 0; r < rules; ++r) {
        hb.rules[r] = {static_cast<std::uint8_t>(r * 3), static_cast<std::uint8_t>(r + 1)};
        hb.control[r] = static_cast<RuleControl>(r % 3);
    }
    return hb;
}

} // namespace

TEST_CASE("heartbeats round-trip") {
    auto hb = sample();
    DirtySlot d{3, {}};
    d.buckets.set(0).set(17).set(4095);
    hb.dirty.push_back(d);
    const auto frame = encode_heartbeat(hb);
    auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    CHECK(*r.heartbeat == hb);
    CHECK(r.length == frame.size());
}

TEST_CASE("64 hosts, 32 rules and every bucket dirty still fit one frame") {
    auto hb = sample();
    hb.flags = Heartbeat::kFlagAuthenticated;
    std::mt19937_64 rng(3);
    for (std::uint8_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        DirtySlot d{s, {}};
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (rng() % 3 == 0)
                d.buckets.set(b);
        hb.dirty.push_back(d);
    }
    const auto frame = encode_heartbeat(hb);
    CHECK(frame.size() <= kHeartbeatMaxSize);
    auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    REQUIRE(r.heartbeat->dirty.size() == hb.dirty.size());
    for (std::size_t i = 0; i < hb.dirty.size(); ++i) {
        // Coarsened: a superset of what was dirty.
        CHECK((r.heartbeat->dirty[i].buckets & hb.dirty[i].buckets) == hb.dirty[i].buckets);
    }
}

TEST_CASE("a few dirty buckets are encoded exactly and compactly") {
    auto hb = sample(1);
    DirtySlot d{0, {}};
    for (std::uint32_t b = 0; b < 100; ++b)
        d.buckets.set(b * 37 % NLB_BUCKETS);
    hb.dirty.push_back(d);
    const auto frame = encode_heartbeat(hb);
    CHECK(frame.size() < 400);
    auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->dirty[0].buckets == d.buckets);
}

TEST_CASE("the decoder rejects every truncation and bad length") {
    auto hb = sample(4);
    DirtySlot d{1, {}};
    d.buckets.set(5);
    hb.dirty.push_back(d);
    const auto frame = encode_heartbeat(hb);
    for (std::size_t n = 0; n < frame.size(); ++n) {
        auto r = decode_heartbeat(std::span(frame).first(n));
        CHECK(!r.heartbeat);
    }
    auto bad = frame;
    bad[8] = 0xff; // total length beyond the frame
    CHECK(decode_heartbeat(bad).error == DecodeError::truncated);
    bad = frame;
    bad[6] = 0; // header length below the minimum
    bad[7] = 8;
    CHECK(decode_heartbeat(bad).error == DecodeError::bad_length);
    bad = frame;
    bad[16] = 65; // priority
    CHECK(decode_heartbeat(bad).error == DecodeError::bad_field);
    bad = frame;
    bad[19] = 33; // rule count
    CHECK(decode_heartbeat(bad).error == DecodeError::bad_field);
    bad = frame;
    bad[0] = 'X';
    CHECK(decode_heartbeat(bad).error == DecodeError::bad_magic);
    bad = frame;
    bad[4] = 2;
    CHECK(decode_heartbeat(bad).error == DecodeError::bad_version);
}

TEST_CASE("a later minor version with a longer header and new sections is readable") {
    auto hb = sample(2);
    auto frame = encode_heartbeat(hb);
    // Minor 7: 8 more header bytes and an unknown section type 9 at the end.
    std::vector<std::uint8_t> v;
    v.insert(v.end(), frame.begin(), frame.begin() + kHeartbeatHeaderSize);
    v.insert(v.end(), 8, 0xee);
    v.insert(v.end(), frame.begin() + kHeartbeatHeaderSize, frame.end());
    for (std::uint8_t b : {9, 0, 0, 3, 1, 2, 3})
        v.push_back(b);
    v[5] = 7;
    v[6] = 0;
    v[7] = static_cast<std::uint8_t>(kHeartbeatHeaderSize + 8);
    v[8] = static_cast<std::uint8_t>(v.size() >> 8);
    v[9] = static_cast<std::uint8_t>(v.size());
    auto r = decode_heartbeat(v);
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->version_minor == 7);
    CHECK(r.heartbeat->rules == hb.rules);
    CHECK(r.heartbeat->nonce == hb.nonce);
}

TEST_CASE("HMAC: signed frames verify, any change or another key does not") {
    HeartbeatAuth auth(std::vector<std::uint8_t>(32, 0x42));
    auto hb = sample(3);
    hb.flags = Heartbeat::kFlagAuthenticated;
    auto frame = encode_heartbeat(hb);
    auth.sign(frame);
    CHECK(auth.verify(frame, frame.size()));
    for (std::size_t i = 0; i < frame.size(); i += 7) {
        auto f = frame;
        f[i] ^= 0x10;
        CHECK(!auth.verify(f, f.size()));
    }
    CHECK(!HeartbeatAuth(std::vector<std::uint8_t>(32, 0x43)).verify(frame, frame.size()));
    CHECK(!HeartbeatAuth({}).verify(frame, frame.size()));
}

TEST_CASE("replay guard: old sequences and old nonces are replays, new nonces are reboots") {
    ReplayGuard g;
    CHECK(g.check(3, 100, 1) == ReplayGuard::Verdict::new_nonce);
    g.accept(3, 100, 1);
    CHECK(g.check(3, 100, 1) == ReplayGuard::Verdict::replay);
    CHECK(g.check(3, 100, 2) == ReplayGuard::Verdict::fresh);
    g.accept(3, 100, 5);
    CHECK(g.check(3, 100, 4) == ReplayGuard::Verdict::replay);
    CHECK(g.check(3, 200, 1) == ReplayGuard::Verdict::new_nonce);
    g.accept(3, 200, 1);
    CHECK(g.check(3, 100, 5) == ReplayGuard::Verdict::replay); // the old boot
    CHECK(g.check(4, 100, 1) == ReplayGuard::Verdict::new_nonce);
}
