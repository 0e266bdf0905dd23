// Writes the fuzzer's seed corpus: valid heartbeats of every shape (states, rule counts,
// dirty encodings, base maps, hash seeds, staged sets, signed and not), map chunks and
// encoded maps, one file each, into the directory given.
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "heartbeat_auth.hpp"
#include "heartbeat_codec.hpp"
#include "map_transfer.hpp"

using namespace nlb;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    std::mt19937_64 rng(1);
    const HeartbeatAuth auth(std::vector<std::uint8_t>(32, 0x5a));
    int n = 0;
    for (int i = 0; i < 24; ++i) {
        Heartbeat hb;
        hb.cluster_ip = i % 6 == 5 ? 0x0a000001 : 0xc0000264;
        hb.priority = static_cast<std::uint8_t>(1 + rng() % 64);
        hb.state = static_cast<HostState>(i % 6);
        hb.reason = static_cast<RefuseReason>(i % 3);
        hb.rule_count = static_cast<std::uint8_t>(i % 33);
        hb.nonce = rng();
        hb.sequence = 1 + rng() % 1000;
        hb.fingerprint = rng();
        hb.view = rng();
        hb.view_digest = rng();
        hb.claim = i % 2 ? rng() : 0;
        hb.claim_members = hb.view;
        hb.map_digest = rng();
        hb.connections = rng() % 100000;
        hb.score = rng() % 1000000;
        hb.flags = i % 2 ? Heartbeat::kFlagAuthenticated : 0;
        if (i % 3 != 0) {
            hb.base_digest = rng() | 1;
            hb.base_generation = 1 + static_cast<std::uint32_t>(rng() % 100);
            hb.base_flags = i % 3 == 2 ? Heartbeat::kBaseGiveUp : 0;
        }
        if (i % 4 == 1) {
            hb.has_seed = true;
            hb.seed_digest = hb.view_digest | 1; // no rng(): the other frames stay as they were
            hb.seed_source = static_cast<SeedSource>(i % 3);
        }
        if (i % 5 == 2) { // staged configuration; no rng(): the other frames stay as they were
            hb.staged = hb.fingerprint ^ hb.view;
            hb.switched_from = i % 2 ? hb.map_digest : 0;
        }
        for (std::size_t r = 0; r < hb.rule_count; ++r) {
            hb.rules[r] = {static_cast<std::uint8_t>(rng() % 2 ? 0xff : rng() % 101),
                           static_cast<std::uint8_t>(rng())};
            hb.control[r] = static_cast<RuleControl>(rng() % 3);
        }
        const int dirty_slots = i % 4 == 0 ? 0 : i % 4 == 3 ? 33 : 1 + i % 3;
        for (int s = 0; s < dirty_slots; ++s) {
            DirtySlot d{static_cast<std::uint8_t>(s), {}};
            const auto density = 1 + rng() % (i % 4 == 3 ? 3 : 200);
            for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
                if (rng() % density == 0)
                    d.buckets.set(b);
            hb.dirty.push_back(d);
        }
        auto frame = encode_heartbeat(hb);
        auth.sign(frame);
        std::ofstream(dir + "/hb-" + std::to_string(n++), std::ios::binary)
            .write(reinterpret_cast<const char*>(frame.data()),
                   static_cast<std::streamsize>(frame.size()));
    }
    auto write = [&](const std::string& name, const std::vector<std::uint8_t>& bytes) {
        std::ofstream(dir + "/" + name, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::streamsize>(bytes.size()));
    };
    // The largest frame: 64 hosts, every section, every slot dirty; its dirty section has
    // slots whole (format 2). Its own generator: the frames above stay as they were.
    {
        std::mt19937_64 big(2);
        Heartbeat hb;
        hb.flags = Heartbeat::kFlagAuthenticated;
        hb.cluster_ip = 0xc0000264;
        hb.priority = 9;
        hb.state = HostState::converging;
        hb.rule_count = NLB_MAX_RULES;
        hb.nonce = big();
        hb.sequence = 77;
        hb.has_contact = hb.has_acks = hb.has_config = hb.has_health = hb.has_want = true;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            hb.echoes.push_back({p, Heartbeat::kPathSegment, big()}); // 9: a second host
            if (p != hb.priority)
                hb.acks.push_back({p, static_cast<std::uint16_t>(big())});
        }
        hb.has_seed = true;
        hb.seed_digest = big() | 1;
        hb.load_rules = 0xffffffff;
        for (auto& l : hb.loads)
            l = static_cast<std::uint32_t>(big() % 100000);
        hb.staged = big();
        hb.switched_from = big();
        hb.outside_owners = 0x30;
        hb.grace_owners = 0xc0;
        hb.grace_left_ms = 2500;
        hb.mtu = 1450;
        for (std::uint8_t s = 0; s < NLB_RULE_SLOTS; ++s) {
            DirtySlot d{s, {}};
            for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
                if (big() % 50 == 0)
                    d.buckets.set(b);
            hb.dirty.push_back(d);
        }
        auto frame = encode_heartbeat(hb);
        auth.sign(frame);
        write("hb-largest", frame);
        ++n;
    }
    // Maps of every slot kind, and their chunks (signed and not).
    for (int i = 0; i < 4; ++i) {
        ClusterMap m;
        for (std::size_t s = 0; s < static_cast<std::size_t>(1 + i); ++s)
            for (auto& o : m.slots[s])
                o = static_cast<std::uint8_t>(i == 3 ? rng() % 65 : 1 + rng() % 64);
        m.slots[4] = m.slots[0];
        m.slots[NLB_RULE_DEFAULT].fill(static_cast<std::uint8_t>(1 + i));
        const auto encoded = encode_map(m);
        write("map-" + std::to_string(i), encoded);
        ++n;
        for (std::size_t k = 0; k < chunk_count(encoded.size()); ++k) {
            MapChunk c;
            c.flags = k % 2 ? Heartbeat::kFlagAuthenticated : 0;
            c.cluster_ip = 0xc0000264;
            c.priority = static_cast<std::uint8_t>(1 + rng() % 64);
            c.nonce = rng();
            c.sequence = 1 + k;
            c.map_digest = m.digest();
            c.generation = static_cast<std::uint32_t>(1 + i);
            c.map_size = static_cast<std::uint32_t>(encoded.size());
            c.index = static_cast<std::uint16_t>(k);
            c.count = static_cast<std::uint16_t>(chunk_count(encoded.size()));
            const auto d = chunk_data(encoded, k);
            c.data.assign(d.begin(), d.end());
            auto frame = encode_map_chunk(c);
            auth.sign(frame);
            write("chunk-" + std::to_string(i) + "-" + std::to_string(k), frame);
            ++n;
        }
    }
    std::printf("%d frames written to %s\n", n, dir.c_str());
    return 0;
}
