// Runs this host's health probes (docs/health.md) on the agent's io_context: one check per
// probe at a time, every interval_ms, each bounded by its timeout_ms; keeps each probe's
// verdict (rise/fall), last result and counters, and says which port rules the probes hold
// down. The agent hands that to the engine and logs the changes.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "config.hpp"
#include "probe_check.hpp"
#include "probe_verdict.hpp"

namespace nlb {

// Upper bounds (seconds) of the latency histogram's buckets; +Inf follows.
inline constexpr std::array<double, 12> kProbeLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

class HealthMonitor {
  public:
    // A probe's verdict changed: its index in the config, the check that changed it.
    using OnVerdict = std::function<void(std::size_t probe, bool up, const CheckResult& result)>;

    // Resolves every probe (exec users, tcp default address); throws std::runtime_error
    // naming the key. Nothing runs before start().
    HealthMonitor(boost::asio::io_context& io, const Config& config, OnVerdict on_verdict);
    ~HealthMonitor();
    HealthMonitor(const HealthMonitor&) = delete;
    HealthMonitor& operator=(const HealthMonitor&) = delete;

    // What the constructor checks, without building anything: throws the same errors.
    static void resolve_all(const Config& config);

    void start();
    // The port rules changed (a staged configuration switched in): which rules each probe
    // guards is recomputed from its ports. Verdicts stay: the probes' targets did not change.
    void set_rules(const Config& config);
    // Port rules (bit r = port_rules[r]) guarded by at least one probe that is down.
    std::uint32_t down_rules() const;
    // Port rules guarded by at least one probe.
    std::uint32_t guarded() const;
    // The latest check latency of the probes guarding port rule `rule` (the slowest), in ms;
    // none before a check of one of them finished (load feedback's probe_latency).
    std::optional<double> latency_ms(std::size_t rule) const;
    std::size_t size() const { return probes_.size(); }
    const std::string& name(std::size_t i) const { return probes_[i]->config.name; }

    // nlbadm query's "health.probes": verdict, since when, last result, guarded rules.
    nlohmann::json status() const;
    // nlbadm stats's "probes": up, checks by result, latency histogram (docs/metrics.md).
    nlohmann::json stats() const;

  private:
    struct Probe {
        std::size_t index;
        ProbeConfig config;
        ProbeTarget target;
        std::uint32_t rules = 0;
        ProbeVerdict verdict;
        boost::asio::steady_timer timer;
        std::shared_ptr<ProbeCheck> running;
        std::weak_ptr<ProbeCheck> latest; // the latest check, while anything keeps it
        std::chrono::steady_clock::time_point since;
        std::chrono::system_clock::time_point since_wall;
        std::optional<CheckResult> last;
        std::chrono::system_clock::time_point last_wall;
        std::uint64_t passed = 0, failed = 0, timeouts = 0;
        std::array<std::uint64_t, kProbeLatencyBuckets.size()> latency{}; // not cumulative
        double latency_sum_s = 0;
        Probe(boost::asio::io_context& io, std::size_t i, ProbeConfig c, ProbeTarget t,
              std::uint32_t r);
    };

    void schedule(Probe& p, std::chrono::steady_clock::time_point at);
    void check(Probe& p);
    void record(Probe& p, const CheckResult& result);

    boost::asio::io_context& io_;
    OnVerdict on_verdict_;
    std::vector<std::unique_ptr<Probe>> probes_;
    // Handlers that outlive the monitor (a check finishing after it is gone) see it expired.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace nlb
