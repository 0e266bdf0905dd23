#include "metrics_text.hpp"

#include <cmath>
#include <utility>
#include <vector>

namespace nlb {

namespace {

using nlohmann::json;
using Labels = std::vector<std::pair<std::string, std::string>>;

// Every state a host can be in (nlbadm query): one sample each, 1 for the current one, so a
// query such as nlb_host_state{state="converged"} == 0 finds a host that left it.
constexpr const char* kStates[] = {"stopped",  "converging", "converged",
                                   "draining", "suspended",  "refused"};

// Heartbeats dropped, by the engine counter that says why.
constexpr const char* kRejectReasons[] = {
    "malformed", "bad_version",        "other_cluster", "unauthenticated", "bad_mac",
    "replayed",  "duplicate_priority", "unverified",    "superseded",      "late"};

// A rule's drop counters: the stats key and the reason label.
constexpr std::pair<const char*, const char*> kDropReasons[] = {{"dropped_not_owner", "not_owner"},
                                                                {"dropped_dirty", "dirty"},
                                                                {"dropped_disabled", "disabled"},
                                                                {"dropped_watchdog", "watchdog"}};

// A JSON value as a sample value; anything that is no number (absent, null) reads as 0.
std::string number(const json& v) {
    if (v.is_boolean())
        return v.get<bool>() ? "1" : "0";
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (std::isnan(d))
            return "NaN";
        if (std::isinf(d))
            return d > 0 ? "+Inf" : "-Inf";
    }
    if (v.is_number())
        return v.dump();
    return "0";
}

const json& member(const json& object, const char* key) {
    static const json kNull;
    if (!object.is_object())
        return kNull;
    auto it = object.find(key);
    return it == object.end() ? kNull : *it;
}

// The label a rule's counters carry: its index as `nlbadm stats` shows it, or "default".
std::string rule_label(const json& rule) {
    const json& r = member(rule, "rule");
    if (r.is_string())
        return r.get<std::string>();
    if (r.is_number_integer())
        return r.dump();
    return "unknown";
}

std::string escape_help(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

class Page {
  public:
    void family(const char* name, const char* type, const char* help) {
        text_ += std::string("# HELP ") + name + " " + escape_help(help) + "\n";
        text_ += std::string("# TYPE ") + name + " " + type + "\n";
    }

    void sample(const char* name, const Labels& labels, const std::string& value) {
        text_ += name;
        if (!labels.empty()) {
            text_ += "{";
            for (std::size_t i = 0; i < labels.size(); ++i)
                text_ += (i ? "," : "") + labels[i].first + "=\"" +
                         escape_label_value(labels[i].second) + "\"";
            text_ += "}";
        }
        text_ += " " + value + "\n";
    }

    // A family with one unlabelled sample.
    void single(const char* name, const char* type, const char* help, const json& value) {
        family(name, type, help);
        sample(name, {}, number(value));
    }

    std::string take() { return std::move(text_); }

  private:
    std::string text_;
};

void per_rule(Page& page, const json& rules, const char* name, const char* type, const char* help,
              const char* key) {
    page.family(name, type, help);
    if (!rules.is_array())
        return;
    for (const auto& rule : rules)
        page.sample(name, {{"rule", rule_label(rule)}}, number(member(rule, key)));
}

// Health probes (docs/health.md): one series per probe, named by the `probe` label.
void probe_metrics(Page& page, const json& probes) {
    const bool any = probes.is_array() && !probes.empty();
    page.family("nlb_probe_up", "gauge",
                "1 while the health probe's verdict is up (rise passes in a row), 0 while down.");
    if (any)
        for (const auto& p : probes)
            page.sample(
                "nlb_probe_up",
                {{"probe", member(p, "name").is_string() ? member(p, "name").get<std::string>()
                                                         : "unknown"}},
                number(member(p, "up")));
    page.family("nlb_probe_checks_total", "counter",
                "Health probe checks by result: passed, failed, timeout.");
    if (any)
        for (const auto& p : probes) {
            const std::string name =
                member(p, "name").is_string() ? member(p, "name").get<std::string>() : "unknown";
            for (const char* result : {"passed", "failed", "timeout"})
                page.sample("nlb_probe_checks_total", {{"probe", name}, {"result", result}},
                            number(member(member(p, "checks"), result)));
        }
    page.family("nlb_probe_duration_seconds", "histogram",
                "How long health probe checks took (a timeout counts its full timeout).");
    if (!any)
        return;
    for (const auto& p : probes) {
        const std::string name =
            member(p, "name").is_string() ? member(p, "name").get<std::string>() : "unknown";
        const json& latency = member(p, "latency");
        const json& buckets = member(latency, "buckets");
        if (buckets.is_array())
            for (const auto& b : buckets)
                if (b.is_array() && b.size() == 2)
                    page.sample("nlb_probe_duration_seconds_bucket",
                                {{"probe", name}, {"le", number(b[0])}}, number(b[1]));
        page.sample("nlb_probe_duration_seconds_bucket", {{"probe", name}, {"le", "+Inf"}},
                    number(member(latency, "count")));
        page.sample("nlb_probe_duration_seconds_sum", {{"probe", name}},
                    number(member(latency, "sum")));
        page.sample("nlb_probe_duration_seconds_count", {{"probe", name}},
                    number(member(latency, "count")));
    }
}

} // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string metrics_text(const json& stats) {
    Page page;

