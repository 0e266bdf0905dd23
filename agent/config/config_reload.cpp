#include "config_reload.hpp"

#include <algorithm>

namespace nlb {

ReloadPlan plan_reload(const Config& running, const Config& next) {
    ReloadPlan plan;
    auto fixed = [&](bool same, const std::string& key) {
        if (!same && !plan.fixed)
            plan.fixed = key;
    };
    auto staged = [&](bool same, const std::string& key) {
        if (!same)
            plan.staged.push_back(key);
    };
    const ClusterConfig &a = running.cluster, &b = next.cluster;
    fixed(a.ip == b.ip, "cluster.ip");
    fixed(a.mode == b.mode, "cluster.mode");
    fixed(a.key_file == b.key_file, "cluster.key_file");
    fixed(a.rotation_key_file == b.rotation_key_file, "cluster.rotation_key_file");
    fixed(a.remote_control == b.remote_control, "cluster.remote_control");
    fixed(a.remote_config == b.remote_config, "cluster.remote_config");
    fixed(a.hash_seed == b.hash_seed, "cluster.hash_seed");
    fixed(a.vlan == b.vlan, "cluster.vlan");
    fixed(a.igmp_querier == b.igmp_querier, "cluster.igmp_querier");
    fixed(a.igmp_query_interval_s == b.igmp_query_interval_s, "cluster.igmp_query_interval_s");
    fixed(running.host.priority == next.host.priority, "host.priority");
    fixed(running.host.dedicated_ip == next.host.dedicated_ip, "host.dedicated_ip");
    fixed(running.host.initial_state == next.host.initial_state, "host.initial_state");
    fixed(running.host.interface == next.host.interface, "host.interface");
    // the tables are sized when the dataplane is created (a detach and attach resizes them)
    fixed(running.host.opening_connections == next.host.opening_connections,
          "host.opening_connections");
    fixed(running.host.established_connections == next.host.established_connections,
          "host.established_connections");
    fixed(running.host.vlan_interface == next.host.vlan_interface, "host.vlan_interface");
    fixed(running.metrics == next.metrics, "metrics");
    // Probes own timers, sockets and children: a restart starts them over cleanly.
    fixed(running.health == next.health, "health");
    // Where to reach peers that have not spoken yet: this host's own business.
    if (a.peers != b.peers)
        plan.live.push_back("cluster.peers");
    staged(a.vips == b.vips, "cluster.vips");
    staged(a.heartbeat_ms == b.heartbeat_ms, "cluster.heartbeat_ms");
    staged(a.heartbeat_tolerance == b.heartbeat_tolerance, "cluster.heartbeat_tolerance");
    staged(a.cleanup_delay_s == b.cleanup_delay_s, "cluster.cleanup_delay_s");
    staged(running.port_rules.size() == next.port_rules.size(), "port_rules");
    const std::size_t rules = std::max(running.port_rules.size(), next.port_rules.size());
    for (std::size_t i = 0; i < rules; ++i) {
        const std::string key = "port_rules[" + std::to_string(i) + "].";
        // Load feedback runs a command and timers of its own, like a probe: a restart starts
        // it over. A rule that comes or goes must have none.
        const auto* r = i < running.port_rules.size() ? &running.port_rules[i] : nullptr;
        const auto* n = i < next.port_rules.size() ? &next.port_rules[i] : nullptr;
        fixed((r ? r->load_feedback : std::nullopt) == (n ? n->load_feedback : std::nullopt),
              key + "load_feedback");
        if (!r || !n)
            continue;
        staged(r->vip == n->vip, key + "vip");
        staged(r->first_port == n->first_port && r->last_port == n->last_port, key + "ports");
        staged(r->protocol == n->protocol, key + "protocol");
        staged(r->mode == n->mode, key + "mode");
        staged(r->affinity == n->affinity, key + "affinity");
        if (r->load_weight != n->load_weight)
            plan.live.push_back(key + "load_weight");
        if (r->handling_priority != n->handling_priority)
            plan.live.push_back(key + "handling_priority");
        if (r->enabled != n->enabled)
            plan.live.push_back(key + "enabled");
    }
    return plan;
}

nlohmann::json diff_answer(const ReloadPlan& plan, bool holds_staged) {
    const bool unstages = holds_staged && plan.staged.empty() && !plan.fixed;
    return {{"live", plan.live},
            {"staged", plan.staged},
            {"restart", plan.fixed ? nlohmann::json(*plan.fixed) : nlohmann::json(nullptr)},
            {"unstages", unstages},
            {"same", plan.live.empty() && plan.staged.empty() && !plan.fixed && !unstages}};
}

} // namespace nlb
