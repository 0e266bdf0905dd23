// The /metrics page from a stats JSON shaped like Agent::stats()'s: names, labels, escaping,
// exposition-format structure, and that every counter of the stats reaches the page.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "metrics_text.hpp"

using namespace nlb;
using nlohmann::json;

namespace {

// What `nlbadm stats --json` shows for a two-rule host, every counter a distinct value so
// that a counter rendered under the wrong name or not at all cannot go unnoticed.
const json kStats = json::parse(R"({
  "version": "0.1.0",
  "state": "converged",
  "members": 3,
  "convergences": 4,
  "config_staged": 1,
  "config_switches": 5,
  "last_convergence_s": 0.25,
  "tracked_connections": 17,
  "rules": [
    {"rule": 0, "accepted": 1001, "dropped_not_owner": 1002, "dropped_dirty": 1003,
     "dropped_disabled": 1004, "dropped_watchdog": 1005, "tracked": 1006,
     "buckets_owned": 1365, "dirty_buckets": 11, "dirty_elsewhere": 12},
    {"rule": 1, "accepted": 2001, "dropped_not_owner": 2002, "dropped_dirty": 2003,
     "dropped_disabled": 2004, "dropped_watchdog": 2005, "tracked": 2006,
     "buckets_owned": 1366, "dirty_buckets": 21, "dirty_elsewhere": 22},
    {"rule": "default", "accepted": 3001, "dropped_not_owner": 3002, "dropped_dirty": 3003,
     "dropped_disabled": 3004, "dropped_watchdog": 3005, "tracked": 3006,
     "buckets_owned": 4096, "dirty_buckets": 31, "dirty_elsewhere": 32}
  ],
  "dataplane": {"malformed": 501, "arp_replied": 502, "nd_replied": 503, "passed_other": 504,
                "heartbeat_rate_dropped": 505, "fragments_recorded": 506,
                "fragments_unmatched": 507, "neigh_dropped": 508,
                "heartbeat_untrusted_dropped": 509, "vip_claims": 510,
                "watchdog_alive": true},
  "heartbeats": {"sent": 601, "received": 602, "accepted": 603, "malformed": 604,
                 "bad_version": 605, "other_cluster": 606, "unauthenticated": 607,
                 "bad_mac": 608, "replayed": 609, "duplicate_priority": 610, "send_errors": 611,
                 "oversized": 614,
                 "socket_dropped": 612, "contact_socket_dropped": 613},
  "remote_control": {"received": 2811, "answered": 701, "answered_again": 705, "send_errors": 0,
                     "dropped_queue_full": 0, "dropped_bad_mac": 702, "dropped_replay": 703,
                     "enabled": true, "dataplane_passed": 2107, "dataplane_dropped": 704},
  "log": {"lines_dropped": 801}
})");

struct Family {
    std::string type;
    bool help = false;
};

// The page as the exposition format defines it: `# HELP name text`, `# TYPE name type`, then
// `name{labels} value` samples of that family. Checks the structure while reading.
struct Parsed {
    std::map<std::string, Family> families;
    std::map<std::string, std::string> samples; // "name{labels}" → value
};

Parsed parse(const std::string& page) {
    Parsed out;
    std::istringstream in(page);
    std::string line, current;
    REQUIRE(!page.empty());
    REQUIRE(page.back() == '\n');
    while (std::getline(in, line)) {
        INFO(line);
        REQUIRE(!line.empty());
        if (line.rfind("# HELP ", 0) == 0) {
            std::string name = line.substr(7, line.find(' ', 7) - 7);
            CHECK(out.families.count(name) == 0); // each family once
            out.families[name].help = true;
            current = name;
        } else if (line.rfind("# TYPE ", 0) == 0) {
            std::string rest = line.substr(7);
            std::string name = rest.substr(0, rest.find(' '));
            CHECK(name == current);
            out.families[name].type = rest.substr(rest.find(' ') + 1);
        } else {
            REQUIRE(line[0] != '#');
            std::string key = line.substr(0, line.rfind(' '));
            std::string name = key.substr(0, key.find('{'));
            // A histogram's samples are its name with _bucket, _sum or _count.
            if (out.families[current].type == "histogram" && name != current)
                for (const char* suffix : {"_bucket", "_sum", "_count"})
                    if (name == current + suffix)
                        name = current;
            CHECK(name == current); // samples follow their family's HELP and TYPE
            CHECK(out.samples.count(key) == 0);
            out.samples[key] = line.substr(line.rfind(' ') + 1);
        }
    }
    return out;
}

