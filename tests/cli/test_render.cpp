// Rendering of agent results for humans: the DESIGN.md §5 query sample, params, map, stats.
#include <catch2/catch.hpp>

#include "config.hpp"
#include "render.hpp"

using namespace nlb::cli;
using nlohmann::json;

namespace {

// DESIGN.md §5's `query --json` sample.
const json kQuery = json::parse(R"(
{ "host":    { "priority": 1, "state": "converged", "interface": "eth0", "dedicated_ip": "192.0.2.11" },
  "cluster": { "ip": "192.0.2.100", "mode": "unicast", "mac": "02:bf:c0:00:02:64",
               "converged": true, "members": [1, 2, 3], "default_host": 1 },
  "rules":   [ { "vip": "all", "ports": [0, 65535], "protocol": "both", "mode": "multiple",
                 "affinity": "single", "buckets_owned": 1366, "buckets_total": 4096 } ] })");

} // namespace

TEST_CASE("query: the DESIGN.md sample") {
    CHECK(render("query", kQuery) == R"(host
  priority      1
  state         converged
  interface     eth0
  dedicated_ip  192.0.2.11

cluster
  ip            192.0.2.100
  mode          unicast
  mac           02:bf:c0:00:02:64
  converged     yes
  members       1, 2, 3
  default_host  1

rules
  VIP  PORTS    PROTOCOL  MODE      AFFINITY  BUCKETS
  all  0-65535  both      multiple  single    1366/4096 (33.3%)
)");
}

TEST_CASE("query: a refused host shows why, extra fields are not lost") {
    json q = kQuery;
    q["host"]["state"] = "refused";
    q["host"]["reason"] = "port rules differ from host 1";
    q["host"]["epoch"] = 7;
    q["cluster"]["members"] = json::array();
    std::string text = render("query", q);
    CHECK_THAT(text, Catch::Contains("  state         refused\n"
                                     "  reason        port rules differ from host 1\n"));
    CHECK_THAT(text, Catch::Contains("  epoch         7\n"));
    CHECK_THAT(text, Catch::Contains("  members       -\n"));
}

TEST_CASE("query: the XDP mode and why, beside the interface") {
    json q = kQuery;
    q["host"]["xdp_mode"] = "generic";
    q["host"]["xdp_mode_reason"] = "veth: native XDP runs after the veth's packet-type decision";
    CHECK_THAT(render("query", q),
               Catch::Contains("  interface        eth0\n"
                               "  xdp_mode         generic\n"
                               "  xdp_mode_reason  veth: native XDP runs after the veth's "
                               "packet-type decision\n"
                               "  dedicated_ip     192.0.2.11\n"));
}

TEST_CASE("params: the effective configuration") {
    nlb::Config config = nlb::parse_config(R"({
      "cluster": {"ip": "192.0.2.100", "vips": ["192.0.2.101"], "key_file": "/etc/nlb/cluster.key"},
      "host": {"priority": 1, "dedicated_ip": "192.0.2.11", "interface": "eth0"},
      "port_rules": [{"ports": [80, 80], "protocol": "tcp", "affinity": "none"},
                     {"vip": "192.0.2.101", "ports": [443, 443], "mode": "single"}]})");
    CHECK(render("params", nlb::to_json(config)) == R"(host
  priority                 1
  interface                eth0
  dedicated_ip             192.0.2.11
  initial_state            started
  established_connections  262144
  opening_connections      262144

cluster
  ip                   192.0.2.100
  vips                 192.0.2.101
  mode                 unicast
  heartbeat_ms         1000
  heartbeat_tolerance  5
  key_file             /etc/nlb/cluster.key
  remote_control       no
  remote_config        no
  cleanup_delay_s      300
  igmp_querier         no

port_rules
  VIP          PORTS    PROTOCOL  MODE      AFFINITY  LOAD WEIGHT  HANDLING PRIORITY  ENABLED
  all          80-80    tcp       multiple  none      equal        -                  yes
  192.0.2.101  443-443  both      single    -         -            1                  yes
)");
}

