#include "config_load_feedback.hpp"

#include <algorithm>

#include "config_health.hpp"

namespace nlb {

const char* to_string(LoadMetric metric) {
    switch (metric) {
    case LoadMetric::connections:
        return "connections";
    case LoadMetric::cpu:
        return "cpu";
    case LoadMetric::probe_latency:
        return "probe_latency";
    case LoadMetric::exec:
        return "exec";
    }
    return "?";
}

LoadFeedbackConfig parse_load_feedback(const JsonField& field) {
    ObjectReader object(field);
    LoadFeedbackConfig f;
    const JsonField metric = object.required("metric");
    const std::string m = metric.string();
    if (m == "connections")
        f.metric = LoadMetric::connections;
    else if (m == "cpu")
        f.metric = LoadMetric::cpu;
    else if (m == "probe_latency")
        f.metric = LoadMetric::probe_latency;
    else if (m == "exec")
        f.metric = LoadMetric::exec;
    else
        metric.fail("\"" + m + "\" is not connections, cpu, probe_latency or exec");
    if (auto interval = object.optional("interval_ms"))
        f.interval_ms = static_cast<std::uint32_t>(
            interval->integer(kMinFeedbackIntervalMs, kMaxFeedbackIntervalMs));
    if (auto sensitivity = object.optional("sensitivity"))
        f.sensitivity = sensitivity->number(0.0, 1.0);
    if (auto min_weight = object.optional("min_weight"))
        // At least 1: a host at weight 0 would have no share to measure a cost by.
        f.min_weight = static_cast<std::uint8_t>(min_weight->integer(1, 100));
    auto command = object.optional("command");
    auto user = object.optional("user");
    auto timeout = object.optional("timeout_ms");
    if (f.metric != LoadMetric::exec) {
        for (const auto& k : {command, user, timeout})
            if (k)
                k->fail(std::string("only for metric exec, this one is ") + to_string(f.metric));
    } else {
        if (!command)
            field.fail("metric exec needs \"command\" (an argv array, no shell)");
        f.command = parse_exec_command(*command);
        if (user) {
            f.user = user->string();
            if (f.user.empty())
                user->fail("empty user name");
        }
        // One run at a time: a command outliving its interval would overlap the next one.
        if (timeout)
            f.timeout_ms = static_cast<std::uint32_t>(timeout->integer(10, f.interval_ms));
        else
            f.timeout_ms = std::min(f.timeout_ms, f.interval_ms);
    }
    object.finish();
    return f;
}

nlohmann::json load_feedback_json(const LoadFeedbackConfig& f) {
    nlohmann::json j = {{"metric", to_string(f.metric)},
                        {"interval_ms", f.interval_ms},
                        {"sensitivity", f.sensitivity},
                        {"min_weight", f.min_weight}};
    if (f.metric == LoadMetric::exec) {
        j["command"] = f.command;
        j["user"] = f.user;
        j["timeout_ms"] = f.timeout_ms;
    }
    return j;
}

} // namespace nlb
