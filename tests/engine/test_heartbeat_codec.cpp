// Heartbeat wire format and authentication.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "confirmations.hpp"
#include "heartbeat_auth.hpp"
#include "heartbeat_codec.hpp"
#include "map_transfer.hpp"

using namespace nlb;

namespace test_heartbeat_codec {

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

TEST_CASE("the want section round-trips; the sender's own bit is dropped, a short body refused") {
    auto hb = sample();
    hb.has_want = true;
    hb.want = 0x8000000000000005ull; // hosts 1, 3 and 64
    auto r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK(*r.heartbeat == hb);
    // Empty, it still says that the sender can ask.
    hb.want = 0;
    r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->has_want);
    CHECK(r.heartbeat->want == 0);
    // Host 17's own bit means nothing: dropped, the frame read.
    hb.want = (std::uint64_t{1} << 16) | 2;
    r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->want == 2);
    // Without it: a version that cannot ask.
    hb.has_want = false;
    hb.want = 0;
    r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK_FALSE(r.heartbeat->has_want);
    // A body shorter than 8 bytes is refused (the last section: cut its last byte).
    hb.has_want = true;
    auto frame = encode_heartbeat(hb);
    const std::size_t header = (std::size_t{frame[6]} << 8) | frame[7];
    std::size_t at = header;
    while (at + 4 <= frame.size() && frame[at] != kSectionWant)
        at += 4 + ((std::size_t{frame[at + 2]} << 8) | frame[at + 3]);
    REQUIRE(at + 12 <= frame.size());
    frame[at + 3] = 7;
    frame.erase(frame.begin() + static_cast<long>(at + 11));
    frame[8] = static_cast<std::uint8_t>(frame.size() >> 8);
    frame[9] = static_cast<std::uint8_t>(frame.size());
    CHECK_FALSE(decode_heartbeat(frame).heartbeat);
}

TEST_CASE("the owners section round-trips, only when not empty; the sender's own bit is dropped") {
    auto hb = sample();
    hb.outside_owners = 0x8000000000000005ull; // hosts 1, 3 and 64
    const auto with = encode_heartbeat(hb);
    auto r = decode_heartbeat(with);
    REQUIRE(r.heartbeat);
    CHECK(*r.heartbeat == hb);
    hb.outside_owners = 0;
    CHECK(encode_heartbeat(hb).size() + 12 == with.size()); // section header and 8 bytes
    hb.outside_owners = (std::uint64_t{1} << 16) | 2;       // host 17 is the sender
    r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->outside_owners == 2);
}

namespace {

// The sections a frame carries in a 64-host cluster: 63 peers echoed and confirmed.
void add_peers(Heartbeat& hb) {
    hb.has_contact = true;
    hb.has_acks = true;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == hb.priority)
            continue;
        hb.echoes.push_back({p, Heartbeat::kPathSegment, 0x1000u + p});
        hb.acks.push_back({p, static_cast<std::uint16_t>(60000 + p)});
    }
}

} // namespace

TEST_CASE("confirmations: a sequence's low 16 bits name the newest frame sent with them") {
    Confirmations c;
    CHECK_FALSE(c.sent_at(1)); // nothing sent yet
    for (std::uint64_t seq = 1; seq <= 70000; ++seq)
        c.sent(seq, static_cast<std::int64_t>(seq) * 10);
    // 70000 = 0x11170: its low bits name it, not frame 0x01170 sent 65,536 frames before.
    REQUIRE(c.sent_at(0x1170));
    CHECK(*c.sent_at(0x1170) == 700000);
    REQUIRE(c.sent_at(static_cast<std::uint16_t>(70000 - 1023)));
    CHECK(*c.sent_at(static_cast<std::uint16_t>(70000 - 1023)) == (70000 - 1023) * 10);
    // Further back than the ring holds: unknown, never a later frame's time.
    CHECK_FALSE(c.sent_at(static_cast<std::uint16_t>(70000 - 1024)));
    CHECK_FALSE(c.sent_at(static_cast<std::uint16_t>(70000 + 1))); // never sent: long ago
    // Each peer's confirmation is of its boot.
    c.confirm(5, 0xaa, 123);
    REQUIRE(c.confirmed(5, 0xaa));
    CHECK(*c.confirmed(5, 0xaa) == 123);
    CHECK_FALSE(c.confirmed(5, 0xbb));
    c.confirm(5, 0xbb, 456); // its next boot
    CHECK_FALSE(c.confirmed(5, 0xaa));
    CHECK(*c.confirmed(5, 0xbb) == 456);
    c.confirm(0, 0xaa, 1); // no such priority: ignored
    c.confirm(65, 0xaa, 1);
    CHECK_FALSE(c.confirmed(65, 0xaa));
}

