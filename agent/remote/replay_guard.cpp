#include "replay_guard.hpp"

#include <algorithm>
#include <limits>

#include "kept_number.hpp"

namespace nlb::remote {

ReplayGuard::ReplayGuard(std::int64_t window_ms, std::size_t capacity)
    : window_ms_(window_ms), capacity_(capacity) {
    seen_.reserve(capacity_);
}

ReplayGuard::ReplayGuard(std::int64_t window_ms, std::string state_file, std::int64_t now_ms,
                         std::size_t capacity)
    : ReplayGuard(window_ms, capacity) {
    state_file_ = std::move(state_file);
    // Without a saved timestamp (first start, a reboot emptied /run, a damaged file) the
    // start is the floor: a request run before it was stamped before it, unless the
    // sender's clock ran ahead of ours by more than the time since (NTP keeps that to
    // milliseconds, a restart takes longer). With one, every request ever run is covered,
    // whatever the clocks.
    floor_ = now_ms;
    const KeptNumber saved = read_kept_number(state_file_);
    if (saved.value) {
        saved_ = *saved.value;
        floor_ = std::max(floor_, *saved.value);
    }
    load_error_ = saved.error;
}

ReplayGuard::Verdict ReplayGuard::check(const Nonce& nonce, std::int64_t timestamp_ms,
                                        std::int64_t now_ms) {
    if (seen_.count(nonce))
        return Verdict::replay;
    if (timestamp_ms <= floor_)
        return Verdict::before_start;
    // Sweeping costs one pass over the table, so it is done only when the table is full and
    // some entry is known to have expired: at most once per expiry, however many requests
    // come.
    if (seen_.size() >= capacity_ && now_ms > earliest_expiry_)
        forget_expired(now_ms);
    if (seen_.size() >= capacity_)
        return Verdict::full;
    // Saved before the request runs: a crash right after it must not let a copy in. One small
    // write and a rename per request that raises the timestamp, i.e. per operator command:
    // nothing next to running it. Only key holders get here, at most `capacity_` times per
    // window.
    if (!state_file_.empty() && timestamp_ms > saved_ && !save(timestamp_ms))
        return Verdict::unsaved;
    const std::int64_t expiry = timestamp_ms + window_ms_;
    earliest_expiry_ = seen_.empty() ? expiry : std::min(earliest_expiry_, expiry);
    seen_.emplace(nonce, expiry);
    return Verdict::fresh;
}

bool ReplayGuard::save(std::int64_t timestamp_ms) {
    // After a crash of the machine (or a reboot, which empties /run) the start is the floor,
    // which covers what the file would have held as long as the clocks agree closer than a
    // boot takes.
    save_error_ = write_kept_number(state_file_, timestamp_ms);
    if (!save_error_.empty())
        return false;
    saved_ = timestamp_ms;
    return true;
}

void ReplayGuard::forget_expired(std::int64_t now_ms) {
    std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
    for (auto it = seen_.begin(); it != seen_.end();) {
        if (it->second < now_ms) {
            it = seen_.erase(it);
        } else {
            earliest = std::min(earliest, it->second);
            ++it;
        }
    }
    earliest_expiry_ = earliest;
}

} // namespace nlb::remote
