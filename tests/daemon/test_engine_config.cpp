// The engine's configuration derived from the agent's, and the cluster key file.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <catch2/catch.hpp>

#include "engine_config.hpp"

using namespace nlb;

namespace {

std::string temp_file(const std::string& content) {
    char path[] = "/tmp/nlb-key-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(path) << content;
    return path;
}

} // namespace

TEST_CASE("rules, weights and the key reach the engine") {
    std::string key = temp_file(std::string(64, 'a') + "\n");
    Config c = parse_config(R"({
      "cluster": {"ip": "192.0.2.100", "vips": ["2001:db8::1"], "key_file": ")" +
                            key + R"(",
                  "heartbeat_ms": 200, "peers": ["192.0.2.12", "192.0.2.13"]},
      "host": {"priority": 3, "dedicated_ip": "192.0.2.13"},
      "port_rules": [
        {"vip": "all", "ports": [80, 80], "protocol": "tcp", "mode": "multiple",
         "affinity": "none", "load_weight": 30},
        {"vip": "2001:db8::1", "ports": [53, 53], "protocol": "udp", "mode": "single",
         "handling_priority": 2}]})");
    EngineConfig e = engine_config_of(c);
    CHECK(e.cluster.ip == 0xc0000264u);
    CHECK(e.cluster.heartbeat_ms == 200);
    CHECK(e.cluster.key == std::vector<std::uint8_t>(32, 0xaa));
    CHECK(e.host.priority == 3);
    REQUIRE(e.rules.size() == 2);
    CHECK(e.rules[0].vip.family == 0);
    CHECK(e.rules[0].protocol == Protocol::tcp);
    CHECK(e.rules[0].affinity == Affinity::none);
    CHECK(e.host.rules[0].load_weight == 30);
    CHECK(e.rules[1].vip.family == 6);
    CHECK(e.rules[1].mode == RuleMode::single);
    CHECK(e.host.rules[1].handling_priority == 2);
    // The second path's addresses: where this host answers, and where the listed peers do.
    CHECK(e.host.contact.family == 4);
    CHECK(e.host.contact.port == NLB_CONTACT_PORT);
    REQUIRE(e.host.peers.size() == 2);
    CHECK(e.host.peers[0].family == 4);
    CHECK(e.host.peers[0].port == NLB_CONTACT_PORT);
    CHECK(std::vector<std::uint8_t>(e.host.peers[0].address.begin(),
                                    e.host.peers[0].address.begin() + 4) ==
          std::vector<std::uint8_t>{192, 0, 2, 12});
    CHECK(e.host.peers[1] == e.host.contact); // its own, skipped when sending
    CHECK(validate(e).empty());
    std::remove(key.c_str());
}

TEST_CASE("a bad key file is refused naming the key") {
    std::string shortkey = temp_file("abcd\n");
    CHECK_THROWS_WITH(read_key_file(shortkey),
                      Catch::Contains("cluster.key_file") && Catch::Contains("hex digits"));
    CHECK_THROWS_WITH(read_key_file("/nonexistent/key"),
                      Catch::Contains("cluster.key_file: /nonexistent/key"));
    std::remove(shortkey.c_str());
}

TEST_CASE("the rotation key reaches the engine; key file errors name their key") {
    std::string key = temp_file(std::string(64, 'a') + "\n");
    std::string rotation = temp_file(std::string(64, 'b') + "\n");
    Config c = parse_config(R"({"cluster": {"ip": "192.0.2.100", "key_file": ")" + key +
                            R"(", "rotation_key_file": ")" + rotation + R"("},
      "host": {"priority": 1, "dedicated_ip": "192.0.2.11"}})");
    EngineConfig e = engine_config_of(c);
    CHECK(e.cluster.key == std::vector<std::uint8_t>(32, 0xaa));
    CHECK(e.cluster.rotation_key == std::vector<std::uint8_t>(32, 0xbb));
    CHECK(engine_config_of(parse_config(R"({"cluster": {"ip": "192.0.2.100", "key_file": ")" +
                                        key + R"("}, "host": {"priority": 1,
                                        "dedicated_ip": "192.0.2.11"}})"))
              .cluster.rotation_key.empty());

    // A key others can read is refused, naming the key, the file and the fix.
    ::chmod(rotation.c_str(), 0644);
    CHECK_THROWS_WITH(engine_config_of(c), "cluster.rotation_key_file: " + rotation +
                                               " is readable by group or others: chmod 600 " +
                                               rotation);
    ::chmod(key.c_str(), 0660);
    CHECK_THROWS_WITH(engine_config_of(c), "cluster.key_file: " + key +
                                               " is readable by group or others: chmod 600 " +
                                               key);
    std::remove(key.c_str());
    std::remove(rotation.c_str());
}

TEST_CASE("the hash seed: the key's own, the same for the same key, never the rotation key's") {
    std::string key_a = temp_file(std::string(64, 'a') + "\n");
    std::string key_a2 = temp_file(std::string(64, 'a') + "\n"); // another file, same key
    std::string key_b = temp_file(std::string(64, 'b') + "\n");
    auto seed_of = [](const std::string& cluster) {
        return engine_config_of(parse_config(R"({"cluster": {"ip": "192.0.2.100")" + cluster +
                                             R"(}, "host": {"priority": 1,
                                             "dedicated_ip": "192.0.2.11"}})"))
            .cluster;
    };
    const auto a = seed_of(R"(, "key_file": ")" + key_a + "\"");
    const auto a2 = seed_of(R"(, "key_file": ")" + key_a2 + "\"");
    const auto b = seed_of(R"(, "key_file": ")" + key_b + "\"");
    CHECK(a.flow_seed_source == SeedSource::key);
    CHECK(a.flow_seed == flow_seed_from_key(std::vector<std::uint8_t>(32, 0xaa)));
    CHECK(a.flow_seed == a2.flow_seed);
    CHECK(a.flow_seed != b.flow_seed);
    CHECK(a.flow_seed != NLB_FLOW_SEED);
    CHECK(b.flow_seed != NLB_FLOW_SEED);

    // Mid-rotation: the seed follows key_file alone. Accepting another key changes nothing;
    // signing with the other one changes the seed (docs/config.md, "Rotating the cluster key").
    const auto accepting =
        seed_of(R"(, "key_file": ")" + key_a + R"(", "rotation_key_file": ")" + key_b + "\"");
    const auto swapped =
        seed_of(R"(, "key_file": ")" + key_b + R"(", "rotation_key_file": ")" + key_a + "\"");
    CHECK(accepting.flow_seed == a.flow_seed);
    CHECK(swapped.flow_seed == b.flow_seed);

    // No key: the fixed seed every version before per-cluster seeds hashed with.
    const auto none = seed_of("");
    CHECK(none.flow_seed == NLB_FLOW_SEED);
    CHECK(none.flow_seed_source == SeedSource::fixed);

    // cluster.hash_seed wins, with a key or without.
    const auto set = seed_of(R"(, "key_file": ")" + key_a + R"(", "hash_seed": 1852596785)");
    CHECK(set.flow_seed == NLB_FLOW_SEED);
    CHECK(set.flow_seed_source == SeedSource::config);
    CHECK(seed_of(R"(, "hash_seed": 7)").flow_seed == 7);
    for (const auto& k : {key_a, key_a2, key_b})
        std::remove(k.c_str());
}