// Every number (and boolean) in a JSON document but the "rule" indexes, as the page prints it.
void leaves(const json& j, const std::string& key, std::vector<std::string>& out) {
    if (j.is_object()) {
        for (const auto& [k, v] : j.items())
            leaves(v, k, out);
    } else if (j.is_array()) {
        for (const auto& v : j)
            leaves(v, key, out);
    } else if (j.is_boolean()) {
        out.push_back(j.get<bool>() ? "1" : "0");
    } else if (j.is_number() && key != "rule") {
        out.push_back(j.dump());
    }
}

} // namespace

TEST_CASE("metrics: every family has HELP and TYPE, counters end in _total") {
    Parsed p = parse(metrics_text(kStats));
    for (const auto& [name, family] : p.families) {
        INFO(name);
        CHECK(family.help);
        CHECK((family.type == "counter" || family.type == "gauge" || family.type == "histogram"));
        CHECK((family.type == "counter") ==
              (name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0));
    }
}

TEST_CASE("metrics: the names and labels of docs/metrics.md") {
    Parsed p = parse(metrics_text(kStats));
    const std::map<std::string, std::string> expected = {
        {R"(nlb_build_info{version="0.1.0"})", "1"},
        {R"(nlb_host_state{state="stopped"})", "0"},
        {R"(nlb_host_state{state="converging"})", "0"},
        {R"(nlb_host_state{state="converged"})", "1"},
        {R"(nlb_host_state{state="draining"})", "0"},
        {R"(nlb_host_state{state="suspended"})", "0"},
        {R"(nlb_host_state{state="refused"})", "0"},
        {"nlb_cluster_members", "3"},
        {"nlb_convergences_total", "4"},
        {"nlb_config_staged", "1"},
        {"nlb_config_switches_total", "5"},
        {"nlb_last_convergence_seconds", "0.25"},
        {R"(nlb_packets_accepted_total{rule="0"})", "1001"},
        {R"(nlb_packets_accepted_total{rule="1"})", "2001"},
        {R"(nlb_packets_accepted_total{rule="default"})", "3001"},
        {R"(nlb_packets_dropped_total{rule="0",reason="not_owner"})", "1002"},
        {R"(nlb_packets_dropped_total{rule="0",reason="dirty"})", "1003"},
        {R"(nlb_packets_dropped_total{rule="0",reason="disabled"})", "1004"},
        {R"(nlb_packets_dropped_total{rule="0",reason="watchdog"})", "1005"},
        {R"(nlb_packets_dropped_total{rule="default",reason="watchdog"})", "3005"},
        {R"(nlb_connections_recorded_total{rule="1"})", "2006"},
        {R"(nlb_buckets_owned{rule="0"})", "1365"},
        {R"(nlb_buckets_owned{rule="default"})", "4096"},
        {R"(nlb_dirty_buckets{rule="1"})", "21"},
        {R"(nlb_dirty_elsewhere_buckets{rule="1"})", "22"},
        {"nlb_tracked_connections", "17"},
        {"nlb_heartbeats_sent_total", "601"},
        {"nlb_heartbeats_received_total", "602"},
        {"nlb_heartbeats_accepted_total", "603"},
        {R"(nlb_heartbeats_rejected_total{reason="malformed"})", "604"},
        {R"(nlb_heartbeats_rejected_total{reason="bad_version"})", "605"},
        {R"(nlb_heartbeats_rejected_total{reason="other_cluster"})", "606"},
        {R"(nlb_heartbeats_rejected_total{reason="unauthenticated"})", "607"},
        {R"(nlb_heartbeats_rejected_total{reason="bad_mac"})", "608"},
        {R"(nlb_heartbeats_rejected_total{reason="replayed"})", "609"},
        {R"(nlb_heartbeats_rejected_total{reason="duplicate_priority"})", "610"},
        {"nlb_heartbeat_send_errors_total", "611"},
        {"nlb_heartbeats_oversized_total", "614"},
        {"nlb_heartbeat_socket_dropped_total", "612"},
        {"nlb_contact_socket_dropped_total", "613"},
        {"nlb_log_lines_dropped_total", "801"},
        {R"(nlb_remote_requests_total{result="answered"})", "701"},
        {R"(nlb_remote_requests_total{result="answered_again"})", "705"},
        {R"(nlb_remote_requests_total{result="dropped_bad_mac"})", "702"},
        {R"(nlb_remote_requests_total{result="dropped_replay"})", "703"},
        {R"(nlb_dataplane_remote_total{action="passed"})", "2107"},
        {R"(nlb_dataplane_remote_total{action="dropped"})", "704"},
        {"nlb_watchdog_alive", "1"},
        {"nlb_dataplane_malformed_total", "501"},
        {R"(nlb_neighbour_replies_total{proto="arp"})", "502"},
        {R"(nlb_neighbour_replies_total{proto="nd"})", "503"},
        {"nlb_dataplane_passed_total", "504"},
        {"nlb_dataplane_heartbeat_rate_dropped_total", "505"},
        {R"(nlb_dataplane_fragments_total{kind="recorded"})", "506"},
        {R"(nlb_dataplane_fragments_total{kind="unmatched"})", "507"},
        {"nlb_dataplane_neigh_dropped_total", "508"},
        {"nlb_dataplane_heartbeat_untrusted_dropped_total", "509"},
        {"nlb_dataplane_vip_claims_total", "510"},
    };
    for (const auto& [sample, value] : expected) {
        INFO(sample);
        REQUIRE(p.samples.count(sample) == 1);
        CHECK(p.samples[sample] == value);
    }
    CHECK(p.families["nlb_host_state"].type == "gauge");
    CHECK(p.families["nlb_packets_accepted_total"].type == "counter");
    CHECK(p.families["nlb_buckets_owned"].type == "gauge");
}

