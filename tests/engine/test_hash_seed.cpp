// The hash seed between hosts: hosts that would hash packets into different buckets never
// share an epoch, the refusal names cluster.hash_seed and where each seed comes from, and
// hosts on the fixed seed still agree with versions that send no seed (docs/convergence.md,
// section 6 of the heartbeat; docs/dataplane.md, "The hash seed").
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "heartbeat_auth.hpp"
#include "heartbeat_codec.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_hash_seed {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKeyA(32, 0x5a);
const std::vector<std::uint8_t> kKeyB(32, 0xa5);

// As engine_config_of makes it for a host whose key_file holds `key`.
EngineConfig keyed(std::uint8_t priority, const std::vector<std::uint8_t>& key) {
    auto c = default_config(priority);
    c.cluster.key = key;
    c.cluster.flow_seed = flow_seed_from_key(key);
    c.cluster.flow_seed_source = SeedSource::key;
    return c;
}

EngineConfig seeded(std::uint8_t priority, std::uint32_t seed) {
    auto c = default_config(priority);
    c.cluster.flow_seed = seed;
    c.cluster.flow_seed_source = SeedSource::config;
    return c;
}

std::size_t convergences(const SimHost& h) {
    return count_events(h, EventKind::convergence_started);
}

// Every host_refused text host h logged, one per line.
// A frame as a version before per-cluster seeds sends it: no section 6 (signed again with
// `key` for a keyed cluster).
std::vector<std::uint8_t> without_seed(const std::vector<std::uint8_t>& f,
                                       const std::vector<std::uint8_t>& key) {
    auto d = decode_heartbeat(f);
    if (!d.heartbeat)
        return f;
    d.heartbeat->has_seed = false;
    auto out = encode_heartbeat(*d.heartbeat);
    HeartbeatAuth(key).sign(out);
    return out;
}

// Host `old`'s frames as a version before per-cluster seeds sends them.
void as_old_version(Simulator& sim, std::size_t old, std::vector<std::uint8_t> key = {}) {
    sim.rewrite = [old, key](std::size_t from, std::size_t, const std::vector<std::uint8_t>& f) {
        return from == old ? without_seed(f, key) : f;
    };
    // Its second path would carry the section: the segment alone keeps the test honest.
    sim.drop_contact = [old](std::size_t from, std::size_t, const std::vector<std::uint8_t>&) {
        return from == old;
    };
}

} // namespace

