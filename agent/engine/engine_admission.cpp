// ConvergenceEngine, admission: what every 0x886F or contact frame passes before its contents
// count (cluster, HMAC, own echo, replay), in that order, so that a forged frame costs one HMAC.
#include "convergence_engine.hpp"

#include <algorithm>

#include "digest.hpp"
#include "engine_util.hpp"
#include "heartbeat_codec.hpp"

namespace nlb {

using detail::host_list;
using detail::in_view_state;
using detail::lowest;
using detail::serving_state;

void ConvergenceEngine::count_undecodable(DecodeError error) {
    if (error == DecodeError::bad_version)
        ++counters_.bad_version;
    else
        ++counters_.malformed;
}

bool ConvergenceEngine::admit(std::span<const std::uint8_t> frame, const FrameHead& head,
                              Path path, std::int64_t now) {
    if (head.cluster_ip != config_.cluster.ip) {
        ++counters_.other_cluster;
        return false;
    }
    if (auth_.keyed()) {
        if (!(head.flags & Heartbeat::kFlagAuthenticated)) {
            ++counters_.unauthenticated;
            note_unreadable(now, RefuseReason::key_mismatch);
            return false;
        }
        if (!auth_.verify(frame, head.total_length)) {
            ++counters_.bad_mac;
            note_unreadable(now, RefuseReason::key_mismatch);
            return false;
        }
    }
    if (head.priority == me_ && head.nonce == nonce_) {
        ++counters_.own;
        return false;
    }
    if (head.chunk)
        return true; // map chunks have a replay window of their own (on_map_chunk)
    auto& guard = path == Path::contact ? contact_replay_ : replay_;
    if (guard.check(head.priority, head.nonce, head.sequence) == ReplayGuard::Verdict::replay) {
        ++counters_.replayed;
        return false;
    }
    guard.accept(head.priority, head.nonce, head.sequence);
    return true;
}

void ConvergenceEngine::note_unreadable(std::int64_t now, RefuseReason why) {
    // Only what could hold this host back is tracked: once it has had a peer proving
    // contact, unreadable frames are counted and nothing else (anyone on the segment can
    // send them).
    if (had_peer_)
        return;
    if (now - last_unreadable_ > tolerance_ms())
        event(now, EventKind::unreadable, me_,
              why == RefuseReason::version
                  ? "frames of this cluster in a version this host cannot read"
                  : "frames of this cluster that fail authentication (another key?)");
    last_unreadable_ = now;
    unreadable_reason_ = why;
    if (state_ == HostState::refused &&
        (reason_ == RefuseReason::key_mismatch || reason_ == RefuseReason::version))
        last_conflict_ = now;
}

void ConvergenceEngine::observe(std::int64_t now) {
    // Inputs come at least every half period while the agent runs (next_tick); a longer gap
    // is a stall (SIGSTOP, a VM pause, a hung loop) during which the watchdog may have
    // stopped the dataplane and the cluster taken this host's buckets.
    const std::int64_t gap = now - last_input_;
    const std::int64_t limit =
        period() * std::max<std::int64_t>(1, config_.cluster.heartbeat_tolerance - 1);
    if (last_input_ >= 0 && gap > limit)
        on_stall(now, gap);
    last_input_ = std::max(last_input_, now);
}

void ConvergenceEngine::on_stall(std::int64_t now, std::int64_t gap) {
    ++counters_.stalls;
    event(now, EventKind::stalled, me_,
          "no input for " + std::to_string(gap) + " ms (watchdog " +
              std::to_string(period() * (config_.cluster.heartbeat_tolerance - 1)) +
              " ms): released every bucket, converging again");
    // Peers not heard meanwhile are dead now, before any decision uses them.
    for (auto p : peers_.expire(now, tolerance_ms())) {
        event(now, EventKind::host_left, p, "host " + std::to_string(p) + " not heard during the stall");
        ++params_generation_;
    }
    update_others_dirty();
    if (!participating())
        return;
    // Whatever this host owned may have been taken meanwhile: let go of it before anything
    // else, then converge like a host that just started.
    release_all(now, false);
    pending_take_ = false;
    to_take_.clear();
    frozen_ = false;
    recovering_ = true;
    started_at_ = now;
    if (state_ == HostState::converged)
        set_state(now, HostState::converging, "stall");
    begin_convergence(now, "stall of " + std::to_string(gap) + " ms");
}

} // namespace nlb