TEST_CASE("metrics: every counter of the stats appears on the page") {
    std::vector<std::string> values;
    json stats = kStats;
    // The one exception: the requests' total, which the results' samples add up to.
    stats["remote_control"].erase("received");
    leaves(stats, "", values);
    REQUIRE(values.size() > 40);
    Parsed p = parse(metrics_text(kStats));
    std::multiset<std::string> shown;
    for (const auto& [sample, value] : p.samples)
        shown.insert(value);
    for (const auto& v : values) {
        INFO("stats value " << v << " is on no sample");
        CHECK(shown.count(v) >= 1);
    }
    // The distinct values map one to one: nothing shown twice under two names.
    for (const auto& v : values)
        if (v != "1" && v != "0")
            CHECK(shown.count(v) == 1);
}

TEST_CASE("metrics: remote-control requests counted once, by their results") {
    Parsed p = parse(metrics_text(kStats));
    std::uint64_t sum = 0;
    for (const auto& [sample, value] : p.samples)
        if (sample.starts_with("nlb_remote_requests_total{"))
            sum += std::stoull(value);
    CHECK(sum == kStats["remote_control"]["received"].get<std::uint64_t>());
    CHECK(p.samples.count(R"(nlb_remote_requests_total{result="received"})") == 0);
}

TEST_CASE("metrics: label values are escaped") {
    json stats = kStats;
    stats["version"] = "1.0 \"beta\"\\x\nnext";
    stats["remote_control"] = {{"dropped_we\"ird\\key\n", 5}};
    std::string page = metrics_text(stats);
    CHECK(page.find(R"(nlb_build_info{version="1.0 \"beta\"\\x\nnext"} 1)") != std::string::npos);
    CHECK(page.find(R"(nlb_remote_requests_total{result="dropped_we\"ird\\key\n"} 5)") !=
          std::string::npos);
    parse(page); // still one sample per line
    CHECK(escape_label_value("a\\b\"c\nd") == R"(a\\b\"c\nd)");
}

