// The agent's status as nlbadm and the metrics see it: query, map, stats (and remote
// control's counters in them).
#include <bit>

#include <nlb/maps.h>

#include "agent.hpp"
#include "control_reply.hpp"
#include "digest.hpp"

namespace nlb {

using json = nlohmann::json;

// The server's counters and the dataplane's, which count remote control's datagrams whether
// it is on (passed to the stack) or off (dropped before it).
json Agent::remote_control_stats() const {
    json out = remote_ ? remote_->counters() : json::object();
    out["enabled"] = remote_ != nullptr;
    if (dp_) {
        nlb_stats g = dp_->maps().read_stats(NLB_STATS_GLOBAL);
        out["dataplane_passed"] = g.remote_passed;
        out["dataplane_dropped"] = g.remote_dropped;
    }
    return out;
}

// Whether this host takes part in the cluster: a stopped or suspended host keeps the epoch
// it last served in, which says nothing of the cluster now (it listed itself as a member
// long after `stop`, and the hosts that left since).
bool Agent::is_member() const {
    return engine_ && engine_->state() != HostState::stopped &&
           engine_->state() != HostState::suspended;
}

json Agent::query() const {
    json host = {{"priority", config_.host.priority},
                 {"state", engine_ ? to_string(engine_->state()) : "stopped"},
                 {"interface", dp_ ? json(dp_->interface()) : json(nullptr)},
                 {"dedicated_ip", config_.host.dedicated_ip.to_string()},
                 {"attached", dp_ != nullptr}};
    if (dp_) {
        host["xdp_mode"] = dp_->generic() ? "generic" : "native";
        host["xdp_mode_reason"] = dp_->mode_reason();
        // As the engine last heard of it (watch_link: every tick).
        host["link"] = !engine_ || engine_->link_up() ? "up" : "down";
    }
    // The cluster interface's MTU as last read (watch_mtu), and what the heartbeats are sized
    // to: it, or a peer's smaller one (docs/convergence.md, "Frame size").
    if (engine_ && mtu_seen_) {
        host["mtu"] = mtu_seen_;
        host["frame_budget"] = engine_->frame_budget(monotonic_now()).bytes;
    }
    if (config_.cluster.vlan && iface_) // the VLAN's interface on the attached trunk
        host["vlan_interface"] = iface_->plan().ifname;
    if (engine_ && engine_->state() == HostState::refused) {
        host["reason"] = to_string(engine_->refuse_reason());
        host["reason_detail"] = engine_->refuse_detail();
    }
    // Something an operator should fix even while this host serves (a deaf vSwitch port,
    // another key on the segment); null when all is well.
    const std::string problem = engine_ ? engine_->problem(monotonic_now()) : "";
    host["problem"] = problem.empty() ? json(nullptr) : json(problem);
    if (dp_)
        host["second_path"] =
            contact_ ? json(to_string(engine_->config().host.contact)) : json(nullptr);
    // The gateways the watch for a link that fails one way asks when every peer falls silent
    // (ReceiveProbe): none, and in a cluster of two that fault goes unnoticed.
    if (receive_probe_) {
        host["receive_probe"] = {{"gateways", to_strings(receive_probe_->gateways())},
                                 {"sent", receive_probe_->sent()},
                                 {"send_errors", receive_probe_->send_errors()}};
    }
    if (config_.cluster.igmp_querier)
        host["igmp_querier"] = querier_ ? querier_->status() : json(nullptr);
    std::uint32_t cip = config_.cluster.ip.words[0];
    const bool member = is_member();
    json cluster = {{"ip", config_.cluster.ip.to_string()},
                    {"vips", to_strings(config_.cluster.vips)},
                    {"mode", to_string(config_.cluster.mode)},
                    {"mac", to_string(cluster_mac(cip, config_.cluster.mode))},
                    // Every member claims this epoch and holds its share: each bucket has one
                    // owner, as far as this host knows (a converged state alone is not that).
                    {"converged", engine_ && engine_->settled()},
                    {"members", members_of(member ? engine_->members() : 0)},
                    {"view", members_of(engine_ ? engine_->view() : 0)},
                    {"cohort", members_of(engine_ ? engine_->cohort() : 0)},
                    {"default_host", member ? engine_->default_host() : 0}};
    // The shared configuration's fingerprints (docs/staged-config.md): what runs, what is
    // staged beside it, and which live hosts of this host's cohort do not hold that yet.
    if (engine_) {
        const std::uint64_t staged = engine_->staged_digest();
        cluster["configuration"] = {
            {"active", digest_text(engine_->active_digest())},
            {"staged", staged ? json(digest_text(staged)) : json(nullptr)},
            {"waiting_for", members_of(engine_->staged_waiting())}};
    } else {
        cluster["configuration"] = {
            {"active", nullptr}, {"staged", nullptr}, {"waiting_for", json::array()}};
    }
    json rules = json::array();
    const json effective = to_json(config_);
    const std::uint32_t panic = engine_ && engine_->members() ? engine_->panic_rules() : 0;
    // The rules in force (attached, the tables' own; detached, the file's as reloaded: the
    // tables are built again at attach).
    for (std::size_t i = 0; i < config_.port_rules.size(); ++i) {
        json rule = effective["port_rules"][i];
        // What the operator's enable / disable / drain (or a reload's enabled) left in force
        // here, not the file's `enabled` alone: after `nlbadm disable` the rule is off.
        if (engine_) {
            const RuleControl control = engine_->rule_control(i);
            rule["enabled"] = control == RuleControl::enabled;
            rule["control"] = control == RuleControl::enabled    ? "enabled"
                              : control == RuleControl::disabled ? "disabled"
                                                                 : "draining";
        }
        rule["buckets_owned"] = engine_ ? engine_->buckets_owned(i) : 0;
        rule["buckets_total"] = NLB_BUCKETS;
        // null: no probe guards the rule here; "down": a probe holds it down (drained here
        // unless the cluster is in panic for it).
        rule["probe"] = (health_->guarded() >> i & 1)
                            ? json((health_->down_rules() >> i & 1) ? "down" : "up")
                            : json(nullptr);
        rule["panic"] = (panic >> i & 1) != 0;
        rules.push_back(rule);
    }
    json out = {{"host", host}, {"cluster", cluster}, {"rules", rules}};
    if (load_)
        out["load_feedback"] = load_->status();
    if (config_.health)
        out["health"] = {{"panic_percent", config_.health->panic_percent},
                         {"panic", panic != 0},
                         {"probes", health_->status()}};
    return out;
}

json Agent::map() const {
    json slots = json::array();
    if (!installed_)
        return {{"rules", slots}};
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        if (s >= tables_.rules().size() && s != NLB_RULE_DEFAULT)
            continue;
        const auto& v = (*installed_)[s];
        json owners = json::object();
        for (std::size_t b = 0; b < NLB_BUCKETS; ++b) {
            std::string key = std::to_string(v.owners[b]);
            owners[key] = owners.value(key, 0) + 1;
        }
        slots.push_back({{"slot", s},
                         {"rule", s == NLB_RULE_DEFAULT ? json("default") : json(s)},
                         {"buckets_per_owner", owners},
                         {"dirty_elsewhere", v.dirty_elsewhere.count()},
                         {"tracked_here", v.tracked_here.count()},
                         {"owners", v.owners}});
    }
    return {{"rules", slots}};
}