TEST_CASE("the acks section round-trips; bad priorities and short bodies are refused") {
    auto hb = sample();
    add_peers(hb);
    auto r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK(*r.heartbeat == hb);
    REQUIRE(r.heartbeat->ack_of(64));
    CHECK(r.heartbeat->ack_of(64)->sequence == 60064);
    CHECK(r.heartbeat->ack_of(17) == nullptr); // the sender confirms nothing of its own
    // Without it: a version that confirms nothing (its peers' watchdogs count as before).
    hb.has_acks = false;
    hb.acks.clear();
    r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK_FALSE(r.heartbeat->has_acks);
    // Empty, it says the sender took in nobody's frames.
    hb.has_acks = true;
    r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->has_acks);
    CHECK(r.heartbeat->acks.empty());
    // The section's body as encoded, for the cases below.
    auto with_body = [&](std::vector<std::uint8_t> body) {
        hb.has_acks = false;
        auto frame = encode_heartbeat(hb);
        frame.insert(frame.end(), {kSectionAcks, 0, 0, static_cast<std::uint8_t>(body.size())});
        frame.insert(frame.end(), body.begin(), body.end());
        frame[8] = static_cast<std::uint8_t>(frame.size() >> 8);
        frame[9] = static_cast<std::uint8_t>(frame.size());
        return decode_heartbeat(frame);
    };
    CHECK(with_body({1, 0, 5, 0, 0x12, 0x34}).heartbeat);             // host 5, sequence 0x1234
    CHECK_FALSE(with_body({2, 0, 5, 0, 0x12, 0x34}).heartbeat);       // shorter than its count
    CHECK_FALSE(with_body({1, 0, 0, 0, 0x12, 0x34}).heartbeat);       // priority 0
    CHECK_FALSE(with_body({1, 0, 65, 0, 0x12, 0x34}).heartbeat);      // priority 65
    CHECK_FALSE(with_body({2, 0, 5, 0, 0, 1, 5, 0, 0, 2}).heartbeat); // host 5 twice
    CHECK_FALSE(with_body({2, 0, 6, 0, 0, 1, 5, 0, 0, 2}).heartbeat); // not ascending
    CHECK(with_body({2, 0, 5, 0, 0, 1, 6, 0, 0, 2}).heartbeat);
    CHECK_FALSE(with_body({65, 0}).heartbeat); // more than 64 hosts
    CHECK_FALSE(with_body({1}).heartbeat);     // no count
    // Longer than its entries: a later version's, the entries read.
    const auto longer = with_body({1, 0, 5, 0, 0x12, 0x34, 9, 9});
    REQUIRE(longer.heartbeat);
    REQUIRE(longer.heartbeat->ack_of(5));
    CHECK(longer.heartbeat->ack_of(5)->sequence == 0x1234);
}

