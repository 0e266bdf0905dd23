#include "load_controller.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>

namespace nlb {

namespace {

// Updates in a row that must want the same coarse move before it is made: a noisy metric
// crosses the sensitivity now and then by chance, rarely three times running (with two, a
// connection count of a few dozen still moved a weight about four times a minute in
// tests/e2e/test_load_feedback.sh).
constexpr int kConfirmations = 3;
constexpr double kIdle = 1.0;
// The filter's time constant, in feedback intervals. A few dozen connections counted per
// period are ±20 % noise, and counts a connection's lifetime apart are the same connections:
// over four intervals the wanted weight is still good only to about ±8 % (a Poisson model of
// the e2e test, docs/load-feedback.md); three let noise through as coarse moves.
constexpr int kSmoothing = 4;

} // namespace

LoadController::LoadController(const LoadFeedbackConfig& config, std::uint32_t configured)
    : config_(config), configured_(configured), mean_weight_(configured),
      weight_(static_cast<std::uint8_t>(configured)) {}

void LoadController::sample(double value, std::int64_t now_ms) {
    if (!std::isfinite(value) || value < 0)
        return;
    if (!has_load_) {
        load_ = value;
        mean_weight_ = weight_;
        has_load_ = true;
        last_sample_ms_ = now_ms;
        first_sample_ms_ = now_ms;
        return;
    }
    // An exponentially weighted mean with kSmoothing feedback intervals as time constant: one
    // number of state, correct for irregular sampling (a sample weighs by the time since the
    // last), it lets a step through within a few intervals while one outlier moves it by a
    // fraction (ND's advisors smooth alike). The weight is smoothed the same way, so that
    // their ratio compares a load with the weight that caused it.
    const double dt = static_cast<double>(std::max<std::int64_t>(0, now_ms - last_sample_ms_));
    const double alpha =
        1.0 - std::exp(-dt / (kSmoothing * static_cast<double>(config_.interval_ms)));
    const bool was_idle = load_ < kIdle;
    load_ += alpha * (value - load_);
    mean_weight_ += alpha * (static_cast<double>(weight_) - mean_weight_);
    last_sample_ms_ = now_ms;
    // Idle, then busy (traffic starts, or comes back): the filter climbs from nothing, and
    // small noisy numbers in that climb made coarse moves in the e2e test. Warm-up again.
    if (was_idle && load_ >= kIdle)
        first_sample_ms_ = now_ms;
}

bool LoadController::scales_with_share() const {
    return config_.metric == LoadMetric::connections;
}

std::optional<double> LoadController::published_cost() const {
    // Nothing until the filter is warm, nothing while idle: a joiner's or a drained host's
    // small numbers are no cost at all, and the others would give share to it.
    if (!has_load_ || load_ < kIdle ||
        last_sample_ms_ - first_sample_ms_ <
            kSmoothing * static_cast<std::int64_t>(config_.interval_ms))
        return std::nullopt;
    // Saturated as the heartbeat carries it: the members' costs arrive so, and this host's
    // own, compared with them (among them its own copy), must be the same number.
    if (!scales_with_share()) // a level the host's share does not make (CPU, latency, a command's)
        return std::min(load_, kMaxPublishedCost);
    if (mean_weight_ < 0.5)
        return std::nullopt;
    return std::min(load_ / mean_weight_, kMaxPublishedCost);
}

std::uint8_t LoadController::target(double factor) const {
    if (configured_ == 0)
        return 0;
    const double w = std::round(static_cast<double>(configured_) * factor);
    const double floor = std::min<double>(config_.min_weight, configured_);
    return static_cast<std::uint8_t>(std::clamp(w, floor, static_cast<double>(configured_)));
}

std::optional<std::uint8_t> LoadController::update(std::span<const double> members,
                                                   std::int64_t now_ms) {
    if (last_update_ms_ && now_ms - *last_update_ms_ < config_.interval_ms)
        return std::nullopt;
    last_update_ms_ = now_ms;
    // Until the filter has seen a time constant of samples its mean is mostly the first one,
    // and published_cost() says nothing; below one unit of its metric a host is idle.
    const bool warm = has_load_ && now_ms - first_sample_ms_ >=
                                       kSmoothing * static_cast<std::int64_t>(config_.interval_ms);
    if (!warm || configured_ == 0)
        return std::nullopt;
    const auto own = published_cost();
    double cheapest = own ? *own : 0;
    for (double c : members)
        if (c > 0 && (cheapest == 0 || c < cheapest))
            cheapest = c;
    cheapest_ = cheapest;
    // A member with no load at all costs nothing measurable: it takes shares until it
    // does, everyone else keeps theirs.
    const double floor =
        static_cast<double>(std::min<std::uint32_t>(config_.min_weight, configured_)) /
        static_cast<double>(configured_);
    // Under one unit of its metric (a connection, a percent of CPU, a millisecond) a host is
    // idle: ratios of such small numbers are noise, not evidence against its share.
    // An idle host, or one alone with a cost, wants its configured weight back; so does one
    // whose weight fell to nothing (min_weight 0): it has no cost to publish, but no evidence
    // against its share either.
    const bool compared = own && *own > 0 && members.size() >= 2 && cheapest > 0;
    // Within the sensitivity of the cheapest is the cheapest: the lowest of several noisy
    // costs sits below their true value, and members equal in truth would otherwise aim a
    // few percent low and stay there (45 of 50 beside 50: 1.16x the connections in the e2e
    // test, against its 15 % goal).
    const bool cheap = compared && *own <= cheapest * (1.0 + config_.sensitivity);
    const double wanted = std::clamp(compared && !cheap ? cheapest / *own : 1.0, floor, 1.0);
    factor_wanted_ = wanted;
    const std::uint8_t next = target(wanted);
    // Coarse: beyond twice the sensitivity of the configured weight (the scale the operator
    // set), the same direction three times running, to the wanted weight as it is now. Twice:
    // the smoothed wanted weight carries about ±8 % of counting noise, and successive
    // values are correlated, so at once the sensitivity one excursion could pass for three
    // (a move to 43 of 50 between equal servers, once in four e2e runs); what lies between
    // the two is the fine move's, on a mean of 20. On a way back up that a coarse move up
    // began, the sensitivity alone will do: a host recovering from a slow server first moves
    // part of the way (its filter still holds some of the slow spell) and would then wait
    // for the fine move's 20 updates for the rest (37 of 50 25 s after the cause went, in
    // the e2e test). Not otherwise: a host a tenth dearer than the cheapest, settled by a
    // fine move a few points below its weight, is within the sensitivity now and then by
    // chance, and three such updates in a row took it back up, the fine move down again
    // (280 moves in 480 minutes of a Poisson model; 47 now).
    // On such a way back up, with no evidence against its share at all (the cheapest, idle
    // or alone), any gap to the configured weight is a move up: a gap within the
    // sensitivity (45 of 50) would otherwise wait for a fine move, whose mean beside equal
    // servers is rarely a tenth above 45 (97 s in a model of the e2e test, against its 50 s).
    const bool unopposed = rising_ && wanted == 1.0 && next > weight_;
    const double moved = (static_cast<double>(next) - weight_) / static_cast<double>(configured_);
    const double deadband = (moved > 0 && rising_ ? 1 : 2) * config_.sensitivity;
    const int direction = unopposed ? 1 : std::abs(moved) <= deadband ? 0 : (moved > 0 ? 1 : -1);
    streak_ = direction != 0 && direction == last_direction_ ? streak_ + 1 : (direction ? 1 : 0);
    last_direction_ = direction;
    if (streak_ >= kConfirmations) {
        fine_run_ = 0;
        rising_ = direction > 0;
        return move_to(wanted);
    }
    // Fine: a coarse deadband alone leaves a small weight up to sensitivity x configured off
    // (14 for 17 of 50: a fifth of its load off), so once a mean of kFineWindow updates since
    // the last move is beyond the sensitivity of the current weight, move there. The mean
    // begins two time constants after a move: before, the filters still hold the load and
    // weight from before it (a fine move to 18 after a coarse one to 22, then to 16, in the
    // e2e test). It is tested once per window, not slid along every update: each test is a
    // chance for noise to pass for a change, and a sliding one took 20 a window. Each fine
    // move in a row doubles the next window (to 80): the first corrects the coarse move, a
    // second one is as likely noise, and a mean of more updates tells them apart (a Poisson
    // model of the e2e test: 75 steady moves in 160 minutes, sometimes 19, 16, 18 within
    // 30 s; now 10, never two within 30 s).
    if (settling_ > 0) {
        --settling_;
        return std::nullopt;
    }
    recent_sum_ += wanted;
    ++recent_count_;
    const std::size_t window = kFineWindow << std::min<int>(fine_run_, 2);
    if (recent_count_ < window)
        return std::nullopt;
    const double mean = recent_sum_ / static_cast<double>(recent_count_);
    recent_sum_ = 0;
    recent_count_ = 0;
    const std::uint8_t fine = target(mean);
    const double off = std::abs(mean * static_cast<double>(configured_) - weight_);
    if (fine == weight_ || off <= config_.sensitivity * std::max<double>(weight_, 1))
        return std::nullopt;
    ++fine_run_;
    rising_ = false;
    return move_to(mean);
}

std::uint8_t LoadController::move_to(double factor) {
    streak_ = 0;
    last_direction_ = 0;
    recent_count_ = 0; // the next mean starts from the load this move causes
    recent_sum_ = 0;
    settling_ = 2 * kSmoothing;
    factor_ = factor;
    weight_ = target(factor);
    return weight_;
}

std::optional<std::uint8_t> LoadController::set_configured(std::uint32_t configured) {
    configured_ = configured;
    const std::uint8_t next = target(factor_);
    if (next == weight_)
        return std::nullopt;
    weight_ = next;
    return weight_;
}

std::optional<double> cpu_busy_share(const std::string& before, const std::string& after) {
    auto read = [](const std::string& line, double& busy, double& total) {
        std::istringstream in(line);
        std::string name;
        in >> name;
        if (name != "cpu")
            return false;
        double v[8] = {};
        for (double& x : v)
            if (!(in >> x))
                return false;
        const double idle = v[3] + v[4]; // idle + iowait
        total = 0;
        for (double x : v)
            total += x;
        busy = total - idle;
        return true;
    };
    double b0 = 0, t0 = 0, b1 = 0, t1 = 0;
    if (!read(before, b0, t0) || !read(after, b1, t1) || t1 <= t0 || b1 < b0)
        return std::nullopt;
    return std::clamp((b1 - b0) / (t1 - t0), 0.0, 1.0);
}

std::optional<double> parse_metric_output(const std::string& text) {
    const char* p = text.c_str();
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        ++p;
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p || !std::isfinite(v) || v < 0)
        return std::nullopt;
    return v;
}

} // namespace nlb