TEST_CASE("one host with another hash seed is refused, naming the key; the cluster stays "
          "converged") {
    Simulator sim(2100, {});
    for (std::uint8_t p = 1; p <= 3; ++p)
        sim.add_host(keyed(p, kKeyA));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    // Same key, so its frames are authentic; its seed is set by hand.
    auto other = keyed(4, kKeyA);
    other.cluster.flow_seed = 0x1234;
    other.cluster.flow_seed_source = SeedSource::config;
    const auto j = sim.add_host(other);
    sim.run_until(sim.now() + 5 * kPeriod);
    const auto before = convergences(sim.host(0));
    sim.run_until(sim.now() + 30 * kPeriod);
    const auto& refused = *sim.host(j).engine;
    CHECK(refused.state() == HostState::refused);
    CHECK(refused.refuse_reason() == RefuseReason::rules_differ);
    CHECK(refused.refuse_detail().find("cluster.hash_seed is set by cluster.hash_seed here, "
                                       "derived from cluster.key_file on host ") !=
          std::string::npos);
    CHECK(refusals(sim.host(0))
              .find("host 4 refused: cluster.hash_seed is derived from "
                    "cluster.key_file here, set by cluster.hash_seed on host "
                    "4") != std::string::npos);
    CHECK(convergences(sim.host(0)) == before);
    CHECK(sim.settled());
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("a host that signs with the other key of a rotation has another seed: refused, "
          "naming the seed") {
    // Hosts 1-3 sign with A and accept B; host 4 already signs with B. Everybody reads
    // everybody's frames, but host 4 would put packets in other buckets.
    Simulator sim(2200, {});
    for (std::uint8_t p = 1; p <= 3; ++p) {
        auto c = keyed(p, kKeyA);
        c.cluster.rotation_key = kKeyB;
        sim.add_host(c);
    }
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto rotated = keyed(4, kKeyB);
    rotated.cluster.rotation_key = kKeyA;
    const auto j = sim.add_host(rotated);
    sim.run_until(sim.now() + 30 * kPeriod);
    const auto& h = *sim.host(j).engine;
    CHECK(h.state() == HostState::refused);
    CHECK(h.refuse_reason() == RefuseReason::rules_differ);
    CHECK(h.refuse_detail().find("cluster.hash_seed is derived from cluster.key_file here and "
                                 "on host ") != std::string::npos);
    CHECK(h.refuse_detail().find("from another key") != std::string::npos);
    CHECK(sim.host(0).engine->counters().bad_mac == 0);
    CHECK(sim.settled());
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("hosts on the fixed seed agree with a version that sends no seed") {
    Simulator sim(2300, {});
    for (std::uint8_t p = 1; p <= 3; ++p)
        sim.add_host(default_config(p));
    as_old_version(sim, 2);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    CHECK(sim.host(0).engine->members() == 0b111);
    CHECK(refusals(sim.host(0)).empty());
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("a version that sends no seed hashes with the fixed one: named against another seed") {
    Simulator sim(2400, {});
    for (std::uint8_t p = 1; p <= 3; ++p)
        sim.add_host(seeded(p, 0x1234));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    const auto j = sim.add_host(default_config(4));
    as_old_version(sim, j);
    sim.run_until(sim.now() + 30 * kPeriod);
    CHECK(refusals(sim.host(0))
              .find("host 4 refused: cluster.hash_seed is set by "
                    "cluster.hash_seed here, the fixed default on host 4 (a "
                    "version without per-cluster seeds)") != std::string::npos);
    // The host itself reads the others' seed section: it names their source.
    CHECK(sim.host(j).engine->state() == HostState::refused);
    CHECK(sim.host(j).engine->refuse_detail().find(
              "cluster.hash_seed is the fixed default here, set by cluster.hash_seed on host ") !=
          std::string::npos);
    CHECK(sim.settled());
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("a rolling upgrade of a keyed cluster: upgraded hosts take the fixed seed the cluster "
          "runs, one at a time, never refused") {
    // Three keyed hosts of a release before per-cluster seeds (no seed section: they hash
    // with the fixed seed). Each is replaced by this version, whose seed would come from the
    // key: it takes the fixed seed before it serves, and so does every later one, since the
    // upgraded hosts now publish the fixed seed themselves.
    Simulator sim(2500, {});
    std::vector<std::size_t> old_hosts;
    for (std::uint8_t p = 1; p <= 3; ++p) {
        auto c = default_config(p);
        c.cluster.key = kKeyA; // the old version's seed: fixed, whatever its key
        old_hosts.push_back(sim.add_host(c));
    }
    std::vector<bool> old(8, false);
    for (auto h : old_hosts)
        old[h] = true;
    sim.rewrite = [&old](std::size_t from, std::size_t, const std::vector<std::uint8_t>& f) {
        return old[from] ? without_seed(f, kKeyA) : f;
    };
    sim.drop_contact = [&old](std::size_t from, std::size_t, const std::vector<std::uint8_t>&) {
        return old[from];
    };
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    sim.reset_double_stats();
    for (std::uint8_t p = 1; p <= 3; ++p) {
        INFO("upgrading host " << int(p));
        sim.command(old_hosts[p - 1], {CommandKind::stop, -1});
        sim.run_until(sim.now() + 2 * kPeriod);
        sim.kill(old_hosts[p - 1]);
        const auto j = sim.add_host(keyed(p, kKeyA));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, sim.now() + 30 * kPeriod));
        const auto& e = *sim.host(j).engine;
        CHECK(e.members() == 0b111);
        CHECK(e.config().cluster.flow_seed == NLB_FLOW_SEED);
        CHECK(e.config().cluster.flow_seed_source == SeedSource::fixed);
        CHECK(std::any_of(sim.host(j).events.begin(), sim.host(j).events.end(),
                          [](const Event& ev) { return ev.kind == EventKind::seed_inherited; }));
        // Its first frames, sent before it heard anyone, carry its own seed: the others
        // may refuse it for that moment (logged), never after.
        for (std::size_t h = 0; h < sim.size(); ++h)
            if (sim.host(h).alive)
                CHECK(sim.host(h).engine->state() == HostState::converged);
    }
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("a keyed host that already serves keeps its own seed: a fixed-seed host is refused") {
    Simulator sim(2600, {});
    for (std::uint8_t p = 1; p <= 2; ++p)
        sim.add_host(keyed(p, kKeyA));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    auto c = default_config(3);
    c.cluster.key = kKeyA;
    const auto j = sim.add_host(c);
    as_old_version(sim, j, kKeyA);
    sim.run_until(sim.now() + 30 * kPeriod);
    CHECK(sim.host(0).engine->config().cluster.flow_seed == flow_seed_from_key(kKeyA));
    CHECK(sim.host(0).engine->members() == 0b011);
    CHECK(sim.host(j).engine->state() == HostState::refused);
    CHECK(sim.max_double_ms() == 0);
}

TEST_CASE("the seed section: round trip, absent, grown by a later version, bad values") {
    Heartbeat hb;
    hb.priority = 3;
    hb.cluster_ip = 0xc0000264;
    hb.has_config = true;
    hb.has_seed = true;
    hb.seed_digest = flow_seed_digest(hb.cluster_ip, 0x1234);
    hb.seed_source = SeedSource::config;
    auto frame = encode_heartbeat(hb);
    auto d = decode_heartbeat(frame);
    REQUIRE(d.heartbeat);
    CHECK(*d.heartbeat == hb);

    hb.has_seed = false;
    auto without = encode_heartbeat(hb);
    CHECK(without.size() + 16 == frame.size()); // section header + 12 bytes
    d = decode_heartbeat(without);
    REQUIRE(d.heartbeat);
    CHECK_FALSE(d.heartbeat->has_seed);

    // A section appended by hand to the seedless frame (unauthenticated: nothing to re-sign).
    auto with_section = [&](std::vector<std::uint8_t> body) {
        auto f = without;
        f.push_back(kSectionSeed);
        f.push_back(0);
        f.push_back(static_cast<std::uint8_t>(body.size() >> 8));
        f.push_back(static_cast<std::uint8_t>(body.size()));
        f.insert(f.end(), body.begin(), body.end());
        f[8] = static_cast<std::uint8_t>(f.size() >> 8);
        f[9] = static_cast<std::uint8_t>(f.size());
        return decode_heartbeat(f);
    };
    const std::vector<std::uint8_t> digest = {1, 2, 3, 4, 5, 6, 7, 8};
    auto body = [&](std::uint8_t source, std::size_t extra) {
        auto b = digest;
        b.push_back(source);
        b.resize(b.size() + 3 + extra, 0);
        return b;
    };
    auto grown = with_section(body(2, 4));
    REQUIRE(grown.heartbeat);
    CHECK(grown.heartbeat->has_seed);
    CHECK(grown.heartbeat->seed_digest == 0x0102030405060708u);
    CHECK(grown.heartbeat->seed_source == SeedSource::config);
    CHECK(with_section(body(3, 0)).error == DecodeError::bad_field);
    auto short_body = body(1, 0);
    short_body.pop_back();
    CHECK(with_section(short_body).error == DecodeError::bad_length);
    CHECK(with_section(std::vector<std::uint8_t>(12, 0)).error == DecodeError::bad_field);
}

TEST_CASE("the fingerprint covers the seed, and the fixed seed leaves it as it was") {
    const auto rules = default_config(1).rules;
    // Pinned: a host on the fixed seed must fingerprint its rules as versions before
    // per-cluster seeds did, or it would refuse them.
    CHECK(rules_fingerprint(rules, NLB_FLOW_SEED) == 0x5ae95f9b2c6f9729u);
    CHECK(rules_fingerprint(rules, 0x1234) != rules_fingerprint(rules, NLB_FLOW_SEED));
    CHECK(rules_fingerprint(rules, 0x1234) != rules_fingerprint(rules, 0x1235));
}

TEST_CASE("a key's seed: pinned, its own, never 0; the digest hides it per cluster") {
    // Pinned like the bucket hash: hosts of two versions with one key must derive one seed.
    CHECK(flow_seed_from_key(kKeyA) == 0x303f5cedu); // the openssl recipe of docs/config.md
    CHECK(flow_seed_from_key(kKeyB) != flow_seed_from_key(kKeyA));
    CHECK(flow_seed_from_key(kKeyA) == flow_seed_from_key(std::vector<std::uint8_t>(kKeyA)));
    CHECK(flow_seed_digest(0xc0000264, 5) == flow_seed_digest(0xc0000264, 5));
    CHECK(flow_seed_digest(0xc0000264, 5) != flow_seed_digest(0xc0000264, 6));
    CHECK(flow_seed_digest(0xc0000264, 5) != flow_seed_digest(0xc0000265, 5));
}

} // namespace test_hash_seed