TEST_CASE("section 11's grace appendix round-trips, sent only when someone is in grace") {
    auto hb = sample();
    hb.outside_owners = 4;
    const auto plain = encode_heartbeat(hb);
    hb.grace_owners = 0x8000000000000001ull | (std::uint64_t{1} << 16); // 1, 64, and 17 itself
    hb.grace_left_ms = 1234;
    const auto with = encode_heartbeat(hb);
    CHECK(with.size() == plain.size() + 12);
    auto r = decode_heartbeat(with);
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->outside_owners == 4);
    CHECK(r.heartbeat->grace_owners == 0x8000000000000001ull); // the sender's own bit dropped
    CHECK(r.heartbeat->grace_left_ms == 1234);
    // Someone in grace and nobody outside the view: the section goes all the same.
    hb.outside_owners = 0;
    r = decode_heartbeat(encode_heartbeat(hb));
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->outside_owners == 0);
    CHECK(r.heartbeat->grace_left_ms == 1234);
}

TEST_CASE("64 hosts, 32 rules and every bucket dirty still fit one frame") {
    auto hb = sample();
    hb.flags = Heartbeat::kFlagAuthenticated;
    add_peers(hb);
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

namespace {

// The formats of the dirty section's entries in an encoded frame, bit f for format f (format
// 2, whole slots, is one 1.2 readers of before 2026-12-06 reject).
unsigned dirty_formats(const std::vector<std::uint8_t>& frame) {
    const std::size_t header = (std::size_t{frame[6]} << 8) | frame[7];
    const std::size_t end = frame.size() - (frame[11] & Heartbeat::kFlagAuthenticated ? 32 : 0);
    unsigned formats = 0;
    for (std::size_t at = header; at + 4 <= end;) {
        const std::size_t length = (std::size_t{frame[at + 2]} << 8) | frame[at + 3];
        if (frame[at] == kSectionDirty)
            for (std::size_t e = at + 4; e + 6 <= at + 4 + length;) {
                formats |= 1u << frame[e + 2];
                const std::size_t count = (std::size_t{frame[e + 4]} << 8) | frame[e + 5];
                e += 6 + (frame[e + 2] == 0 ? 2 * count : count);
            }
        at += 4 + length;
    }
    return formats;
}

// Every bucket dirty in `sent` is dirty in what a reader decoded.
void check_superset(const std::vector<DirtySlot>& sent, const std::vector<DirtySlot>& got) {
    for (const auto& d : sent) {
        INFO("slot " << int(d.slot));
        const auto it = std::find_if(got.begin(), got.end(),
                                     [&](const DirtySlot& g) { return g.slot == d.slot; });
        REQUIRE(it != got.end());
        CHECK((it->buckets & d.buckets) == d.buckets);
    }
    CHECK(got.size() == sent.size());
}

// The largest heartbeat there is: 64 hosts (63 peers and a second host with the sender's
// priority echoed), 32 rules with loads, staged, owners outside the view and in grace, HMAC,
// every slot dirty in scattered buckets.
Heartbeat largest(std::uint64_t seed) {
    auto hb = sample();
    hb.flags = Heartbeat::kFlagAuthenticated;
    add_peers(hb);
    hb.echoes.push_back({hb.priority, Heartbeat::kPathSegment, 0x7777});
    hb.has_config = true;
    hb.has_seed = true;
    hb.seed_digest = 0x5eed;
    hb.has_health = true;
    hb.has_want = true;
    hb.want = 0x3;
    hb.load_rules = 0xffffffff;
    for (std::size_t r = 0; r < NLB_MAX_RULES; ++r)
        hb.loads[r] = static_cast<std::uint32_t>(1000 + r);
    hb.staged = 0x1122334455667788;
    hb.switched_from = 0x99aabbccddeeff01;
    hb.outside_owners = 0x6;
    hb.grace_owners = 0x18;
    hb.grace_left_ms = 900;
    hb.mtu = 1400;
    std::mt19937_64 rng(seed);
    for (std::uint8_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        DirtySlot d{s, {}};
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (rng() % 97 == 0)
                d.buckets.set(b);
        d.buckets.set(rng() % NLB_BUCKETS); // never empty
        hb.dirty.push_back(d);
    }
    return hb;
}

} // namespace

TEST_CASE("the largest heartbeat fits one frame, every dirty bucket reported, nothing else lost") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        const auto hb = largest(seed);
        const auto frame = encode_heartbeat(hb);
        INFO("seed " << seed << ": " << frame.size() << " bytes");
        CHECK(frame.size() <= kHeartbeatMaxSize);
        const auto r = decode_heartbeat(frame);
        REQUIRE(r.heartbeat);
        check_superset(hb.dirty, r.heartbeat->dirty);
        // Everything but the dirty buckets as sent: nothing omitted for room.
        auto same = *r.heartbeat;
        same.dirty = hb.dirty;
        CHECK(same == hb);
        // Whole slots: one group per slot (33 entries, 231 bytes) leaves no room here.
        CHECK((dirty_formats(frame) & 4u) != 0);
        // Fewer sections, fewer slots whole: with only the peers there, one entry per slot.
        auto plain = hb;
        plain.load_rules = 0;
        plain.staged = plain.switched_from = 0;
        plain.outside_owners = plain.grace_owners = 0;
        plain.echoes.pop_back();
        const auto fits = encode_heartbeat(plain);
        CHECK(fits.size() <= kHeartbeatMaxSize);
        CHECK(dirty_formats(fits) == 2u); // bitmaps only: what readers before 2026-12-06 read
        const auto p = decode_heartbeat(fits);
        REQUIRE(p.heartbeat);
        check_superset(plain.dirty, p.heartbeat->dirty);
    }
}

