// nlbadm --cluster against fake hosts on a loopback UDP socket: every expected host's answer
// is collected, silent hosts are named, refusals and junk are told apart, a lost request is
// resent, --host returns at its host's answer; and what nlbadm prints and exits with.
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <chrono>
#include <sstream>

#include "command_line.hpp"
#include "fake_cluster.hpp"
#include "nlbadm.hpp"
#include "remote_client.hpp"
#include "remote_report.hpp"

using namespace nlb;
using namespace nlb::cli;
using nlb::cli::test::FakeCluster;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const std::vector<std::uint8_t> kKey(32, 0x17);

FakeCluster::Options cluster_of(std::vector<FakeCluster::Host> hosts) {
    FakeCluster::Options o;
    o.cluster_ip = htonl(INADDR_LOOPBACK);
    o.key = kKey;
    o.hosts = std::move(hosts);
    return o;
}

FakeCluster::Host host(int priority, std::vector<int> members = {1, 2, 3}) {
    FakeCluster::Host h;
    h.priority = priority;
    h.address = "10.10.0." + std::to_string(10 + priority);
    h.members = std::move(members);
    return h;
}

RemoteTarget target_of(const FakeCluster& fake, milliseconds timeout = milliseconds(400),
                       std::uint8_t only = 0) {
    RemoteTarget t;
    t.cluster = *IpAddress::parse("127.0.0.1");
    t.port = fake.port();
    t.key = kKey;
    t.host = only;
    t.timeout = timeout;
    return t;
}

struct Timed {
    ClusterAnswers answers;
    milliseconds took{};
};

Timed call(const RemoteTarget& t, const json& request = {{"command", "query"}}) {
    auto start = std::chrono::steady_clock::now();
    Timed r;
    r.answers = call_cluster(t, request);
    r.took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    return r;
}

} // namespace

TEST_CASE("three hosts answer: all collected, nothing missing, done before the timeout") {
    FakeCluster fake(cluster_of({host(1), host(2), host(3)}));
    Timed r = call(target_of(fake, milliseconds(3000)));
    REQUIRE(r.answers.hosts.size() == 3);
    CHECK(r.answers.missing.empty());
    for (int p : {1, 2, 3}) {
        CHECK(r.answers.hosts[p].ok);
        CHECK(r.answers.hosts[p].address == "10.10.0." + std::to_string(10 + p));
        CHECK(r.answers.hosts[p].result == json{{"host", p}});
    }
    // Complete, then only the short wait for hosts nobody named: far below the 3 s timeout.
    CHECK(r.took < milliseconds(1500));
    CHECK(fake.datagrams() == 1); // complete before any resend
    CHECK(remote_exit_code(r.answers) == kExitOk);
    CHECK(remote_errors(r.answers, target_of(fake)).empty());
}

TEST_CASE("the request names its own source as the reply address") {
    FakeCluster fake(cluster_of({host(1)}));
    Timed r = call(target_of(fake, milliseconds(2000), 1));
    REQUIRE(r.answers.hosts.size() == 1);
    const auto [reply, source] = fake.last_reply_and_source();
    CHECK(reply == source);
    CHECK(reply >> 16 == INADDR_LOOPBACK); // the address routing picks for 127.0.0.1
    CHECK((reply & 0xffff) != 0);
}

TEST_CASE("a member that does not answer is named, after the timeout") {
    auto silent = host(3);
    silent.silent = true;
    FakeCluster fake(cluster_of({host(1), host(2), silent}));
    Timed r = call(target_of(fake, milliseconds(400)));
    CHECK(r.answers.hosts.size() == 2);
    CHECK(r.answers.missing == std::set<int>{3});
    CHECK(r.took >= milliseconds(400));
    CHECK(fake.datagrams() == 3); // sent, then resent twice while host 3 was missing
    CHECK(remote_exit_code(r.answers) == kExitUnreachable);
    CHECK(remote_errors(r.answers, target_of(fake)) ==
          "nlbadm: no answer from host 3 within 400 ms\n");
    CHECK(remote_json(r.answers)["missing"] == json{3});
}

TEST_CASE("a host nobody lists as a member (stopped) is shown when it answers") {
    FakeCluster fake(cluster_of({host(1, {1, 2}), host(2, {1, 2}), host(4, {})}));
    Timed r = call(target_of(fake, milliseconds(2000)));
    CHECK(r.answers.hosts.size() == 3);
    CHECK(r.answers.hosts.count(4) == 1);
    CHECK(r.answers.missing.empty());
}

