// Remote control's datagrams: a signed request passes once; every kind of bad datagram is
// dropped for its own reason, in the documented order (cheap checks first, so that no HMAC
// is computed for a datagram a size or header check already refuses); answers are checked
// against the request's nonce; answers are shaped to fit one datagram.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <unistd.h>

#include "remote_protocol.hpp"

using namespace nlb::remote;
using nlohmann::json;

namespace {

const std::vector<std::uint8_t> kKeyBytes(32, 0x42);
const std::vector<std::uint8_t> kRotationBytes(32, 0x99);
const std::uint32_t kCluster = htonl(0x0a0a0064); // 10.10.0.100
constexpr std::int64_t kNow = 1'700'000'000'000;
const Endpoint kAdmin{htonl(0x0a0a0101), 40000}; // nlbadm at 10.10.1.1:40000

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
    h.reply = kAdmin;
    return h;
}

std::vector<std::uint8_t> request(const std::string& payload = R"({"command":"query"})",
                                  Header h = request_header()) {
    return encode(h, payload, ClusterKey(kKeyBytes));
}

Drop check(const std::vector<std::uint8_t>& d, ReplayGuard& guard, std::uint8_t me = 1,
           std::int64_t now = kNow, const Endpoint& from = kAdmin) {
    return check_request(d, from, kCluster, me, HostKeys(ClusterKey(kKeyBytes)), now, guard).drop;
}

} // namespace

TEST_CASE("a signed request passes with its header and payload") {
    ReplayGuard guard(kWindowMs);
    const std::string payload = R"({"command":"enable","port":80,"vip":"10.10.0.101"})";
    auto d = request(payload, request_header(2));
    CHECK(d.size() == kHeaderSize + payload.size() + kMacSize);
    Received r =
        check_request(d, kAdmin, kCluster, 2, HostKeys(ClusterKey(kKeyBytes)), kNow, guard);
    REQUIRE(r.drop == Drop::none);
    CHECK(r.header.type == Type::request);
    CHECK(r.header.priority == 2);
    CHECK(r.header.cluster_ip == kCluster);
    CHECK(r.header.timestamp_ms == kNow);
    CHECK(r.header.nonce == nonce_of(1));
    CHECK(r.header.reply == kAdmin);
    CHECK(r.signed_with == HostKeys::Which::cluster);
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
    CHECK(std::vector<std::uint8_t>(d.begin() + 36, d.begin() + 44) ==
          std::vector<std::uint8_t>{10, 10, 1, 1, 0x9c, 0x40, 0, 0}); // 10.10.1.1, port 40000
    CHECK(d[44] == '{');
    CHECK(d.size() == 44 + 2 + 32);
    CHECK(kVersion == 2);
}

TEST_CASE("the reply address: a request is run only when it comes from the address it names") {
    ReplayGuard guard(kWindowMs);
    auto d = request();
    // Another port, another address: someone else sent it, or a NAT rewrote the source.
    CHECK(check(d, guard, 1, kNow, Endpoint{kAdmin.ip, 40001}) == Drop::wrong_source);
    CHECK(check(d, guard, 1, kNow, Endpoint{htonl(0x0a0a0102), 40000}) == Drop::wrong_source);
    // Checked before the MAC, and before the nonce is used up: the genuine one still runs.
    CHECK(guard.size() == 0);
    CHECK(check(d, guard) == Drop::none);
    // The address is signed: rewriting it to match a forged source breaks the MAC.
    auto moved = d;
    moved[41] ^= 1;
    CHECK(check(moved, guard, 1, kNow, Endpoint{kAdmin.ip, 40001}) == Drop::bad_mac);
}

TEST_CASE("the rotation key: requests signed with either key pass, and say which") {
    const HostKeys both{ClusterKey(kKeyBytes), ClusterKey(kRotationBytes)};
    ReplayGuard guard(kWindowMs);
    auto by_rotation =
        encode(request_header(0, kNow, 1), R"({"command":"query"})", ClusterKey(kRotationBytes));
    Received r = check_request(by_rotation, kAdmin, kCluster, 1, both, kNow, guard);
    REQUIRE(r.drop == Drop::none);
    CHECK(r.signed_with == HostKeys::Which::rotation);
    // The answer is signed with that key: nlbadm, holding only the new key, can check it.
    CHECK(&both[r.signed_with] == &*both.rotation);
    auto by_cluster = request(R"({"command":"query"})", request_header(0, kNow, 2));
    Received c = check_request(by_cluster, kAdmin, kCluster, 1, both, kNow, guard);
    REQUIRE(c.drop == Drop::none);
    CHECK(c.signed_with == HostKeys::Which::cluster);
    CHECK(&both[c.signed_with] == &both.cluster);
    // Either way a copy is a replay: one replay memory for both keys.
    CHECK(check_request(by_rotation, kAdmin, kCluster, 1, both, kNow, guard).drop == Drop::replay);
    // Without the rotation key, its requests are forgeries.
    CHECK(check(by_rotation, guard) == Drop::bad_mac);
    // A third key is not accepted.
    auto by_other = encode(request_header(0, kNow, 3), R"({"command":"query"})",
                           ClusterKey(std::vector<std::uint8_t>(32, 0x17)));
    CHECK(check_request(by_other, kAdmin, kCluster, 1, both, kNow, guard).drop == Drop::bad_mac);
}

