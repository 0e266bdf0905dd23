// Remote control's datagrams: a signed request passes once; every kind of bad datagram is
// dropped for its own reason, in the documented order (cheap checks first, so that no HMAC
// is computed for a datagram a size or header check already refuses); answers are checked
// against the request's nonce; answers are shaped to fit one datagram.
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include "remote_protocol.hpp"

using namespace nlb::remote;
using nlohmann::json;

namespace {

const std::vector<std::uint8_t> kKeyBytes(32, 0x42);
const std::uint32_t kCluster = htonl(0x0a0a0064); // 10.10.0.100
constexpr std::int64_t kNow = 1'700'000'000'000;

Nonce nonce_of(std::uint8_t seed) {
    Nonce n{};
    for (std::size_t i = 0; i < n.size(); ++i)
        n[i] = static_cast<std::uint8_t>(seed * 31 + i);
    return n;
}

Header request_header(std::uint8_t target = 0, std::int64_t ts = kNow, std::uint8_t seed = 1) {
    Header h;
    h.type = Type::request;
    h.priority = target;
    h.cluster_ip = kCluster;
    h.timestamp_ms = ts;
    h.nonce = nonce_of(seed);
    return h;
}

std::vector<std::uint8_t> request(const std::string& payload = R"({"command":"query"})",
                                  Header h = request_header()) {
    return encode(h, payload, ClusterKey(kKeyBytes));
}

Drop check(const std::vector<std::uint8_t>& d, ReplayGuard& guard, std::uint8_t me = 1,
           std::int64_t now = kNow) {
    return check_request(d, kCluster, me, ClusterKey(kKeyBytes), now, guard).drop;
}

} // namespace

TEST_CASE("a signed request passes with its header and payload") {
    ReplayGuard guard(kWindowMs);
    const std::string payload = R"({"command":"enable","port":80,"vip":"10.10.0.101"})";
    auto d = request(payload, request_header(2));
    CHECK(d.size() == kHeaderSize + payload.size() + kMacSize);
    Received r = check_request(d, kCluster, 2, ClusterKey(kKeyBytes), kNow, guard);
    REQUIRE(r.drop == Drop::none);
    CHECK(r.header.type == Type::request);
    CHECK(r.header.priority == 2);
    CHECK(r.header.cluster_ip == kCluster);
    CHECK(r.header.timestamp_ms == kNow);
    CHECK(r.header.nonce == nonce_of(1));
    CHECK(r.payload == json{{"command", "enable"}, {"port", 80}, {"vip", "10.10.0.101"}});
}

TEST_CASE("the wire layout is the documented one") {
    auto d = request("{}", request_header(7, 0x0102030405060708));
    CHECK(d[0] == 'N');
    CHECK(d[3] == 'R');
    CHECK(d[4] == kVersion);
    CHECK(d[5] == 1);
    CHECK(d[6] == 7);
    CHECK(d[7] == 0);
    CHECK(std::vector<std::uint8_t>(d.begin() + 8, d.begin() + 12) ==
          std::vector<std::uint8_t>{10, 10, 0, 100});
    CHECK(d[12] == 1);
    CHECK(d[19] == 8);
    CHECK(d[20] == nonce_of(1)[0]);
    CHECK(d[36] == '{');
    CHECK(d.size() == 36 + 2 + 32);
}