TEST_CASE("whole slots: only when one entry per slot does not fit, lossless ones first") {
    std::vector<DirtySlot> dirty;
    for (std::uint8_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        DirtySlot d{s, {}};
        d.buckets.set(s * 100u);
        if (s % 2)
            d.buckets.set(); // every bucket: one group of the whole slot costs nothing
        dirty.push_back(d);
    }
    const auto decode = [](const std::vector<std::uint8_t>& body) {
        Heartbeat hb;
        REQUIRE(decode_dirty_section(body, hb) == DecodeError::none);
        return hb.dirty;
    };
    // One entry per slot fits: no slots entry.
    auto body = encode_dirty(dirty, 7 * NLB_RULE_SLOTS);
    CHECK(body.size() == 7 * NLB_RULE_SLOTS);
    check_superset(dirty, decode(body));
    // 7 bytes short: the first slot whole already goes into the slots entry (11 bytes) with
    // one more; every slot with a single bucket keeps its entry.
    body = encode_dirty(dirty, 7 * NLB_RULE_SLOTS - 7);
    CHECK(body.size() <= 7 * NLB_RULE_SLOTS - 7);
    auto got = decode(body);
    check_superset(dirty, got);
    for (const auto& d : got)
        if (d.slot % 2 == 0)
            CHECK(d.buckets.count() < NLB_BUCKETS);
    // The least there is: every slot whole, kDirtyMinSection bytes, at any budget below.
    for (const std::size_t budget : {kDirtyMinSection, std::size_t{3}, std::size_t{0}}) {
        body = encode_dirty(dirty, budget);
        CHECK(body.size() == kDirtyMinSection);
        check_superset(dirty, decode(body));
    }
    CHECK(encode_dirty({}, 0).empty());
}