    page.family("nlb_build_info", "gauge", "The nlb-agent build; the value is always 1.");
    const json& version = member(stats, "version");
    page.sample("nlb_build_info",
                {{"version", version.is_string() ? version.get<std::string>() : "unknown"}}, "1");

    page.family("nlb_host_state", "gauge",
                "This host's state: 1 for the state it is in, 0 for the others.");
    const json& state = member(stats, "state");
    for (const char* s : kStates)
        page.sample("nlb_host_state", {{"state", s}},
                    state.is_string() && state.get<std::string>() == s ? "1" : "0");

    page.single("nlb_cluster_members", "gauge",
                "Hosts in the cluster membership this host converged on (0 before the first).",
                member(stats, "members"));
    page.single("nlb_convergences_total", "counter",
                "Convergences this host completed since the agent started.",
                member(stats, "convergences"));
    page.single("nlb_config_staged", "gauge",
                "1 while a staged configuration waits for the other hosts, else 0.",
                member(stats, "config_staged"));
    page.single("nlb_config_switches_total", "counter",
                "Switches to a staged configuration since the agent started.",
                member(stats, "config_switches"));
    page.single("nlb_last_convergence_seconds", "gauge",
                "How long the last completed convergence took, from its start to converged "
                "(0 before the first).",
                member(stats, "last_convergence_s"));

    const json& rules = member(stats, "rules");
    per_rule(page, rules, "nlb_packets_accepted_total", "counter",
             "Packets to a VIP this host accepted, per port rule.", "accepted");
    page.family("nlb_packets_dropped_total", "counter",
                "Packets to a VIP this host dropped, per port rule and reason: not_owner "
                "(another host's bucket), dirty (mid-stream in a bucket another host still "
                "serves), disabled (a rule of mode disabled), watchdog (dataplane stopped by the "
                "watchdog).");
    if (rules.is_array())
        for (const auto& rule : rules)
            for (const auto& [key, reason] : kDropReasons)
                page.sample("nlb_packets_dropped_total",
                            {{"rule", rule_label(rule)}, {"reason", reason}},
                            number(member(rule, key)));
    per_rule(page, rules, "nlb_connections_recorded_total", "counter",
             "TCP connections this host recorded in its connection table, per port rule.",
             "tracked");
    per_rule(page, rules, "nlb_buckets_owned", "gauge", "Buckets this host owns, per port rule.",
             "buckets_owned");
    per_rule(page, rules, "nlb_dirty_buckets", "gauge",
             "Buckets this host gave up but still serves connections in (dirty here), per port "
             "rule.",
             "dirty_buckets");
    per_rule(page, rules, "nlb_dirty_elsewhere_buckets", "gauge",
             "Buckets this host owns in which another host still serves connections, per port "
             "rule.",
             "dirty_elsewhere");

    page.single("nlb_tracked_connections", "gauge",
                "Live entries in this host's connection table at the last periodic scan.",
                member(stats, "tracked_connections"));

    const json& hb = member(stats, "heartbeats");
    page.single("nlb_heartbeats_sent_total", "counter", "Heartbeats this host sent.",
                member(hb, "sent"));
    page.single("nlb_heartbeats_received_total", "counter",
                "Heartbeat frames this host received, before any check.", member(hb, "received"));
    page.single("nlb_heartbeats_accepted_total", "counter",
                "Heartbeats from other hosts that passed every check.", member(hb, "accepted"));
    page.family("nlb_heartbeats_rejected_total", "counter",
                "Heartbeats dropped (or, for duplicate_priority, ignored; for superseded, "
                "only their path's time kept), by reason.");
    for (const char* reason : kRejectReasons)
        page.sample("nlb_heartbeats_rejected_total", {{"reason", reason}},
                    number(member(hb, reason)));
    page.single("nlb_heartbeats_oversized_total", "counter",
                "Heartbeats longer than the MTU of this host or a peer allows (sent all the "
                "same: they may not arrive).",
                member(hb, "oversized"));
    page.single("nlb_heartbeat_send_errors_total", "counter",
                "Heartbeats the socket failed to send.", member(hb, "send_errors"));
    page.single("nlb_heartbeat_socket_dropped_total", "counter",
                "Heartbeat frames the kernel dropped for want of room in the agent's socket.",
                member(hb, "socket_dropped"));
    page.single("nlb_contact_socket_dropped_total", "counter",
                "Second-path datagrams the kernel dropped for want of room in the agent's socket.",
                member(hb, "contact_socket_dropped"));
    page.single("nlb_log_lines_dropped_total", "counter",
                "Event lines dropped: the log's sink took nothing while its queue filled.",
                member(member(stats, "log"), "lines_dropped"));

