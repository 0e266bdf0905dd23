// What a reload may change: host-local rule parameters live, the shared rules and timing staged
// (docs/staged-config.md), everything else refused by name.
#include <catch2/catch.hpp>

#include <string>

#include "config_reload.hpp"

using namespace nlb;

namespace {

Config config(const std::string& cluster_extra, const std::string& rules) {
    return parse_config(R"({"cluster": {"ip": "10.0.0.1", "vips": ["10.0.0.2"])" + cluster_extra +
                        R"(}, "host": {"priority": 2, "dedicated_ip": "10.0.0.12"},
                            "port_rules": )" +
                        rules + "}");
}

const std::string kReloadRules = R"([{"ports": [80, 80], "load_weight": 50},
                                {"ports": [443, 443], "mode": "single"}])";

} // namespace

TEST_CASE("an unchanged config plans nothing") {
    ReloadPlan plan = plan_reload(config("", kReloadRules), config("", kReloadRules));
    CHECK(plan.live.empty());
    CHECK(plan.staged.empty());
    CHECK_FALSE(plan.fixed);
}

TEST_CASE("weights, handling priorities and enabled change live") {
    Config next = config("", R"([{"ports": [80, 80], "load_weight": 20, "enabled": false},
                                 {"ports": [443, 443], "mode": "single", "handling_priority": 9}])");
    ReloadPlan plan = plan_reload(config("", kReloadRules), next);
    CHECK_FALSE(plan.fixed);
    CHECK(plan.live == std::vector<std::string>{"port_rules[0].load_weight",
                                                "port_rules[0].enabled",
                                                "port_rules[1].handling_priority"});
}

TEST_CASE("cluster.peers changes live, beside a staged change too") {
    const Config running = config(R"(, "peers": ["10.0.0.11", "10.0.0.12"])", kReloadRules);
    ReloadPlan plan = plan_reload(
        running, config(R"(, "peers": ["10.0.0.11", "10.0.0.12", "10.0.0.13"])", kReloadRules));
    CHECK_FALSE(plan.fixed);
    CHECK(plan.staged.empty());
    CHECK(plan.live == std::vector<std::string>{"cluster.peers"});
    plan = plan_reload(running, config(R"(, "heartbeat_ms": 500)", kReloadRules));
    CHECK(plan.live == std::vector<std::string>{"cluster.peers"});
    CHECK(plan.staged == std::vector<std::string>{"cluster.heartbeat_ms"});
}

TEST_CASE("anything else is refused, naming the first key that changed") {
    const Config running = config("", kReloadRules);
    CHECK(plan_reload(running, config(R"(, "mode": "multicast")", kReloadRules)).fixed ==
          "cluster.mode");
    CHECK(
        plan_reload(running, config(R"(, "remote_control": true, "key_file": "/k")", kReloadRules))
            .fixed == "cluster.key_file");
    const Config igmp = config(R"(, "mode": "igmp")", kReloadRules);
    CHECK(plan_reload(igmp, config(R"(, "mode": "igmp", "igmp_querier": true)", kReloadRules))
              .fixed == "cluster.igmp_querier");
    CHECK(plan_reload(config(R"(, "mode": "igmp", "igmp_querier": true)", kReloadRules),
                      config(R"(, "mode": "igmp", "igmp_querier": true,
                                 "igmp_query_interval_s": 60)",
                             kReloadRules))
              .fixed == "cluster.igmp_query_interval_s");
    // The rotation key is read at attach, like the cluster key: a change needs a restart.
    const Config keyed = config(R"(, "key_file": "/k/new")", kReloadRules);
    CHECK(plan_reload(keyed, config(R"(, "key_file": "/k/new", "rotation_key_file": "/k/old")",
                                    kReloadRules))
              .fixed == "cluster.rotation_key_file");
    CHECK_FALSE(
        plan_reload(
            config(R"(, "key_file": "/k/new", "rotation_key_file": "/k/old")", kReloadRules),
            config(R"(, "key_file": "/k/new", "rotation_key_file": "/k/old")", kReloadRules))
            .fixed);
    // The seed decides every packet's bucket: the whole cluster changes it, by restarts.
    CHECK(plan_reload(running, config(R"(, "hash_seed": 5)", kReloadRules)).fixed ==
          "cluster.hash_seed");
    // Another VLAN is another network: attach again, on every host.
    CHECK(plan_reload(running, config(R"(, "vlan": 100)", kReloadRules)).fixed == "cluster.vlan");
    Config moved = running;
    moved.host.interface = "eth1";
    CHECK(plan_reload(running, moved).fixed == "host.interface");
    // A refused change still lists the live ones beside it; the caller applies none of them.
    Config both = config(R"(, "mode": "multicast")", R"([{"ports": [80, 80], "load_weight": 1},
                                                       {"ports": [443, 443], "mode": "single"}])");
    ReloadPlan plan = plan_reload(running, both);
    CHECK(plan.fixed == "cluster.mode");
    CHECK(plan.live == std::vector<std::string>{"port_rules[0].load_weight"});
    // Load feedback runs a command of its own: a rule that gains it, or comes with it, is a
    // restart.
    CHECK(
        plan_reload(running,
                    config("", R"([{"ports": [80, 80], "load_feedback": {"metric": "connections"}},
                                              {"ports": [443, 443], "mode": "single"}])"))
            .fixed == "port_rules[0].load_feedback");
    CHECK(plan_reload(running, config("", R"([{"ports": [80, 80], "load_weight": 50},
                                              {"ports": [443, 443], "mode": "single"},
                                              {"ports": [8080, 8080], "load_feedback": {"metric": "connections"}}])"))
              .fixed == "port_rules[2].load_feedback");
}