TEST_CASE("the slots entry is strictly decoded") {
    // Slots 0 and 32 whole.
    const std::vector<std::uint8_t> slots{0, 12, 2, 0, 0, 5, 0x80, 0, 0, 0, 0x80};
    Heartbeat hb;
    REQUIRE(decode_dirty_section(slots, hb) == DecodeError::none);
    REQUIRE(hb.dirty.size() == 2);
    CHECK(hb.dirty[0].slot == 0);
    CHECK(hb.dirty[0].buckets.all());
    CHECK(hb.dirty[1].slot == 32);
    CHECK(hb.dirty[1].buckets.all());
    const auto error = [](std::vector<std::uint8_t> body) {
        Heartbeat h;
        return decode_dirty_section(body, h);
    };
    auto bad = slots;
    bad[0] = 1; // a slot in its head
    CHECK(error(bad) == DecodeError::bad_field);
    bad = slots;
    bad[1] = 11; // groups smaller than a slot
    CHECK(error(bad) == DecodeError::bad_field);
    bad = slots;
    bad[5] = 4; // not the slots' bitmap
    CHECK(error(bad) == DecodeError::bad_length);
    bad = slots;
    bad[10] = 0x40; // slot 33
    CHECK(error(bad) == DecodeError::bad_field);
    bad = slots;
    bad.pop_back();
    CHECK(error(bad) == DecodeError::truncated);
    // Each slot once, whichever entry names it, in either order.
    const std::vector<std::uint8_t> slot32{32, 12, 1, 0, 0, 1, 0x80};
    bad = slots;
    bad.insert(bad.end(), slot32.begin(), slot32.end());
    CHECK(error(bad) == DecodeError::bad_field);
    bad = slot32;
    bad.insert(bad.end(), slots.begin(), slots.end());
    CHECK(error(bad) == DecodeError::bad_field);
    bad = slots;
    bad.insert(bad.end(), slots.begin(), slots.end());
    CHECK(error(bad) == DecodeError::bad_field);
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
    // Minor 7: 8 more header bytes and an unknown section type 99 at the end.
    std::vector<std::uint8_t> v;
    v.insert(v.end(), frame.begin(), frame.begin() + kHeartbeatHeaderSize);
    v.insert(v.end(), 8, 0xee);
    v.insert(v.end(), frame.begin() + kHeartbeatHeaderSize, frame.end());
    for (std::uint8_t b : {99, 0, 0, 3, 1, 2, 3})
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

// ---- base-map section and map transfer ----------------------------------------------------

namespace {

ClusterMap sample_map(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    ClusterMap m;
    for (auto& o : m.slots[0])
        o = static_cast<std::uint8_t>(1 + rng() % 64); // packed
    m.slots[1] = m.slots[0];                           // same as slot 0
    m.slots[2].fill(7);                                // uniform
    for (auto& o : m.slots[3])
        o = static_cast<std::uint8_t>(rng() % 65); // with 0s: raw
    m.slots[NLB_RULE_DEFAULT].fill(1);
    return m;
}

MapChunk chunk_of(const std::vector<std::uint8_t>& encoded, std::uint64_t digest,
                  std::size_t index) {
    MapChunk c;
    c.cluster_ip = 0xc0000264;
    c.priority = 3;
    c.nonce = 77;
    c.sequence = 1 + index;
    c.map_digest = digest;
    c.generation = 4;
    c.map_size = static_cast<std::uint32_t>(encoded.size());
    c.index = static_cast<std::uint16_t>(index);
    c.count = static_cast<std::uint16_t>(chunk_count(encoded.size()));
    const auto d = chunk_data(encoded, index);
    c.data.assign(d.begin(), d.end());
    return c;
}

} // namespace

TEST_CASE("the base-map section round-trips and is checked") {
    auto hb = sample(2);
    hb.base_digest = 0x1234;
    hb.base_generation = 9;
    hb.base_flags = Heartbeat::kBaseGiveUp;
    auto frame = encode_heartbeat(hb);
    auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    CHECK(*r.heartbeat == hb);
    // The section is the last one here (no dirty buckets): flags, then generation.
    frame[frame.size() - 1] = 0x80; // unknown flag
    CHECK(decode_heartbeat(frame).error == DecodeError::bad_field);
    hb.base_flags = 0;
    hb.base_generation = 0; // a digest without a generation
    CHECK(decode_heartbeat(encode_heartbeat(hb)).error == DecodeError::bad_field);
}

TEST_CASE("maps encode compactly and decode exactly") {
    for (std::uint64_t seed = 0; seed < 5; ++seed) {
        const auto m = sample_map(seed);
        const auto bytes = encode_map(m);
        // packed 3072 + raw 4096 + kind bytes and the small slots.
        CHECK(bytes.size() < 3072 + 4096 + 2 * NLB_RULE_SLOTS + 2);
        auto back = decode_map(bytes);
        REQUIRE(back);
        CHECK(*back == m);
    }
    ClusterMap empty;
    CHECK(encode_map(empty).size() == 2 * NLB_RULE_SLOTS);
    CHECK(*decode_map(encode_map(empty)) == empty);
}

TEST_CASE("the map decoder rejects truncations, trailing bytes and bad references") {
    const auto bytes = encode_map(sample_map(1));
    for (std::size_t n = 0; n < bytes.size(); n += n < 64 ? 1 : 97)
        CHECK(!decode_map(std::span(bytes).first(n)));
    auto longer = bytes;
    longer.push_back(0);
    CHECK(!decode_map(longer));
    auto bad = bytes;
    bad[0] = 9; // unknown kind
    CHECK(!decode_map(bad));
    std::vector<std::uint8_t> self{1, 0}; // slot 0 "same as slot 0"
    CHECK(!decode_map(self));
    std::vector<std::uint8_t> owner{0, 65}; // uniform owner beyond NLB_MAX_HOSTS
    CHECK(!decode_map(owner));
}

TEST_CASE("map chunks round-trip, fit a frame and are strictly decoded") {
    const auto m = sample_map(2);
    const auto encoded = encode_map(m);
    const auto count = chunk_count(encoded.size());
    REQUIRE(count >= 2);
    for (std::size_t i = 0; i < count; ++i) {
        auto c = chunk_of(encoded, m.digest(), i);
        c.flags = Heartbeat::kFlagAuthenticated;
        const auto frame = encode_map_chunk(c);
        CHECK(frame.size() <= kHeartbeatMaxSize);
        CHECK(is_map_chunk(frame));
        CHECK(!is_map_chunk(encode_heartbeat(sample(1))));
        auto r = decode_map_chunk(frame);
        REQUIRE(r.chunk);
        CHECK(*r.chunk == c);
        CHECK(r.length == frame.size());
        for (std::size_t n = 0; n < frame.size(); n += n < kMapChunkHeaderSize ? 1 : 61)
            CHECK(!decode_map_chunk(std::span(frame).first(n)).chunk);
    }
    // The largest possible map still fits in frames of at most 1500 bytes.
    MapChunk last = chunk_of(std::vector<std::uint8_t>(kMapMaxEncoded, 0), 1, kMapMaxChunks - 1);
    last.flags = Heartbeat::kFlagAuthenticated;
    CHECK(decode_map_chunk(encode_map_chunk(last)).chunk);
    const auto frame = encode_map_chunk(chunk_of(encoded, m.digest(), 0));
    auto bad = frame;
    bad[20] = 0xff; // count no longer matches the size
    CHECK(decode_map_chunk(bad).error == DecodeError::bad_length);
    bad = frame;
    bad[18] = 0xff; // index beyond the count
    CHECK(decode_map_chunk(bad).error == DecodeError::bad_length);
    bad = frame;
    bad[52] = 0xff; // map size beyond kMapMaxEncoded
    CHECK(decode_map_chunk(bad).error == DecodeError::bad_length);
    bad = frame;
    bad[16] = 0; // priority
    CHECK(decode_map_chunk(bad).error == DecodeError::bad_field);
    bad = frame;
    bad.push_back(0); // one more data byte than the chunk's place allows
    bad[9] = static_cast<std::uint8_t>(bad.size());
    bad[8] = static_cast<std::uint8_t>(bad.size() >> 8);
    CHECK(decode_map_chunk(bad).error == DecodeError::bad_length);
}

TEST_CASE("reassembly: any order and duplicates work, a corrupted map is refused") {
    const auto m = sample_map(3);
    const auto encoded = encode_map(m);
    const auto count = chunk_count(encoded.size());
    MapAssembly a;
    for (std::size_t k = count; k-- > 0;) {
        CHECK(a.add(chunk_of(encoded, m.digest(), k)) ==
              (k == 0 ? MapAssembly::Result::complete : MapAssembly::Result::stored));
        if (k == count - 1)
            CHECK(a.add(chunk_of(encoded, m.digest(), k)) == MapAssembly::Result::duplicate);
    }
    auto got = a.take();
    REQUIRE(got);
    CHECK(*got == m);
    // One flipped byte: the pieces fit together but the digest does not.
    for (std::size_t k = 0; k < count; ++k) {
        auto c = chunk_of(encoded, m.digest(), k);
        if (k == 1)
            c.data[5] ^= 1;
        a.add(c);
    }
    CHECK(!a.take());
    // A chunk of another map restarts the buffer.
    a.add(chunk_of(encoded, m.digest(), 0));
    a.add(chunk_of(encoded, m.digest() + 1, 1));
    CHECK(a.digest() == m.digest() + 1);
}

TEST_CASE("replay window: any order once, nothing twice, nothing older than the window") {
    ReplayWindow w;
    CHECK(w.accept(3, 100, 10));
    CHECK(w.accept(3, 100, 13)); // 11 and 12 overtaken
    CHECK(w.accept(3, 100, 12));
    CHECK(w.accept(3, 100, 11));
    CHECK(!w.accept(3, 100, 12));
    CHECK(!w.accept(3, 100, 13));
    CHECK(w.accept(3, 100, 13 + ReplayWindow::kWindow));
    CHECK(!w.accept(3, 100, 13)); // fell out of the window
    CHECK(!w.accept(3, 100, 5));  // older than the window, never seen: refused too
    CHECK(w.accept(3, 100, 14));  // inside the window, never seen
    CHECK(w.accept(4, 100, 1));   // senders are independent
    CHECK(w.accept(3, 200, 1));   // a reboot
    CHECK(!w.accept(3, 200, 1));
    CHECK(!w.accept(65, 1, 1)); // no such priority
}

TEST_CASE("load feedback's section: round-trip, only the frame's rules, never short") {
    auto hb = sample(4);
    hb.load_rules = 0b1010;
    hb.loads[1] = 1234;
    hb.loads[3] = 0xffffffff;
    const auto frame = encode_heartbeat(hb);
    auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->load_rules == 0b1010);
    CHECK(r.heartbeat->loads[1] == 1234);
    CHECK(r.heartbeat->loads[3] == 0xffffffff);
    CHECK(*r.heartbeat == hb);
    // No section without loads: frames of hosts without load feedback are as before.
    auto plain = sample(4);
    CHECK(encode_heartbeat(plain).size() + 4 + 4 + 8 == frame.size());

    // Find the section (type 8) and break it.
    auto find = [](std::vector<std::uint8_t>& f) -> std::size_t {
        for (std::size_t i = 40; i + 8 <= f.size(); ++i)
            if (f[i] == kSectionLoad && f[i + 1] == 0 && f[i + 2] == 0 && f[i + 3] == 12 &&
                f[i + 4] == 0 && f[i + 5] == 0 && f[i + 6] == 0 && f[i + 7] == 0b1010)
                return i;
        return 0;
    };
    auto beyond = frame;
    const std::size_t at = find(beyond);
    REQUIRE(at != 0);
    beyond[at + 7] = 0b10010; // rule 4 of a frame with 4 rules
    CHECK_FALSE(decode_heartbeat(beyond).heartbeat);
    auto more = frame;
    more[at + 7] = 0b1110; // three rules named, two loads carried
    CHECK_FALSE(decode_heartbeat(more).heartbeat);
}

