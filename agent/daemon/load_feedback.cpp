#include "load_feedback.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <string>

namespace nlb {

struct LoadFeedback::Rule {
    std::size_t index; // in port_rules
    LoadFeedbackConfig config;
    std::uint32_t configured;
    LoadController controller;
    ProbeTarget exec; // metric exec only
    std::shared_ptr<ProbeCheck> running;
    std::weak_ptr<ProbeCheck> last; // the latest run, while anything keeps it
    std::chrono::milliseconds next_exec{0};
    std::string last_error; // the exec metric's last failure, for query
};

namespace {

std::uint32_t configured_weight(const PortRuleConfig& r) {
    return r.load_weight ? *r.load_weight : kEqualWeightValue;
}

std::string first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

std::chrono::milliseconds steady_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
}

} // namespace

LoadFeedback::LoadFeedback(boost::asio::io_context& io, const Config& config, EventLog& log)
    : io_(io), log_(log) {
    for (std::size_t i = 0; i < config.port_rules.size(); ++i) {
        const PortRuleConfig& r = config.port_rules[i];
        if (!r.load_feedback)
            continue;
        auto rule =
            std::make_unique<Rule>(Rule{i,
                                        *r.load_feedback,
                                        configured_weight(r),
                                        LoadController(*r.load_feedback, configured_weight(r)),
                                        {},
                                        nullptr,
                                        {},
                                        {},
                                        {}});
        if (r.load_feedback->metric == LoadMetric::exec) {
            ProbeConfig p;
            p.name = "load_feedback";
            p.type = ProbeType::exec;
            p.command = r.load_feedback->command;
            p.user = r.load_feedback->user;
            p.timeout_ms = r.load_feedback->timeout_ms;
            rule->exec = resolve_probe(p, config.host.dedicated_ip,
                                       "port_rules[" + std::to_string(i) + "].load_feedback");
            rule->exec.capture_output = true;
        }
        rules_.push_back(std::move(rule));
    }
}

LoadFeedback::~LoadFeedback() {
    *alive_ = false;
    for (auto& r : rules_)
        if (r->running)
            r->running->cancel();
}

bool LoadFeedback::counts_connections() const {
    for (const auto& r : rules_)
        if (r->config.metric == LoadMetric::connections)
            return true;
    return false;
}

void LoadFeedback::sample(const std::array<std::uint64_t, NLB_RULE_SLOTS>& live_by_rule,
                          const HealthMonitor& health, std::chrono::milliseconds now) {
    // The CPU once per call for every rule that wants it: the busy share since the last call.
    bool want_cpu = false;
    for (const auto& r : rules_)
        want_cpu |= r->config.metric == LoadMetric::cpu;
    if (want_cpu) {
        std::string line = first_line("/proc/stat");
        if (!cpu_before_.empty())
            cpu_share_ = cpu_busy_share(cpu_before_, line);
        cpu_before_ = std::move(line);
    }
    for (auto& r : rules_) {
        switch (r->config.metric) {
        case LoadMetric::connections:
            if (r->index < NLB_RULE_SLOTS)
                r->controller.sample(static_cast<double>(live_by_rule[r->index]), now.count());
            break;
        case LoadMetric::cpu:
            if (cpu_share_)
                r->controller.sample(*cpu_share_ * 100.0, now.count()); // percent
            break;
        case LoadMetric::probe_latency:
            if (auto ms = health.latency_ms(r->index))
                r->controller.sample(*ms, now.count());
            break;
        case LoadMetric::exec:
            if (r->running || now < r->next_exec)
                break;
            if (const auto last = r->last.lock(); last && last->lingering())
                break; // the last run timed out and runs on (its kill refused): not another
            r->next_exec = now + std::chrono::milliseconds(r->config.interval_ms);
            r->running = ProbeCheck::start(
                io_, r->exec, [this, alive = alive_, rule = r.get()](const CheckResult& result) {
                    if (!*alive)
                        return;
                    rule->running.reset();
                    auto value = result.outcome == CheckResult::Outcome::passed
                                     ? parse_metric_output(result.output)
                                     : std::nullopt;
                    if (value) {
                        rule->controller.sample(*value, steady_now().count());
                        rule->last_error.clear();
                        return;
                    }
                    const std::string why = result.outcome == CheckResult::Outcome::passed
                                                ? "no number in its output"
                                                : result.detail;
                    if (why != rule->last_error)
                        log_.warn("port_rules[" + std::to_string(rule->index) +
                                  "].load_feedback: the command failed: " + why);
                    rule->last_error = why;
                });
            r->last = r->running;
            break;
        }
    }
}

void LoadFeedback::publish(ConvergenceEngine& engine) const {
    std::uint32_t mask = 0;
    std::array<std::uint32_t, NLB_MAX_RULES> loads{};
    for (const auto& r : rules_) {
        const auto cost = r->controller.published_cost();
        if (!cost || r->index >= NLB_MAX_RULES)
            continue;
        // Thousandths (published_cost() saturates at what fits): a cost is a load per unit of
        // weight, never negative.
        const double scaled = std::round(*cost * 1000.0);
        loads[r->index] = static_cast<std::uint32_t>(
            std::min(scaled, static_cast<double>(std::numeric_limits<std::uint32_t>::max())));
        mask |= std::uint32_t{1} << r->index;
    }
    engine.set_loads(mask, loads);
}

bool LoadFeedback::update(const ConvergenceEngine& engine, std::chrono::milliseconds now) {
    bool changed = false;
    for (auto& r : rules_) {
        std::vector<double> costs;
        for (const auto& [priority, load] : engine.loads_of(r->index))
            costs.push_back(static_cast<double>(load) / 1000.0);
        const std::uint8_t before = r->controller.weight();
        if (auto w = r->controller.update(costs, now.count())) {
            changed = true;
            log_.event("load_weight_changed", {{"rule", r->index},
                                               {"weight", *w},
                                               {"previous", before},
                                               {"configured", r->configured},
                                               {"load", r->controller.load()},
                                               {"cost", r->controller.published_cost().value_or(0)},
                                               {"cheapest", r->controller.cheapest()},
                                               {"members", costs.size()}});
        }
    }
    return changed;
}

bool LoadFeedback::reconfigure(const Config& config) {
    bool changed = false;
    for (auto& r : rules_) {
        r->configured = configured_weight(config.port_rules[r->index]);
        changed |= r->controller.set_configured(r->configured).has_value();
    }
    return changed;
}

void LoadFeedback::apply_to(std::vector<HostRuleParams>& params) const {
    for (const auto& r : rules_)
        if (r->index < params.size())
            params[r->index].load_weight = r->controller.weight();
}

nlohmann::json LoadFeedback::status() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rules_) {
        nlohmann::json j = {{"rule", r->index},
                            {"metric", to_string(r->config.metric)},
                            {"configured_weight", r->configured},
                            {"effective_weight", r->controller.weight()},
                            {"factor", r->controller.factor()},
                            {"load", r->controller.has_load() ? nlohmann::json(r->controller.load())
                                                              : nlohmann::json(nullptr)},
                            {"cost", r->controller.published_cost()
                                         ? nlohmann::json(*r->controller.published_cost())
                                         : nlohmann::json(nullptr)},
                            {"cheapest", r->controller.cheapest()}};
        if (!r->last_error.empty())
            j["error"] = r->last_error;
        out.push_back(std::move(j));
    }
    return out;
}

} // namespace nlb
