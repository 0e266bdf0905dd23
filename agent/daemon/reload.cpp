// Agent::reload (SIGHUP, `systemctl reload nlb-agent`, `nlbadm reload`) and the per-rule
// `enabled` key it and attach apply.
#include <exception>

#include "agent.hpp"
#include "config_reload.hpp"
#include "engine_config.hpp"

namespace nlb {

void Agent::disable_rules_off_here(std::chrono::milliseconds now) {
    for (std::size_t i = 0; i < config_.port_rules.size(); ++i)
        if (!config_.port_rules[i].enabled)
            engine_->on_command({CommandKind::rule_drain, static_cast<int>(i)}, now);
}

Agent::ReloadResult Agent::reload() {
    const std::string& path = options_.config_path;
    ReloadResult result;
    auto refuse = [&](const std::string& why) {
        result.error = "reload: " + why + " (nothing changed)";
        log_.error(result.error);
        return result;
    };
    Config next;
    try {
        next = load_config(path);
    } catch (const std::exception& e) {
        return refuse(e.what());
    }
    const ReloadPlan plan = plan_reload(config_, next);
    if (plan.fixed)
        return refuse(*plan.fixed + " changed: restart nlb-agent to apply it");
    const Config before = std::move(config_);
    config_ = std::move(next);
    if (load_)
        load_->reconfigure(config_); // the operator's weights, under the same factors
    if (engine_ && !plan.live.empty()) {
        const auto now = monotonic_now();
        // Validated by parse_config already; a refusal here would be a bug between the two.
        if (!engine_->set_host_rules(host_rules(), now))
            log_.error("reload: the engine refused the new rule parameters");
        for (std::size_t i = 0; i < config_.port_rules.size(); ++i) {
            if (before.port_rules[i].enabled == config_.port_rules[i].enabled)
                continue; // an `nlbadm disable` since start stays as the operator left it
            // Off is a drain: a reload never resets the connections a host serves.
            engine_->on_command(
                {config_.port_rules[i].enabled ? CommandKind::rule_enable : CommandKind::rule_drain,
                 static_cast<int>(i)},
                now);
        }
        apply(engine_->take_decision());
    }
    log_.event("reloaded", {{"config", path}, {"changed", plan.live}});
    result.applied = true;
    result.changed = plan.live;
    return result;
}

} // namespace nlb