TEST_CASE("staged section: round-trip, absent when there is nothing staged, never short") {
    auto hb = sample(4);
    hb.staged = 0x1122334455667788;
    hb.switched_from = 0x99aabbccddeeff01;
    const auto frame = encode_heartbeat(hb);
    auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->staged == hb.staged);
    CHECK(r.heartbeat->switched_from == hb.switched_from);
    CHECK(*r.heartbeat == hb);
    // Nothing staged, never switched: frames are as before the section existed.
    CHECK(encode_heartbeat(sample(4)).size() + 4 + 16 == frame.size());
    // A section shorter than its two digests is broken.
    auto shorter = frame;
    std::size_t at = 0;
    for (std::size_t i = 40; i + 4 <= shorter.size(); ++i)
        if (shorter[i] == kSectionStaged && shorter[i + 1] == 0 && shorter[i + 2] == 0 &&
            shorter[i + 3] == 16 && shorter[i + 4] == 0x11)
            at = i;
    REQUIRE(at != 0);
    shorter[at + 3] = 8;
    shorter.erase(shorter.begin() + static_cast<std::ptrdiff_t>(at) + 12,
                  shorter.begin() + static_cast<std::ptrdiff_t>(at) + 20);
    shorter[8] = static_cast<std::uint8_t>(shorter.size() >> 8);
    shorter[9] = static_cast<std::uint8_t>(shorter.size());
    CHECK(decode_heartbeat(shorter).error == DecodeError::bad_length);
}

