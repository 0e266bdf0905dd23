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
      "cluster": {"ip": "192.0.2.100", "vips": ["2001:db8::1"], "key_file": ")" + key + R"(",
                  "heartbeat_ms": 200},
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