TEST_CASE("a refusal is an answer: exit 1, the host's error on stderr and in the JSON") {
    auto refusing = host(2);
    refusing.ok = false;
    FakeCluster fake(cluster_of({host(1), refusing, host(3)}));
    Timed r = call(target_of(fake, milliseconds(2000)), {{"command", "drainstop"}});
    REQUIRE(r.answers.hosts.size() == 3);
    CHECK_FALSE(r.answers.hosts[2].ok);
    CHECK(remote_exit_code(r.answers) == kExitRefused);
    CHECK(remote_errors(r.answers, target_of(fake)) ==
          "nlbadm: host 2 (10.10.0.12): drainstop: refused by host 2\n");
    json doc = remote_json(r.answers);
    CHECK(doc["hosts"].size() == 2);
    CHECK(doc["errors"] == json{{"2", "drainstop: refused by host 2"}});
    CHECK(doc["missing"] == json::array());
}

TEST_CASE("--host: only that host answers, and nlbadm returns at its answer") {
    FakeCluster fake(cluster_of({host(1), host(2), host(3)}));
    Timed r = call(target_of(fake, milliseconds(3000), 2), {{"command", "drainstop"}});
    REQUIRE(r.answers.hosts.size() == 1);
    CHECK(r.answers.hosts.count(2) == 1);
    CHECK(r.answers.missing.empty());
    CHECK(r.took < milliseconds(1000));

    auto silent = host(2);
    silent.silent = true;
    FakeCluster quiet(cluster_of({host(1), silent, host(3)}));
    Timed q = call(target_of(quiet, milliseconds(300), 2));
    CHECK(q.answers.hosts.empty());
    CHECK(q.answers.missing == std::set<int>{2});
    CHECK(remote_exit_code(q.answers) == kExitUnreachable);
    CHECK(remote_errors(q.answers, target_of(quiet, milliseconds(300), 2)) ==
          "nlbadm: host 2 of cluster 127.0.0.1 did not answer within 300 ms (is "
          "cluster.remote_control on, the key the cluster's, UDP " +
              std::to_string(quiet.port()) + " reachable?)\n");
}

TEST_CASE("a lost request is resent within the timeout") {
    auto o = cluster_of({host(1), host(2), host(3)});
    o.lose_first = 1;
    FakeCluster fake(o);
    Timed r = call(target_of(fake, milliseconds(800)));
    CHECK(r.answers.hosts.size() == 3);
    CHECK(r.answers.missing.empty());
    CHECK(fake.datagrams() == 2);
}

TEST_CASE("answers to other commands or other nlbadms, forged, reflected or from nobody are "
          "ignored") {
    auto o = cluster_of({host(1), host(2), host(3)});
    o.send_junk = true;
    FakeCluster fake(o);
    Timed r = call(target_of(fake, milliseconds(2000)));
    REQUIRE(r.answers.hosts.size() == 3);
    for (const auto& [p, a] : r.answers.hosts) {
        CHECK(a.ok);
        CHECK(a.address == "10.10.0." + std::to_string(10 + p));
    }
}

TEST_CASE("the wrong key: no host answers, exit 3") {
    FakeCluster fake(cluster_of({host(1), host(2), host(3)}));
    RemoteTarget t = target_of(fake, milliseconds(300));
    t.key = std::vector<std::uint8_t>(32, 0x18);
    Timed r = call(t);
    CHECK(r.answers.hosts.empty());
    CHECK(r.answers.missing.empty());
    CHECK(remote_exit_code(r.answers) == kExitUnreachable);
    CHECK(remote_errors(r.answers, t) ==
          "nlbadm: no host of cluster 127.0.0.1 answered within 300 ms (is "
          "cluster.remote_control on, the key the cluster's, UDP " +
              std::to_string(fake.port()) + " reachable?)\n");
    CHECK(remote_json(r.answers) ==
          json{{"hosts", json::object()}, {"errors", json::object()}, {"missing", json::array()}});
}

TEST_CASE("text output: a heading per host, then its usual rendering, indented") {
    ClusterAnswers answers;
    answers.hosts[2] = HostAnswer{"10.10.0.12", true, json::object(), ""};
    answers.hosts[1] = HostAnswer{"10.10.0.11", true, json::object(), ""};
    answers.hosts[3] = HostAnswer{"10.10.0.13", false, nullptr, "stop: suspended"};
    CHECK(remote_text("stop", answers) ==
          "host 1 (10.10.0.11)\n  stop: ok\n\nhost 2 (10.10.0.12)\n  stop: ok\n");
}

TEST_CASE("run: an unreadable key file is a usage error naming the file") {
    std::ostringstream out, err;
    int code = run({"--cluster", "127.0.0.1", "--key-file", "/nonexistent/cluster.key", "query"},
                   out, err);
    CHECK(code == kExitUsage);
    CHECK(out.str().empty());
    CHECK(err.str() == "nlbadm: --key-file: /nonexistent/cluster.key: No such file or directory\n");
}