TEST_CASE("the MTU section: round-trip, absent at 1500 or more, never short") {
    auto hb = sample(4);
    hb.mtu = 1300;
    const auto frame = encode_heartbeat(hb);
    auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    CHECK(r.heartbeat->mtu == 1300);
    CHECK(*r.heartbeat == hb);
    // Not said: frames are as before the section existed.
    CHECK(encode_heartbeat(sample(4)).size() + 4 + 4 == frame.size());
    CHECK(decode_heartbeat(encode_heartbeat(sample(4))).heartbeat->mtu == 0);
    // A body shorter than the MTU is broken.
    auto shorter = frame;
    std::size_t at = 0;
    for (std::size_t i = 40; i + 6 <= shorter.size(); ++i)
        if (shorter[i] == kSectionMtu && shorter[i + 1] == 0 && shorter[i + 2] == 0 &&
            shorter[i + 3] == 4 && shorter[i + 4] == 0x05 && shorter[i + 5] == 0x14)
            at = i;
    REQUIRE(at != 0);
    shorter[at + 3] = 1;
    shorter.erase(shorter.begin() + static_cast<std::ptrdiff_t>(at) + 5,
                  shorter.begin() + static_cast<std::ptrdiff_t>(at) + 8);
    shorter[8] = static_cast<std::uint8_t>(shorter.size() >> 8);
    shorter[9] = static_cast<std::uint8_t>(shorter.size());
    CHECK(decode_heartbeat(shorter).error == DecodeError::bad_length);
}