TEST_CASE("metrics: an agent that is not attached still shows every family, as zeros") {
    json stats = {{"version", "0.1.0"}, {"state", "stopped"}};
    Parsed p = parse(metrics_text(stats));
    Parsed full = parse(metrics_text(kStats));
    CHECK(p.families.size() == full.families.size());
    CHECK(p.samples[R"(nlb_host_state{state="stopped"})"] == "1");
    CHECK(p.samples["nlb_cluster_members"] == "0");
    CHECK(p.samples["nlb_watchdog_alive"] == "0");
    CHECK(p.samples[R"(nlb_heartbeats_rejected_total{reason="bad_mac"})"] == "0");
    // Without the remote-control counters the family still says what it would count.
    CHECK(p.samples[R"(nlb_remote_requests_total{result="answered"})"] == "0");
    CHECK(p.samples.count(R"(nlb_packets_accepted_total{rule="0"})") == 0);
}

TEST_CASE("metrics: an unknown state is no state, non-numbers read as zero") {
    json stats = kStats;
    stats["state"] = "confused";
    stats["members"] = "three";
    stats["remote_control"] = {{"answered", "many"}, {"nested", {{"x", 1}}}};
    Parsed p = parse(metrics_text(stats));
    for (const auto& [sample, value] : p.samples)
        if (sample.rfind("nlb_host_state{", 0) == 0)
            CHECK(value == "0");
    CHECK(p.samples["nlb_cluster_members"] == "0");
    CHECK(p.samples[R"(nlb_remote_requests_total{result="answered"})"] == "0");
    CHECK(p.samples.count(R"(nlb_remote_requests_total{result="nested"})") == 0);
}

TEST_CASE("metrics: health probes and panic mode (docs/health.md)") {
    json stats = kStats;
    stats["rules"][1]["panic"] = true;
    stats["probes"] = json::parse(R"([
      {"name": "web", "up": true, "checks": {"passed": 41, "failed": 2, "timeout": 1},
       "latency": {"buckets": [[0.001, 3], [0.01, 40], [0.1, 43]], "sum": 0.5, "count": 44}},
      {"name": "db", "up": false, "checks": {"passed": 0, "failed": 5, "timeout": 0},
       "latency": {"buckets": [[0.001, 5]], "sum": 0.002, "count": 5}}])");
    Parsed p = parse(metrics_text(stats));
    CHECK(p.families["nlb_probe_up"].type == "gauge");
    CHECK(p.families["nlb_probe_checks_total"].type == "counter");
    CHECK(p.families["nlb_probe_duration_seconds"].type == "histogram");
    CHECK(p.families["nlb_rule_panic"].type == "gauge");
    CHECK(p.samples[R"(nlb_probe_up{probe="web"})"] == "1");
    CHECK(p.samples[R"(nlb_probe_up{probe="db"})"] == "0");
    CHECK(p.samples[R"(nlb_probe_checks_total{probe="web",result="passed"})"] == "41");
    CHECK(p.samples[R"(nlb_probe_checks_total{probe="web",result="timeout"})"] == "1");
    CHECK(p.samples[R"(nlb_probe_checks_total{probe="db",result="failed"})"] == "5");
    CHECK(p.samples[R"(nlb_probe_duration_seconds_bucket{probe="web",le="0.01"})"] == "40");
    CHECK(p.samples[R"(nlb_probe_duration_seconds_bucket{probe="web",le="+Inf"})"] == "44");
    CHECK(p.samples[R"(nlb_probe_duration_seconds_count{probe="web"})"] == "44");
    CHECK(p.samples[R"(nlb_probe_duration_seconds_sum{probe="db"})"] == "0.002");
    CHECK(p.samples[R"(nlb_rule_panic{rule="1"})"] == "1");
    CHECK(p.samples[R"(nlb_rule_panic{rule="0"})"] == "0");
    // Without probes: the families are there, with no sample.
    Parsed none = parse(metrics_text(kStats));
    CHECK(none.families.count("nlb_probe_up") == 1);
    for (const auto& [sample, value] : none.samples)
        CHECK(sample.rfind("nlb_probe_", 0) != 0);
}