TEST_CASE("every drop reason") {
    ReplayGuard guard(kWindowMs);
    ClusterKey key(kKeyBytes);

    SECTION("oversize: a request over the limit, even correctly signed") {
        std::string big = R"({"command":"query","pad":")" + std::string(1000, 'x') + "\"}";
        CHECK(check(request(big), guard) == Drop::oversize);
        CHECK(guard.size() == 0);
    }
    SECTION("malformed: too short, bad magic, version, type, reserved byte") {
        auto d = request();
        CHECK(check({d.begin(), d.begin() + kHeaderSize + kMacSize - 1}, guard) == Drop::malformed);
        CHECK(check({}, guard) == Drop::malformed);
        for (std::size_t at : {0, 4, 5, 7}) {
            auto bad = d;
            bad[at] ^= 0x40;
            CAPTURE(at);
            CHECK(check(bad, guard) == Drop::malformed);
        }
        // An answer sent back at a host is no request.
        Header h = request_header();
        h.type = Type::answer;
        CHECK(check(encode(h, R"({"command":"query"})", key), guard) == Drop::malformed);
    }
    SECTION("other cluster, checked before the MAC") {
        Header h = request_header();
        h.cluster_ip = htonl(0x0a0a0065);
        auto d = encode(h, R"({"command":"query"})", ClusterKey(std::vector<std::uint8_t>(32)));
        CHECK(check(d, guard) == Drop::other_cluster);
    }
    SECTION("bad MAC: another key, a flipped bit anywhere, a truncated MAC") {
        auto other = encode(request_header(), R"({"command":"query"})",
                            ClusterKey(std::vector<std::uint8_t>(32, 0x43)));
        CHECK(check(other, guard) == Drop::bad_mac);
        auto d = request();
        for (std::size_t at : {6, 12, 20, 40, 60}) {
            auto bad = d;
            bad[at] ^= 1;
            CAPTURE(at);
            CHECK(check(bad, guard) == Drop::bad_mac);
        }
        auto bad = d;
        bad.back() ^= 0x80;
        CHECK(check(bad, guard) == Drop::bad_mac);
        d.pop_back();
        CHECK(check(d, guard) == Drop::bad_mac);
        CHECK(guard.size() == 0); // nothing unauthenticated reaches the replay memory
    }
    SECTION("stale: outside the window either way, however far") {
        CHECK(check(request("{}", request_header(0, kNow - kWindowMs - 1, 1)), guard) ==
              Drop::stale);
        CHECK(check(request("{}", request_header(0, kNow + kWindowMs + 1, 2)), guard) ==
              Drop::stale);
        CHECK(check(request("{}", request_header(0, INT64_MIN, 3)), guard) == Drop::stale);
        CHECK(check(request("{}", request_header(0, INT64_MAX, 4)), guard) == Drop::stale);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow - kWindowMs, 5)),
                    guard) == Drop::none);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow + kWindowMs, 6)),
                    guard) == Drop::none);
    }
    SECTION("replay: the same datagram twice, or its nonce in another request") {
        auto d = request();
        CHECK(check(d, guard) == Drop::none);
        CHECK(check(d, guard) == Drop::replay);
        CHECK(check(request(R"({"command":"stop"})"), guard) == Drop::replay);
        CHECK(check(d, guard, 1, kNow + kWindowMs) == Drop::replay);
        CHECK(check(d, guard, 1, kNow + kWindowMs + 1) == Drop::stale);
    }
    SECTION("replay memory full") {
        ReplayGuard small(kWindowMs, 2);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow, 1)), small) ==
              Drop::none);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow, 2)), small) ==
              Drop::none);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow, 3)), small) ==
              Drop::replay_full);
    }
    SECTION("other host: for priority 2, received by 1; the nonce is still used up") {
        auto d = request(R"({"command":"stop"})", request_header(2));
        CHECK(check(d, guard, 1) == Drop::other_host);
        CHECK(check(d, guard, 2) == Drop::replay);
        CHECK(check(request(R"({"command":"stop"})", request_header(1, kNow, 9)), guard, 1) ==
              Drop::none);
    }
    SECTION("bad payload: no JSON, nested, no command, not an object") {
        std::uint8_t seed = 10;
        for (const std::string& p : std::vector<std::string>{
                 "", "{", "not json", R"({"command":"query"} x)", "[]", "\"query\"", "{}",
                 R"({"command":5})", R"({"port":80})", R"({"command":"query","x":{}})",
                 R"({"command":"query","x":[1]})", std::string(400, '[') + std::string(400, ']')}) {
            CAPTURE(p);
            CHECK(check(request(p, request_header(0, kNow, seed++)), guard) == Drop::bad_payload);
        }
    }
}