json Agent::stats() const {
    // Every key is present attached or not (zeros then), so that a scrape before attach
    // still finds every metric.
    json out = json::object();
    out["version"] = NLB_VERSION;
    out["state"] = engine_ ? to_string(engine_->state()) : "stopped";
    out["members"] = is_member() ? std::popcount(engine_->members()) : 0;
    out["convergences"] = convergences_;
    out["config_staged"] = engine_ && engine_->staged_digest() ? 1 : 0;
    out["config_switches"] = config_switches_;
    out["last_convergence_s"] = static_cast<double>(last_convergence_.count()) / 1000.0;
    out["tracked_connections"] = dp_ ? tracked_connections_ : 0;
    // The counts below are the last scan's, and a settled host with full tables scans
    // minutes apart (quiet_scan_interval): how old they are (0 before the first).
    const std::uint64_t counted = tracking_.last_at_ns();
    const double counts_age_s =
        dp_ && counted ? static_cast<double>((monotonic_ns() - counted) / 1000000) / 1000.0 : 0.0;
    out["connection_tables"] = {{"socket_program", dp_ && dp_->socket_program()},
                                {"scan", tracking_.in_kernel() ? "kernel" : "copy"},
                                {"kernel_scans", tracking_.kernel_scans()},
                                {"empty_scans", tracking_.empty_scans()},
                                {"background_scans", tracking_.background_scans()},
                                {"background_scans_dropped", tracking_.background_dropped()},
                                {"counts_age_s", counts_age_s},
                                {"opening", dp_ ? tracking_.last().opening : 0},
                                {"opening_size", dp_ ? 2 * dp_->table_sizes().opening : 0},
                                {"opening_expired", dp_ ? tracking_.last().opening_expired : 0},
                                {"established", dp_ ? tracking_.last().established : 0},
                                {"established_size", dp_ ? 2 * dp_->table_sizes().established : 0},
                                {"closing", dp_ ? tracking_.last().closing : 0},
                                {"established_ended", dp_ ? tracking_.last().expired : 0},
                                {"adopted_from_sockets", tracking_.seeded()},
                                {"orphans_ended", tracking_.orphans_ended()},
                                {"filter_valid", dp_ && dp_->conn_filter().valid()},
                                {"filter_fill", dp_ ? tracking_.filter_fill() : 0.0},
                                {"filter_rebuilds", tracking_.filter_rebuilds()}};
    auto counters = [](const nlb_stats& st) {
        return json{{"accepted", st.accepted},
                    {"dropped_not_owner", st.dropped_not_owner},
                    {"dropped_dirty", st.dropped_dirty},
                    {"dropped_disabled", st.dropped_disabled},
                    {"dropped_watchdog", st.dropped_watchdog},
                    {"tracked", st.tracked},
                    {"established", st.established},
                    {"established_full", st.established_full}};
    };
    json rules = json::array();
    for (std::uint32_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        if (s >= tables_.rules().size() && s != NLB_RULE_DEFAULT)
            continue;
        json r = counters(dp_ ? dp_->maps().read_stats(s) : nlb_stats{});
        r["rule"] = s == NLB_RULE_DEFAULT ? json("default") : json(s);
        r["buckets_owned"] = engine_ ? engine_->buckets_owned(s) : 0;
        // Dirty here: given up, still serving connections in it. Elsewhere: owned here, the
        // previous owner still serves connections in it.
        r["dirty_buckets"] = installed_ ? (*installed_)[s].tracked_here.count() : 0;
        r["dirty_elsewhere"] = installed_ ? (*installed_)[s].dirty_elsewhere.count() : 0;
        if (s != NLB_RULE_DEFAULT)
            r["panic"] = engine_ && engine_->members() && (engine_->panic_rules() >> s & 1);
        rules.push_back(r);
    }
    nlb_stats g = dp_ ? dp_->maps().read_stats(NLB_STATS_GLOBAL) : nlb_stats{};
    out["rules"] = rules;
    out["dataplane"] = {
        {"malformed", g.malformed},
        {"arp_replied", g.arp_replied},
        {"nd_replied", g.nd_replied},
        {"neigh_dropped", g.neigh_dropped},
        {"vip_claims", g.vip_claims},
        {"passed_other", g.passed_other},
        {"heartbeat_rate_dropped", g.heartbeat_rate_dropped},
        {"heartbeat_untrusted_dropped", dp_ ? dp_->maps().heartbeat_untrusted_dropped() : 0},
        {"fragments_recorded", g.fragments_recorded},
        {"fragments_unmatched", g.fragments_unmatched},
        {"watchdog_alive", dp_ && dp_->maps().state().config.alive != 0}};
    const EngineCounters c = engine_ ? engine_->counters() : EngineCounters{};
    out["heartbeats"] = {{"sent", c.sent},
                         {"oversized", c.oversized},
                         {"received", c.received},
                         {"accepted", c.accepted},
                         {"malformed", c.malformed},
                         {"bad_version", c.bad_version},
                         {"other_cluster", c.other_cluster},
                         {"unauthenticated", c.unauthenticated},
                         {"bad_mac", c.bad_mac},
                         {"replayed", c.replayed},
                         {"superseded", c.superseded},
                         {"late", c.late},
                         {"duplicate_priority", c.duplicate_priority},
                         {"unverified", c.unverified},
                         {"contact_sent", c.contact_sent},
                         {"contact_received", c.contact_received},
                         {"contact_send_errors", contact_ ? contact_->send_errors() : 0},
                         {"contact_socket_dropped", contact_ ? contact_->socket_dropped() : 0},
                         {"stalls", c.stalls},
                         {"evaluations", c.evaluations},
                         {"send_errors", hb_ ? hb_->send_errors() : 0},
                         {"socket_dropped", hb_ ? hb_->socket_dropped() : 0}};
    // The bucket map a joining host receives from the cluster (docs/convergence.md).
    out["map_transfer"] = {
        {"chunks_sent", c.map_chunks_sent},       {"chunks_received", c.map_chunks_received},
        {"chunks_ignored", c.map_chunks_ignored}, {"rejected", c.map_rejected},
        {"maps_received", c.map_transfers},       {"fallbacks", c.map_fallbacks}};
    out["remote_control"] = remote_control_stats();
    out["probes"] = health_->stats();
    out["log"] = {{"lines_dropped", log_.dropped()}};
    return out;
}

} // namespace nlb