TEST_CASE("map: buckets per owner, from a bucket→owner array or a count object") {
    json owners = json::array();
    for (int b = 0; b < 4096; ++b)
        owners.push_back(b < 2048 ? 1 : b < 4000 ? 2 : 0);
    json result = {{"rules",
                    {{{"vip", "all"},
                      {"ports", {0, 65535}},
                      {"protocol", "both"},
                      {"mode", "multiple"},
                      {"owners", owners},
                      {"dirty", {5, 6}}},
                     {{"vip", "192.0.2.101"},
                      {"ports", {443, 443}},
                      {"protocol", "tcp"},
                      {"mode", "single"},
                      {"buckets_per_owner", {{"3", 4096}}}}}},
                   {"default_host", 1}};
    CHECK(render("map", result) == R"(rule 0: all, 0-65535, both, multiple
  OWNER  BUCKETS  SHARE
  none   96       2.3%
  1      2048     50.0%
  2      1952     47.7%
  dirty  2

rule 1: 192.0.2.101, 443-443, tcp, single
  OWNER  BUCKETS  SHARE
  3      4096     100.0%

default_host  1
)");
}

TEST_CASE("map: the agent's per-slot shape, the default host's slot included") {
    json owners = json::array();
    for (int b = 0; b < 4096; ++b)
        owners.push_back(b % 3 + 1);
    json result = {{"rules",
                    {{{"slot", 0},
                      {"rule", 0},
                      {"buckets_per_owner", {{"1", 1366}, {"2", 1365}, {"3", 1365}}},
                      {"dirty_elsewhere", 3},
                      {"tracked_here", 0},
                      {"owners", owners}},
                     {{"slot", 32},
                      {"rule", "default"},
                      {"buckets_per_owner", {{"1", 4096}}},
                      {"dirty_elsewhere", 0},
                      {"tracked_here", 0},
                      {"owners", json::array()}}}}};
    CHECK(render("map", result) == R"(rule 0
  OWNER  BUCKETS  SHARE
  1      1366     33.3%
  2      1365     33.3%
  3      1365     33.3%
  dirty_elsewhere  3
  tracked_here     0

default rule
  OWNER  BUCKETS  SHARE
  1      4096     100.0%
  dirty_elsewhere  0
  tracked_here     0
)");
}

TEST_CASE("map and stats of an agent with nothing installed say so") {
    CHECK(render("map", {{"rules", json::array()}}) ==
          "map: no bucket map installed (not attached, or no convergence yet)\n");
    CHECK(render("stats", json::object()) == "stats: nothing to show (not attached?)\n");
}

TEST_CASE("map: a rule without readable ownership is shown as it is") {
    json result = json::array({{{"vip", "all"}, {"owners", "unknown"}}});
    CHECK(render("map", result) == "rule 0: all\n  owners  unknown\n");
}

