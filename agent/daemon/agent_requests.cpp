// The control socket's requests (Agent::handle): operator commands, per-rule commands, and
// the dispatch of every request to its handler.
#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "agent.hpp"
#include "control_reply.hpp"
#include "rule_targets.hpp"

namespace nlb {

using std::chrono::milliseconds;
using json = nlohmann::json;

json Agent::command(CommandKind kind, int rule) {
    if (!engine_)
        return error("not attached (nlbadm attach IFACE first)");
    milliseconds now = monotonic_now();
    bool accepted = engine_->on_command({kind, rule}, now);
    Decision d = engine_->take_decision();
    std::string why;
    for (const auto& e : d.events)
        if (e.kind == EventKind::command_rejected)
            why = e.text;
    apply(std::move(d));
    if (!accepted)
        return error(why.empty() ? "command rejected" : why);
    return ok({{"state", to_string(engine_->state())}});
}

json Agent::rule_command(const json& request, CommandKind kind) {
    const char* verb = kind == CommandKind::rule_enable    ? "enable"
                       : kind == CommandKind::rule_disable ? "disable"
                                                           : "drain";
    std::vector<int> rules;
    try {
        rules = rule_targets(tables_, request, verb);
    } catch (const std::invalid_argument& e) {
        return error(e.what());
    }
    json reply;
    for (int rule : rules) {
        reply = command(kind, rule);
        if (!reply["ok"].get<bool>())
            break;
    }
    return reply;
}

json Agent::answer(const json& request) {
    // The reply follows the lines its command logged (briefly: this is the loop). A command
    // that logged nothing (a query, every few seconds from a monitor) does not wait: behind a
    // stalled sink each one held the loop up for the whole 50 ms.
    const std::uint64_t mark = log_.lines();
    json reply = handle(request);
    log_.flush_since(mark, std::chrono::milliseconds(50));
    return reply;
}

json Agent::handle(const json& request) {
    if (!request.is_object() || !request.contains("command") || !request["command"].is_string())
        return error("request needs a \"command\" string");
    const std::string cmd = request["command"].get<std::string>();
    auto iface_arg = [&]() -> std::string {
        if (!request.contains("interface") || !request["interface"].is_string())
            throw std::runtime_error(cmd + ": interface missing");
        return request["interface"].get<std::string>();
    };
    if (cmd == "query" || cmd == "status")
        return ok(query());
    if (cmd == "attach")
        return attach(iface_arg());
    if (cmd == "detach") {
        std::string ifname = iface_arg();
        if (dp_ && dp_->interface() != ifname)
            return error("detach " + ifname + ": attached to " + dp_->interface());
        return detach();
    }
    if (cmd == "params")
        return ok(to_json(config_));
    if (cmd == "map")
        return ok(map());
    if (cmd == "stats")
        return ok(stats());
    if (cmd == "start")
        return command(CommandKind::start);
    if (cmd == "stop")
        return command(CommandKind::stop);
    if (cmd == "drainstop")
        return command(CommandKind::drainstop);
    if (cmd == "suspend")
        return command(CommandKind::suspend);
    if (cmd == "resume")
        return command(CommandKind::resume);
    if (cmd == "push" || cmd == "diff")
        return push(request, cmd == "push");
    if (cmd == "reload") {
        const ReloadResult r = reload();
        if (!r.applied)
            return error(r.error);
        return ok({{"config", options_.config_path}, {"changed", r.changed}, {"staged", r.staged}});
    }
    if (cmd == "prepare-restart") {
        // Only the dataplane is kept, not the process's state: the next agent rebuilds the
        // rest from its config, the pins and the cluster's heartbeats, as after a crash.
        restart_until_ = monotonic_now() + std::chrono::milliseconds(kRestartWindow);
        log_.event("restart_prepared", {{"window_s", kRestartWindow.count()}});
        return ok({{"window_s", kRestartWindow.count()}, {"attached", dp_ != nullptr}});
    }
    if (cmd == "enable")
        return rule_command(request, CommandKind::rule_enable);
    if (cmd == "disable")
        return rule_command(request, CommandKind::rule_disable);
    if (cmd == "drain")
        return rule_command(request, CommandKind::rule_drain);
    return error("unknown command \"" + cmd + "\"");
}

} // namespace nlb
