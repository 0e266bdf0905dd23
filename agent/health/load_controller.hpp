// Load feedback for one port rule on this host (docs/load-feedback.md), pure: measurements
// and the members' published loads in, this host's effective weight out. No clock of its
// own, no I/O: the agent feeds it, the tests feed it a simulated clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "config.hpp"

namespace nlb {

// The largest cost a heartbeat carries (a u32 of thousandths, docs/load-feedback.md): the
// members' costs arrive saturated there, and this host's own is compared as it publishes it.
inline constexpr double kMaxPublishedCost = 4294967295.0 / 1000.0;

class LoadController {
  public:
    // `configured`: the rule's load_weight here (0..100, "equal" as 50).
    LoadController(const LoadFeedbackConfig& config, std::uint32_t configured);

    // One measurement of the metric at `now_ms`. The first one seeds the filter.
    void sample(double value, std::int64_t now_ms);
    bool has_load() const { return has_load_; }
    // What the heartbeat publishes: for connections the smoothed load per unit of the
    // (smoothed) effective weight, the cost of a unit of share on this host; for the other
    // metrics the smoothed level itself. None before the filter is warm (four intervals),
    // while idle (below one unit of the metric) or while this host has no share.
    std::optional<double> published_cost() const;

    // At most once per interval_ms: `members` are the published costs of the members (this
    // host's among them). Effective weights in proportion to configured weight ÷ cost give
    // every member the same load per unit of configured weight; the cheapest member keeps
    // its configured weight. Returns the new effective weight when the wanted one differs
    // from the one last returned by more than 2 × `sensitivity` × the configured weight at three
    // updates running (a coarse move, to the wanted weight; after a coarse move up, up again
    // takes the sensitivity, and any gap when the wanted weight is the configured one), or when the
    // mean of the wanted weights over a window of kFineWindow updates differs from it by more than
    // `sensitivity` × the current weight (a fine move, to that mean). The first window starts
    // 8 updates (two time constants) after a move, windows do not overlap, after each fine move in
    // a row the next is twice as long (up to 4×).
    std::optional<std::uint8_t> update(std::span<const double> members, std::int64_t now_ms);

    // The operator changed load_weight: the factor stays, applied to the new weight.
    std::optional<std::uint8_t> set_configured(std::uint32_t configured);

    std::uint8_t weight() const { return weight_; } // effective, as last returned
    double factor() const { return factor_; }       // effective / configured, before rounding
    double wanted_factor() const { return factor_wanted_; } // at the last update
    double load() const { return load_; }                   // smoothed, in the metric's unit
    double cheapest() const { return cheapest_; }           // the members' lowest cost, last update

    static constexpr std::size_t kFineWindow = 20; // updates behind a fine move

  private:
    std::uint8_t target(double factor) const;
    std::uint8_t move_to(double factor); // the effective weight for `factor`, made current
    // connections grow with the share a host gets; cpu, probe latency and a command's number
    // are levels compared as they are (dividing them by the weight would run away: a lower
    // weight would raise the cost it is meant to lower).
    bool scales_with_share() const;

    LoadFeedbackConfig config_;
    std::uint32_t configured_;
    double load_ = 0;
    double mean_weight_; // the effective weight, smoothed like the load it causes
    bool has_load_ = false;
    std::int64_t last_sample_ms_ = 0;
    std::int64_t first_sample_ms_ = 0;
    std::optional<std::int64_t> last_update_ms_;
    double factor_ = 1.0;        // of the weight last returned
    double factor_wanted_ = 1.0; // at the last update
    int streak_ = 0;             // updates in a row wanting a move in last_direction_
    int last_direction_ = 0;
    double recent_sum_ = 0;        // of the wanted factors in this fine window
    std::size_t recent_count_ = 0; // updates in this fine window
    int fine_run_ = 0;             // fine moves since the last coarse one
    int settling_ = 0;             // updates until the fine window opens after a move
    bool rising_ = false;          // the last move was a coarse one up
    double cheapest_ = 0;
    std::uint8_t weight_;
};

// The busy share of the machine's CPUs between two readings of /proc/stat's first line
// ("cpu  user nice system idle iowait irq softirq steal ..."), 0..1; nullopt for a line it
// cannot read or no time between the two.
std::optional<double> cpu_busy_share(const std::string& before, const std::string& after);

// The first number of a command's output ("42", " 0.75\n", "3 requests"); nullopt without one.
std::optional<double> parse_metric_output(const std::string& text);

} // namespace nlb
