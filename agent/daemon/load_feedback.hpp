// Load feedback on this host (docs/load-feedback.md): for each port rule with `load_feedback`,
// its metric measured (once a heartbeat period; exec once an interval, never blocking the
// loop), smoothed and published through the engine's heartbeat; the members' costs in, the
// effective load weights out. The controllers are pure (load_controller.hpp); this is their I/O.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <nlb/limits.h>

#include "config.hpp"
#include "convergence_engine.hpp"
#include "event_log.hpp"
#include "health_monitor.hpp"
#include "load_controller.hpp"
#include "probe_check.hpp"

namespace nlb {

class LoadFeedback {
  public:
    // Resolves the exec metrics' users; throws std::runtime_error naming the key.
    LoadFeedback(boost::asio::io_context& io, const Config& config, EventLog& log);
    ~LoadFeedback();
    LoadFeedback(const LoadFeedback&) = delete;
    LoadFeedback& operator=(const LoadFeedback&) = delete;

    // Whether any port rule has load feedback.
    bool active() const { return !rules_.empty(); }
    // Whether any rule's metric is its tracked connections: the agent then scans the
    // connection tables every period for it.
    bool counts_connections() const;

    // Once a heartbeat period: the live connections per rule slot (the connection scan) and
    // the probes (their latencies); starts the exec metrics that are due.
    void sample(const std::array<std::uint64_t, NLB_RULE_SLOTS>& live_by_rule,
                const HealthMonitor& health, std::chrono::milliseconds now);
    // This host's costs into its heartbeats.
    void publish(ConvergenceEngine& engine) const;
    // Each controller's update from the members' costs; true when an effective weight changed
    // (the caller hands the engine the new rule parameters).
    bool update(const ConvergenceEngine& engine, std::chrono::milliseconds now);
    // The operator's new load_weight values (a reload); true when an effective weight changed.
    bool reconfigure(const Config& config);
    // Replaces the configured weight of every rule with feedback by its effective weight.
    void apply_to(std::vector<HostRuleParams>& params) const;

    nlohmann::json status() const; // nlbadm query's "load_feedback"

  private:
    struct Rule;
    boost::asio::io_context& io_;
    EventLog& log_;
    std::vector<std::unique_ptr<Rule>> rules_;
    std::string cpu_before_; // /proc/stat's first line at the last cpu sample
    std::optional<double> cpu_share_;
    // Exec callbacks that outlive this object see it expired.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace nlb