TEST_CASE("the shared rules and the timing are staged, by name") {
    const Config running = config("", kReloadRules);
    CHECK(
        plan_reload(running, config(R"(, "heartbeat_ms": 500, "cleanup_delay_s": 5)", kReloadRules))
            .staged == std::vector<std::string>{"cluster.heartbeat_ms", "cluster.cleanup_delay_s"});
    ReloadPlan plan = plan_reload(running, config("", R"([{"ports": [80, 81], "load_weight": 20},
                                                          {"ports": [443, 443], "affinity": "none"},
                                                          {"ports": [8080, 8080]}])"));
    CHECK_FALSE(plan.fixed);
    CHECK(plan.staged == std::vector<std::string>{"port_rules", "port_rules[0].ports",
                                                  "port_rules[1].mode", "port_rules[1].affinity"});
    CHECK(plan.live == std::vector<std::string>{"port_rules[0].load_weight"});
    CHECK(plan_reload(running, config("", R"([{"ports": [80, 80], "load_weight": 50}])")).staged ==
          std::vector<std::string>{"port_rules"});
    CHECK(plan_reload(running,
                      config("", R"([{"ports": [80, 80], "load_weight": 50, "vip": "10.0.0.2"},
                                              {"ports": [443, 443], "mode": "single", "protocol": "udp"}])"))
              .staged == std::vector<std::string>{"port_rules[0].vip", "port_rules[1].protocol"});
    // The VIP list is staged like the rules: the cluster switches to it in one convergence.
    const ReloadPlan vips =
        plan_reload(running, parse_config(R"({"cluster": {"ip": "10.0.0.1", "vips": ["10.0.0.3"]},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}, "port_rules": )" +
                                          kReloadRules + "}"));
    CHECK_FALSE(vips.fixed);
    CHECK(vips.staged == std::vector<std::string>{"cluster.vips"});
    // The cluster IP is not: it names the cluster (its MAC, its seed, remote control).
    CHECK(plan_reload(running, parse_config(R"({"cluster": {"ip": "10.0.0.9", "vips": ["10.0.0.2"]},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}, "port_rules": )" +
                                            kReloadRules + "}"))
              .fixed == "cluster.ip");
}

TEST_CASE("diff: the running set again is the same, unless a staged set would go with it") {
    const Config running = config("", kReloadRules);
    const ReloadPlan nothing = plan_reload(running, running);
    CHECK(diff_answer(nothing, false)["same"] == true);
    CHECK(diff_answer(nothing, false)["unstages"] == false);
    // A host that holds another set staged: a push of the running one removes it (as a reload
    // of it does), which the others of the cluster may be waiting for.
    CHECK(diff_answer(nothing, true)["same"] == false);
    CHECK(diff_answer(nothing, true)["unstages"] == true);
    // A push that stages a set replaces the staged one: said by its keys.
    const ReloadPlan grown =
        plan_reload(running, config("", R"([{"ports": [80, 81], "load_weight": 50},
                                           {"ports": [443, 443], "mode": "single"}])"));
    const auto answer = diff_answer(grown, true);
    CHECK(answer["staged"] == nlohmann::json{"port_rules[0].ports"});
    CHECK(answer["unstages"] == false);
    CHECK(answer["same"] == false);
    CHECK(answer["restart"] == nullptr);
}