    page.family("nlb_map_transfer_total", "counter",
                "The bucket map's transfer to joining hosts, by event (chunks sent, received, "
                "ignored, rejected; maps received whole; fallbacks to the stateless map).");
    const json& transfer = member(stats, "map_transfer");
    if (transfer.is_object())
        for (const auto& [event, count] : transfer.items())
            if (count.is_number())
                page.sample("nlb_map_transfer_total", {{"event", event}}, number(count));

    page.family("nlb_remote_requests_total", "counter",
                "Remote-control requests, by result (answered, or why dropped).");
    const json& remote = member(stats, "remote_control");
    bool any = false;
    // Only the results, which add up to the requests: remote_control also holds their total
    // (received) and the dataplane's counts of the same datagrams, which a sum over the
    // family would count twice more.
    const auto is_result = [](const std::string& key) {
        return key == "answered" || key == "answered_again" || key == "send_errors" ||
               key.starts_with("dropped_") || key.starts_with("ignored_");
    };
    if (remote.is_object())
        for (const auto& [result, count] : remote.items())
            if (count.is_number() && is_result(result)) {
                page.sample("nlb_remote_requests_total", {{"result", result}}, number(count));
                any = true;
            }
    if (!any)
        page.sample("nlb_remote_requests_total", {{"result", "answered"}}, "0");
    page.family("nlb_dataplane_remote_total", "counter",
                "Remote-control datagrams the dataplane passed to the stack (remote control on) "
                "or dropped (off).");
    for (const char* action : {"passed", "dropped"}) {
        const json& count = member(remote, (std::string("dataplane_") + action).c_str());
        if (count.is_number())
            page.sample("nlb_dataplane_remote_total", {{"action", action}}, number(count));
    }

    per_rule(page, rules, "nlb_rule_panic", "gauge",
             "1 while the cluster serves the port rule in panic mode (too few members healthy by "
             "their probes: served as if all were), else 0.",
             "panic");
    probe_metrics(page, member(stats, "probes"));

    const json& dp = member(stats, "dataplane");
    page.single("nlb_watchdog_alive", "gauge",
                "1 while the dataplane's watchdog deadline is kept by this agent, 0 when it "
                "expired (the dataplane stopped accepting) or nothing is attached.",
                member(dp, "watchdog_alive"));
    page.single("nlb_dataplane_malformed_total", "counter",
                "Frames the dataplane found malformed (truncated or inconsistent headers).",
                member(dp, "malformed"));
    page.family("nlb_neighbour_replies_total", "counter",
                "ARP and IPv6 neighbour solicitations for a VIP the dataplane answered.");
    page.sample("nlb_neighbour_replies_total", {{"proto", "arp"}},
                number(member(dp, "arp_replied")));
    page.sample("nlb_neighbour_replies_total", {{"proto", "nd"}}, number(member(dp, "nd_replied")));
    page.single("nlb_dataplane_neigh_dropped_total", "counter",
                "ARP and IPv6 neighbour discovery about a VIP that the dataplane did not answer "
                "(other hosts' announcements, replies, requests it cannot answer), dropped so "
                "that the kernel never answers for a VIP with the host's own MAC.",
                member(dp, "neigh_dropped"));
    page.single("nlb_dataplane_vip_claims_total", "counter",
                "ARP and IPv6 neighbour advertisements by which another machine claims a VIP "
                "(a link-layer address that is not the cluster MAC): a machine configured with "
                "the VIP by mistake, turning the clients that believe it away from the cluster.",
                member(dp, "vip_claims"));
    page.single("nlb_dataplane_passed_total", "counter",
                "Packets of other protocols to a VIP, passed to the stack on every host.",
                member(dp, "passed_other"));
    page.single("nlb_dataplane_heartbeat_rate_dropped_total", "counter",
                "Heartbeat frames (EtherType 0x886F) the dataplane dropped because their source "
                "MAC sent more than its budget (1000 frames/s, bursts of 200).",
                member(dp, "heartbeat_rate_dropped"));
    page.single("nlb_dataplane_heartbeat_untrusted_dropped_total", "counter",
                "Heartbeat frames (EtherType 0x886F) the dataplane dropped because sources the "
                "agent has not authenticated sent more than their shared budget (4000 frames/s, "
                "bursts of 1000): forged frames under random source MACs.",
                member(dp, "heartbeat_untrusted_dropped"));
    page.family("nlb_dataplane_fragments_total", "counter",
                "Fragmented TCP/UDP datagrams to a VIP: first fragments whose verdict the "
                "later ones follow (recorded), and later fragments that came before their "
                "first and went to the stack on every host (unmatched).");
    page.sample("nlb_dataplane_fragments_total", {{"kind", "recorded"}},
                number(member(dp, "fragments_recorded")));
    page.sample("nlb_dataplane_fragments_total", {{"kind", "unmatched"}},
                number(member(dp, "fragments_unmatched")));
    return page.take();
}

} // namespace nlb