TEST_CASE("frames fit a budget below 1500, every dirty bucket still reported") {
    // 4 peers, 4 rules, every slot dirty in scattered buckets: exact, some 2,300 bytes.
    auto hb = sample(4);
    hb.flags = Heartbeat::kFlagAuthenticated;
    std::mt19937_64 rng(5);
    for (std::uint8_t s = 0; s < 4; ++s) {
        DirtySlot d{s, {}};
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (rng() % 3 == 0)
                d.buckets.set(b);
        hb.dirty.push_back(d);
    }
    CHECK(encode_heartbeat(hb, 100000).size() == encode_heartbeat(hb).size()); // at most 1500
    for (std::size_t budget = kFrameBudgetMin; budget <= kHeartbeatMaxSize; budget += 7) {
        INFO("budget " << budget);
        const auto frame = encode_heartbeat(hb, budget);
        CHECK(frame.size() <= budget);
        const auto r = decode_heartbeat(frame);
        REQUIRE(r.heartbeat);
        check_superset(hb.dirty, r.heartbeat->dirty);
    }
    // The largest heartbeat there is needs more than the least budget: it comes out longer than
    // that (the engine counts it, frame_oversized), never longer than 1500, and whole.
    const auto big = largest(1);
    const auto frame = encode_heartbeat(big, kFrameBudgetMin);
    CHECK(frame.size() > kFrameBudgetMin);
    CHECK(frame.size() <= kHeartbeatMaxSize);
    const auto r = decode_heartbeat(frame);
    REQUIRE(r.heartbeat);
    check_superset(big.dirty, r.heartbeat->dirty);
}

} // namespace test_heartbeat_codec
