#include "replay_guard.hpp"

#include <algorithm>
#include <limits>

namespace nlb::remote {

ReplayGuard::ReplayGuard(std::int64_t window_ms, std::size_t capacity)
    : window_ms_(window_ms), capacity_(capacity) {
    seen_.reserve(capacity_);
}

ReplayGuard::Verdict ReplayGuard::check(const Nonce& nonce, std::int64_t timestamp_ms,
                                        std::int64_t now_ms) {
    if (seen_.count(nonce))
        return Verdict::replay;
    // Sweeping costs one pass over the table, so it is done only when the table is full and
    // some entry is known to have expired: at most once per expiry, however many requests
    // come.
    if (seen_.size() >= capacity_ && now_ms > earliest_expiry_)
        forget_expired(now_ms);
    if (seen_.size() >= capacity_)
        return Verdict::full;
    const std::int64_t expiry = timestamp_ms + window_ms_;
    earliest_expiry_ = seen_.empty() ? expiry : std::min(earliest_expiry_, expiry);
    seen_.emplace(nonce, expiry);
    return Verdict::fresh;
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