TEST_CASE("stats: the host's figures, packets and buckets per rule, then counter groups") {
    json stats = json::parse(R"({
      "version": "0.1.0", "state": "converged", "members": 2, "convergences": 3,
      "last_convergence_s": 0.25, "tracked_connections": 12,
      "rules": [{"rule": 0, "accepted": 10, "dropped_not_owner": 20, "dropped_dirty": 1,
                 "dropped_disabled": 0, "dropped_watchdog": 0, "tracked": 4,
                 "buckets_owned": 2048, "dirty_buckets": 3, "dirty_elsewhere": 0},
                {"rule": "default", "accepted": 1, "dropped_not_owner": 2, "dropped_dirty": 0,
                 "dropped_disabled": 0, "dropped_watchdog": 0, "tracked": 0,
                 "buckets_owned": 4096, "dirty_buckets": 0, "dirty_elsewhere": 0}],
      "dataplane": {"malformed": 0, "arp_replied": 5, "watchdog_alive": true},
      "heartbeats": {"sent": 5, "received": 9, "bad_mac": 0},
      "remote_control": {"dropped_bad_mac": 1, "answered": 2}})");
    CHECK(render("stats", stats) == R"(version              0.1.0
state                converged
members              2
convergences         3
last_convergence_s   0.25 s
tracked_connections  12

packets
  RULE     ACCEPTED  DROP NOT OWNER  DROP DIRTY  DROP DISABLED  DROP WATCHDOG  TRACKED
  0        10        20              1           0              0              4
  default  1         2               0           0              0              0

buckets
  RULE     OWNED  DIRTY HERE  DIRTY ELSEWHERE
  0        2048   3           0
  default  4096   0           0

dataplane
  watchdog_alive  yes
  arp_replied     5
  malformed       0

heartbeats
  sent      5
  received  9
  bad_mac   0

remote_control
  answered         2
  dropped_bad_mac  1
)");
}

TEST_CASE("stats: counters this nlbadm does not know are still shown") {
    json stats = json::parse(R"({
      "uptime_s": 42,
      "rules": [{"accepted": 10, "dropped": 20, "rule": 0}, {"accepted": 1, "rule": "default"}]})");
    CHECK(render("stats", stats) == R"(uptime_s  42

packets
  RULE     ACCEPTED  DROP NOT OWNER  DROP DIRTY  DROP DISABLED  DROP WATCHDOG  TRACKED  DROPPED
  0        10        -               -           -              -              -        20
  default  1         -               -           -              -              -        -

buckets
  RULE     OWNED  DIRTY HERE  DIRTY ELSEWHERE
  0        -      -           -
  default  -      -           -
)");
    // Without per-rule counters: sections, as for any result.
    CHECK(render("stats", {{"dataplane", {{"malformed", 1}}}}) == "dataplane\n  malformed  1\n");
}

TEST_CASE("actions: empty result says ok, anything else is shown") {
    CHECK(render("start", json::object()) == "start: ok\n");
    CHECK(render("drainstop", nullptr) == "drainstop: ok\n");
    CHECK(render("drainstop", {{"state", "draining"}}) == "state  draining\n");
}

TEST_CASE("render_table aligns columns, the last one unpadded") {
    CHECK(render_table({"A", "LONG HEADER", "C"}, {{"wide cell", "x", "last"}, {"1", "2", "3"}},
                       2) == "  A          LONG HEADER  C\n"
                             "  wide cell  x            last\n"
                             "  1          2            3\n");
}

TEST_CASE("query: health probes and panic (docs/health.md)") {
    json q = kQuery;
    q["rules"][0]["probe"] = "down";
    q["rules"][0]["panic"] = true;
    q["health"] = json::parse(R"({"panic_percent": 0, "panic": true, "probes": [
        {"name": "web", "type": "http", "verdict": "down", "since": "2024-05-01T10:00:00Z",
         "since_s": 12, "streak": 0, "rise": 2, "fall": 3, "rules": [0, 1],
         "last_result": "failed", "last_detail": "status 503",
         "last_check": "2024-05-01T10:00:11Z", "last_latency_ms": 1.5}]})");
    const std::string text = render("query", q);
    INFO(text);
    CHECK(text.find("health\n") != std::string::npos);
    CHECK(text.find("panic") != std::string::npos);
    // The probe's row: name, verdict, last result and detail, its rules.
    const auto row = text.find("web");
    REQUIRE(row != std::string::npos);
    const std::string line = text.substr(row, text.find('\n', row) - row);
    for (const char* word : {"down", "failed", "status 503", "0, 1", "2024-05-01T10:00:00Z"})
        CHECK(line.find(word) != std::string::npos);
    CHECK(text.find("1366/4096 (33.3%)") != std::string::npos);
}
