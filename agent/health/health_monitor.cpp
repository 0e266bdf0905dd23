#include "health_monitor.hpp"

#include <ctime>

#include "config_health.hpp"

namespace nlb {

using json = nlohmann::json;
using Steady = std::chrono::steady_clock;

namespace {

std::string iso8601(std::chrono::system_clock::time_point t) {
    const std::time_t s = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

json rule_list(std::uint32_t mask) {
    json out = json::array();
    for (int r = 0; r < 32; ++r)
        if ((mask >> r) & 1)
            out.push_back(r);
    return out;
}

} // namespace

HealthMonitor::Probe::Probe(boost::asio::io_context& io, std::size_t i, ProbeConfig c,
                            ProbeTarget t, std::uint32_t r)
    : index(i), config(std::move(c)), target(std::move(t)), rules(r),
      verdict(config.rise, config.fall), timer(io), since(Steady::now()),
      since_wall(std::chrono::system_clock::now()) {}

HealthMonitor::HealthMonitor(boost::asio::io_context& io, const Config& config,
                             OnVerdict on_verdict)
    : io_(io), on_verdict_(std::move(on_verdict)) {
    if (!config.health)
        return;
    for (std::size_t i = 0; i < config.health->probes.size(); ++i) {
        const ProbeConfig& c = config.health->probes[i];
        const std::string key = "health.probes[" + std::to_string(i) + "]";
        probes_.push_back(std::make_unique<Probe>(io, i, c,
                                                  resolve_probe(c, config.host.dedicated_ip, key),
                                                  guarded_rules(c, config.port_rules)));
    }
}

void HealthMonitor::set_rules(const Config& config) {
    if (!config.health)
        return;
    for (auto& p : probes_)
        if (p->index < config.health->probes.size())
            p->rules = guarded_rules(config.health->probes[p->index], config.port_rules);
}

void HealthMonitor::resolve_all(const Config& config) {
    if (!config.health)
        return;
    for (std::size_t i = 0; i < config.health->probes.size(); ++i)
        resolve_probe(config.health->probes[i], config.host.dedicated_ip,
                      "health.probes[" + std::to_string(i) + "]");
}

HealthMonitor::~HealthMonitor() {
    *alive_ = false;
    for (auto& p : probes_) {
        p->timer.cancel();
        if (p->running)
            p->running->cancel();
    }
}

void HealthMonitor::start() {
    // Spread the first checks a little, so that probes of one interval do not run in step.
    auto at = Steady::now();
    for (auto& p : probes_) {
        schedule(*p, at);
        at += std::chrono::milliseconds(10);
    }
}

void HealthMonitor::schedule(Probe& p, Steady::time_point at) {
    p.timer.expires_at(at);
    p.timer.async_wait(
        [this, &p, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
            if (ec || alive.expired())
                return;
            check(p);
        });
}

void HealthMonitor::check(Probe& p) {
    const auto started = Steady::now();
    // The next check starts one interval after this one started. The timeout is at most the
    // interval, but equal to it the next check comes a moment before the deadline: a check
    // still running has had its whole time, and counts as the timeout it is (dropped
    // unrecorded, a hung backend never went down).
    schedule(p, started + std::chrono::milliseconds(p.config.interval_ms));
    if (p.running) {
        auto late = std::move(p.running);
        late->expire(); // records it, through the callback below
    }
    if (const auto latest = p.latest.lock(); latest && latest->lingering()) {
        // The command of a check that timed out runs on (its kill refused): another beside
        // it would hang as well, and they would pile up. This check is that one's timeout.
        CheckResult r;
        r.outcome = CheckResult::Outcome::timeout;
        r.detail = "the last check's command still runs (its kill was refused)";
        // As long as a timeout, not the fastest answer (probe_latency load feedback).
        r.latency = std::chrono::milliseconds(p.config.timeout_ms);
        return record(p, r);
    }
    p.running = ProbeCheck::start(
        io_, p.target, [this, &p, alive = std::weak_ptr<bool>(alive_)](const CheckResult& r) {
            if (alive.expired())
                return;
            p.running.reset();
            record(p, r);
        });
    p.latest = p.running;
}

void HealthMonitor::record(Probe& p, const CheckResult& r) {
    const bool passed = r.outcome == CheckResult::Outcome::passed;
    switch (r.outcome) {
    case CheckResult::Outcome::passed:
        ++p.passed;
        break;
    case CheckResult::Outcome::failed:
        ++p.failed;
        break;
    case CheckResult::Outcome::timeout:
        ++p.timeouts;
        break;
    }
    const double seconds = static_cast<double>(r.latency.count()) / 1e6;
    p.latency_sum_s += seconds;
    for (std::size_t b = 0; b < kProbeLatencyBuckets.size(); ++b)
        if (seconds <= kProbeLatencyBuckets[b]) {
            ++p.latency[b];
            break;
        }
    p.last = r;
    p.last_wall = std::chrono::system_clock::now();
    if (p.verdict.record(passed)) {
        p.since = Steady::now();
        p.since_wall = p.last_wall;
        if (on_verdict_)
            on_verdict_(p.index, p.verdict.up(), r);
    }
}

std::uint32_t HealthMonitor::down_rules() const {
    std::uint32_t mask = 0;
    for (const auto& p : probes_)
        if (!p->verdict.up())
            mask |= p->rules;
    return mask;
}

std::uint32_t HealthMonitor::guarded() const {
    std::uint32_t mask = 0;
    for (const auto& p : probes_)
        mask |= p->rules;
    return mask;
}

std::optional<double> HealthMonitor::latency_ms(std::size_t rule) const {
    std::optional<double> slowest;
    for (const auto& p : probes_)
        if (rule < 32 && ((p->rules >> rule) & 1) && p->last) {
            const double ms = static_cast<double>(p->last->latency.count()) / 1000.0;
            slowest = std::max(slowest.value_or(0.0), ms);
        }
    return slowest;
}

json HealthMonitor::status() const {
    json out = json::array();
    const auto now = Steady::now();
    for (const auto& p : probes_) {
        json j = {
            {"name", p->config.name},
            {"type", to_string(p->config.type)},
            {"verdict", p->verdict.up() ? "up" : "down"},
            {"since", iso8601(p->since_wall)},
            {"since_s", std::chrono::duration_cast<std::chrono::seconds>(now - p->since).count()},
            {"streak", p->verdict.streak()},
            {"rise", p->config.rise},
            {"fall", p->config.fall},
            {"rules", rule_list(p->rules)}};
        if (p->last) {
            j["last_result"] = to_string(p->last->outcome);
            j["last_detail"] = p->last->detail;
            j["last_check"] = iso8601(p->last_wall);
            j["last_latency_ms"] = static_cast<double>(p->last->latency.count()) / 1000.0;
        } else {
            j["last_result"] = nullptr; // not checked yet
        }
        out.push_back(std::move(j));
    }
    return out;
}

json HealthMonitor::stats() const {
    json out = json::array();
    for (const auto& p : probes_) {
        json buckets = json::array();
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < kProbeLatencyBuckets.size(); ++b) {
            cumulative += p->latency[b];
            buckets.push_back({kProbeLatencyBuckets[b], cumulative});
        }
        const std::uint64_t count = p->passed + p->failed + p->timeouts;
        out.push_back(
            {{"name", p->config.name},
             {"up", p->verdict.up()},
             {"checks", {{"passed", p->passed}, {"failed", p->failed}, {"timeout", p->timeouts}}},
             {"latency", {{"buckets", buckets}, {"sum", p->latency_sum_s}, {"count", count}}}});
    }
    return out;
}

} // namespace nlb