TEST_CASE("every drop reason") {
    ReplayGuard guard(kWindowMs);
    ClusterKey key(kKeyBytes);

    SECTION("oversize: a request over the limit, even correctly signed") {
        std::string big = R"({"command":"query","pad":")" + std::string(1000, 'x') + "\"}";
        CHECK(check(request(big), guard) == Drop::oversize);
        CHECK(guard.size() == 0);
    }
    SECTION("malformed: too short, bad magic, type, reserved bytes") {
        auto d = request();
        CHECK(check({d.begin(), d.begin() + kHeaderSize + kMacSize - 1}, guard) == Drop::malformed);
        CHECK(check({}, guard) == Drop::malformed);
        CHECK(check({'N', 'L', 'B', 'R'}, guard) == Drop::malformed);
        for (std::size_t at : {0, 3, 5, 7, 42, 43}) {
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
    SECTION("version: another protocol's request, whatever its length") {
        auto d = request();
        for (std::uint8_t v : {0, 1, 3, 255}) {
            auto other = d;
            other[4] = v;
            CAPTURE(v);
            CHECK(check(other, guard) == Drop::version);
        }
        // A version 1 request as the previous nlbadm sent it: 36-byte header, no reply address.
        std::vector<std::uint8_t> v1 = {'N', 'L', 'B', 'R', 1, 1, 0, 0, 10, 10, 0, 100};
        v1.resize(36 + 19 + 32);
        CHECK(check(v1, guard) == Drop::version);
        CHECK(check({'N', 'L', 'B', 'R', 1}, guard) == Drop::version);
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
        for (std::size_t at : {6, 12, 20, 45, 60}) {
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
    SECTION("before start: at or before the floor a restarted host's replay memory keeps") {
        const std::string state = "/tmp/nlb-test-remote-state-" + std::to_string(::getpid());
        ::unlink(state.c_str());
        ReplayGuard restarted(kWindowMs, state, kNow);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow, 1)), restarted) ==
              Drop::before_start);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow + 1, 2)), restarted) ==
              Drop::none);
        ::unlink(state.c_str());
    }
    SECTION("unsaved: the floor cannot be written, so the request does not run") {
        ReplayGuard unwritable(kWindowMs, "/nonexistent/dir/state", kNow);
        CHECK(check(request(R"({"command":"query"})", request_header(0, kNow + 1, 1)),
                    unwritable) == Drop::unsaved);
        CHECK(unwritable.size() == 0);
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
    h.reply = kAdmin;
    std::string payload = answer_payload("query", {{"ok", true}, {"result", {{"x", 1}}}},
                                         Responder{3, "10.10.0.13", {1, 2, 3}});
    auto d = encode(h, payload, key);

    Received r = check_answer(d, kCluster, nonce_of(5), kAdmin, 0, key);
    REQUIRE(r.drop == Drop::none);
    CHECK(r.header.priority == 3);
    CHECK(r.payload["ok"] == true);
    CHECK(r.payload["result"]["x"] == 1);
    CHECK(r.payload["host"] == json{{"priority", 3}, {"address", "10.10.0.13"}});
    CHECK(r.payload["members"] == json{1, 2, 3});
    CHECK(r.header.reply == kAdmin);
    // An answer meant for another nlbadm (another socket) is not ours, whatever it says.
    CHECK(check_answer(d, kCluster, nonce_of(5), Endpoint{kAdmin.ip, 40001}, 0, key).drop ==
          Drop::wrong_source);

    CHECK(check_answer(d, kCluster, nonce_of(5), kAdmin, 3, key).drop == Drop::none);
    CHECK(check_answer(d, kCluster, nonce_of(6), kAdmin, 0, key).drop == Drop::replay);
    CHECK(check_answer(d, kCluster, nonce_of(5), kAdmin, 2, key).drop == Drop::other_host);
    CHECK(check_answer(d, htonl(0x0a0a0065), nonce_of(5), kAdmin, 0, key).drop ==
          Drop::other_cluster);
    CHECK(
        check_answer(d, kCluster, nonce_of(5), kAdmin, 0, ClusterKey(std::vector<std::uint8_t>(32)))
            .drop == Drop::bad_mac);
    // A request (or a request reflected back) is no answer.
    Header rq = h;
    rq.type = Type::request;
    CHECK(check_answer(encode(rq, payload, key), kCluster, nonce_of(5), kAdmin, 0, key).drop ==
          Drop::malformed);
    h.priority = 0;
    CHECK(check_answer(encode(h, payload, key), kCluster, nonce_of(5), kAdmin, 0, key).drop ==
          Drop::other_host);
    h.priority = 3;
    CHECK(check_answer(encode(h, R"({"result":1})", key), kCluster, nonce_of(5), kAdmin, 0, key)
              .drop == Drop::bad_payload);
    std::vector<std::uint8_t> huge(kMaxAnswerSize + 1);
    CHECK(check_answer(huge, kCluster, nonce_of(5), kAdmin, 0, key).drop == Drop::oversize);
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