TEST_CASE("answers: echo the nonce, come from a host, carry a response") {
    ClusterKey key(kKeyBytes);
    Header h;
    h.type = Type::answer;
    h.priority = 3;
    h.cluster_ip = kCluster;
    h.timestamp_ms = kNow;
    h.nonce = nonce_of(5);
    std::string payload = answer_payload("query", {{"ok", true}, {"result", {{"x", 1}}}},
                                         Responder{3, "10.10.0.13", {1, 2, 3}});
    auto d = encode(h, payload, key);

    Received r = check_answer(d, kCluster, nonce_of(5), 0, key);
    REQUIRE(r.drop == Drop::none);
    CHECK(r.header.priority == 3);
    CHECK(r.payload["ok"] == true);
    CHECK(r.payload["result"]["x"] == 1);
    CHECK(r.payload["host"] == json{{"priority", 3}, {"address", "10.10.0.13"}});
    CHECK(r.payload["members"] == json{1, 2, 3});

    CHECK(check_answer(d, kCluster, nonce_of(5), 3, key).drop == Drop::none);
    CHECK(check_answer(d, kCluster, nonce_of(6), 0, key).drop == Drop::replay);
    CHECK(check_answer(d, kCluster, nonce_of(5), 2, key).drop == Drop::other_host);
    CHECK(check_answer(d, htonl(0x0a0a0065), nonce_of(5), 0, key).drop == Drop::other_cluster);
    CHECK(
        check_answer(d, kCluster, nonce_of(5), 0, ClusterKey(std::vector<std::uint8_t>(32))).drop ==
        Drop::bad_mac);
    // A request (or a request reflected back) is no answer.
    Header rq = h;
    rq.type = Type::request;
    CHECK(check_answer(encode(rq, payload, key), kCluster, nonce_of(5), 0, key).drop ==
          Drop::malformed);
    h.priority = 0;
    CHECK(check_answer(encode(h, payload, key), kCluster, nonce_of(5), 0, key).drop ==
          Drop::other_host);
    h.priority = 3;
    CHECK(check_answer(encode(h, R"({"result":1})", key), kCluster, nonce_of(5), 0, key).drop ==
          Drop::bad_payload);
    std::vector<std::uint8_t> huge(kMaxAnswerSize + 1);
    CHECK(check_answer(huge, kCluster, nonce_of(5), 0, key).drop == Drop::oversize);
}

TEST_CASE("answer shaping: map loses its owner arrays, an answer too large becomes an error") {
    Responder me{2, "10.10.0.12", {1, 2}};
    json rules = json::array();
    for (int s = 0; s < 33; ++s)
        rules.push_back({{"slot", s},
                         {"buckets_per_owner", {{"1", 2048}, {"2", 2048}}},
                         {"owners", std::vector<int>(4096, 1)}});
    json map = {{"ok", true}, {"result", {{"rules", rules}}}};
    REQUIRE(map.dump().size() > kMaxAnswerSize);
    json shaped = json::parse(answer_payload("map", map, me));
    CHECK(shaped["ok"] == true);
    REQUIRE(shaped["result"]["rules"].size() == 33);
    CHECK_FALSE(shaped["result"]["rules"][0].contains("owners"));
    CHECK(shaped["result"]["rules"][32]["buckets_per_owner"]["2"] == 2048);
    CHECK(shaped["host"]["priority"] == 2);

    // Anything else too large for a datagram: an error answer that says what to do.
    json params = {{"ok", true}, {"result", {{"blob", std::string(kMaxAnswerSize, 'x')}}}};
    json refused = json::parse(answer_payload("params", params, me));
    CHECK(refused["ok"] == false);
    CHECK(refused["error"].get<std::string>().starts_with(
        "params: answer too large for remote control ("));
    CHECK(refused["error"].get<std::string>().ends_with("run nlbadm params on the host"));
    CHECK(refused["members"] == json{1, 2});

    // What fits is left alone.
    json query = {{"ok", true}, {"result", {{"owners", {1, 2}}}}};
    CHECK(json::parse(answer_payload("query", query, me))["result"]["owners"] == json{1, 2});
}
