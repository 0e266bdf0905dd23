// ConvergenceEngine, admission: what every 0x886F or contact frame passes before its contents
// count (cluster, HMAC, own echo, replay), in that order, so that a forged frame costs one HMAC.
#include "convergence_engine.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <limits>

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

void ConvergenceEngine::observe(std::int64_t now, std::int64_t at) {
    // Inputs come at least every half period while the agent runs (next_tick); a longer gap
    // is a stall (SIGSTOP, a VM pause, a hung loop) during which the watchdog may have
    // stopped the dataplane and the cluster taken this host's buckets.
    const std::int64_t gap = now - last_input_;
    const std::int64_t limit =
        period() * std::max<std::int64_t>(1, config_.cluster.heartbeat_tolerance - 1);
    // Judged at a queued frame's arrival, before its contents count: had the bound run out by
    // then, a peer may have taken this host's buckets, counted it alive again later and
    // confirmed a newer heartbeat (read in the same batch); if not, the peer sent the frame
    // before it could take anything, and what the frame confirms holds. A host held up
    // while such frames queued (waiting for a CPU) thus stops only where a host reading each
    // frame as it came would have. The batch's end, and every tick, judge the read time.
    at = std::max(judged_, std::min(at, now));
    if (link_held_ && !link_down_) {
        bool fresh = true;
        for (std::uint64_t bits = link_peers_; bits && fresh; bits &= bits - 1) {
            const auto p = static_cast<std::uint8_t>(std::countr_zero(bits) + 1);
            const auto sent = confirmed_.confirmed(p, peers_.peer(p).heartbeat.nonce);
            fresh = sent && *sent >= link_up_at_;
        }
        if (fresh) {
            link_held_ = false;
            confirmed_at_ = -1;
        }
    }
    if (last_input_ >= 0 && gap > limit) {
        on_stall(now, gap);
    } else if (last_input_ >= 0 && !recovering_ && participating() && (link_down_ || link_held_) &&
               at >= link_bound_.until.count()) {
        recover(now,
                "the link has been down for " + std::to_string(at - link_down_at_) +
                    " ms: peers may take this host's buckets from now on: released every "
                    "bucket; it joins again once the link is back",
                "link down");
    } else if (last_input_ >= 0 && !recovering_ && participating()) {
        // The dataplane stopped at the bound the agent armed it with after the last look;
        // the peer may have taken this host's buckets since, whatever this host still holds.
        // A look held up just after frames brought newer confirmations would find the cached
        // bound (worked out before them) past while the true one is ahead: 24 of 44 stalls
        // of a 64-host run at 100 ms were that, each a release and a convergence.
        const auto bound = confirmed_until_after(Millis(at));
        if (at >= bound.until.count()) {
            const auto sent = confirmed_.confirmed(bound.by, peers_.peer(bound.by).heartbeat.nonce);
            recover(now,
                    "host " + std::to_string(bound.by) +
                        " confirmed no heartbeat of this host's sent since " +
                        std::to_string(at - sent.value_or(at)) +
                        " ms before this host looked (it may take this host's buckets): "
                        "released every bucket, converging again",
                    "heartbeats unconfirmed by host " + std::to_string(bound.by));
        }
    }
    last_input_ = std::max(last_input_, now);
    judged_ = std::max(judged_, at);
}

ConfirmedBound ConvergenceEngine::confirmed_until(bool fresh) const {
    // Worked out at most every 1/64 period (each input asks, twice: 64 peers' frames a
    // period on both paths cost 0.1 % of a core at 100 ms otherwise). A stale bound is later
    // than the true one only where a peer's later frame brought it nearer, by less than
    // that: the 1/32 margin above covers it. A peer's new boot works it out at once. It is
    // earlier than the true one wherever frames taken in since confirmed newer heartbeats
    // (worked out at an input's start, it misses that input's frames), often by a period:
    // what stops the dataplane or the host asks for a fresh one, which leaves the cache as
    // it is, so asking changes no later answer.
    if (fresh)
        return work_out_confirmed();
    if (confirmed_at_ >= 0 && judged_ >= confirmed_at_ && judged_ - confirmed_at_ < period() / 64 &&
        confirmed_.changes() == confirmed_changes_)
        return confirmed_cache_;
    confirmed_at_ = judged_;
    confirmed_changes_ = confirmed_.changes();
    confirmed_cache_ = work_out_confirmed();
    return confirmed_cache_;
}

ConfirmedBound ConvergenceEngine::work_out_confirmed() const {
    constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::max();
    ConfirmedBound bound{Millis(kNone), 0};
    if (judged_ < 0)
        return bound;
    // Each peer's own bound (kNone: it bounds nothing), and whether it counts as confirming
    // this host (false: what it would do is not known here).
    std::array<std::int64_t, NLB_MAX_HOSTS + 1> own{};
    std::uint64_t confirming = 0;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        own[p] = kNone;
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive)
            continue;
        const auto sent = confirmed_.confirmed(p, peer.heartbeat.nonce);
        // Only a member can take buckets (a stopped or refused peer converges with this host
        // first). One silent for longer than a stall (tolerance - 1 periods) is left out: if
        // it was paused, it lets go of everything on resume and converges anew; if it
        // crashed, it takes nothing, and left in it would stop this host's dataplane about
        // a period before this host counts it dead. One silent for less may be paused and
        // resume without a stall, counting this host dead from a frame long past.
        // Its frames heard lately are of the stream confirmed: a new boot's replace it soon.
        const std::int64_t heard = peer.heard_ms();
        if (!sent || *sent == kNever || !in_view_state(peer.heartbeat.state) ||
            peer.heard_nonce != peer.heartbeat.nonce ||
            judged_ - heard > period() * (config_.cluster.heartbeat_tolerance - 1) + period() / 4)
            continue;
        // The peer counts on its own clock: one that runs up to 3 % faster than this host's
        // takes no sooner (less the stale cache's 1/64 period and a receive stamp's
        // millisecond). Wider is not free: with 1/16 a failover of two hosts took longer
        // than (tolerance + 2) periods (`hosts that read their frames every linger …`).
        // A bound already past at the look was never armed (the host ran on, its frames
        // lost to that peer: a partition, which the engine resolves when they meet).
        const std::int64_t span = tolerance_ms() + period();
        const std::int64_t until = *sent + span - span / 32;
        if (until > judged_) {
            own[p] = until;
            confirming |= host_bit(p);
        }
    }
    // A peer takes this host's buckets only under an epoch without it, which every member
    // of its view must agree on. While it has installed none (its claim's members hold this
    // host, or it claims nothing), each member of its view whose own view still holds this
    // host must first count it dead (a tolerance after the frame it confirmed; the grace is
    // the taker's own): the peer's bound is then the later of its own and the last of those
    // deaths (an asymmetric partition: the peer that lost this host cannot install without
    // the others). A peer that installed one without this host may own its buckets already:
    // its own bound holds.
    std::uint64_t holding = 0; // confirming members whose view holds this host
    // The two latest bounds among them: the latest over a member's blockers at once where its
    // view holds all of them (a settled cluster, every view the same), where a walk of each
    // member's blockers made this quadratic in the cluster's size (64 hosts: 4,000 steps at
    // every look: 5 % of the samples `perf` took of 64 agents at 100 ms).
    std::int64_t latest = std::numeric_limits<std::int64_t>::min(), next = latest;
    std::uint8_t latest_by = 0;
    for (std::uint64_t bits = confirming; bits; bits &= bits - 1) {
        const auto q = static_cast<std::uint8_t>(std::countr_zero(bits) + 1);
        if (!(peers_.peer(q).heartbeat.view & host_bit(me_)))
            continue;
        holding |= host_bit(q);
        if (own[q] > latest) {
            next = latest;
            latest = own[q];
            latest_by = q;
        } else if (own[q] > next) {
            next = own[q];
        }
    }
    for (std::uint64_t bits = confirming; bits; bits &= bits - 1) {
        const auto m = static_cast<std::uint8_t>(std::countr_zero(bits) + 1);
        const auto& hb = peers_.peer(m).heartbeat;
        std::int64_t until = own[m];
        const bool installed_without = hb.claim != 0 && !(hb.claim_members & host_bit(me_));
        const std::uint64_t blockers = hb.view & holding & ~host_bit(m);
        const bool relaxed =
            !installed_without && !(hb.flags & Heartbeat::kFlagTaking && hb.claim == 0);
        if (relaxed && blockers != 0) {
            if ((hb.view & holding) == holding)
                until = std::max(until, (latest_by == m ? next : latest) - period());
            else
                for (std::uint64_t g = blockers; g; g &= g - 1)
                    until = std::max(until, own[std::countr_zero(g) + 1] - period());
        }
        if (until < bound.until.count())
            bound = {Millis(until), m};
    }
    if ((link_down_ || link_held_) && link_bound_.until < bound.until)
        bound = link_bound_;
    return bound;
}

void ConvergenceEngine::on_link(bool up, Millis now_ms, std::string why) {
    const std::int64_t now = now_ms.count();
    observe(now);
    if (up != link_down_)
        return;
    if (!up) {
        // Worked out while every peer's last frame is still recent: once down, no frame comes
        // to move the bound, and a peer silent for most of a tolerance bounds nothing
        // (work_out_confirmed), though here it is alive and counts this host dead.
        link_bound_ = confirmed_until(true);
        // The agent notices up to half a period late, and the link may have cut the host off
        // before that while frames were being lost anyway: a peer already counted dead
        // here (or left out of the bound for its silence) was most likely cut off by the
        // link too, alive, and counts this host dead as well. Each peer heard lately that
        // confirmed a heartbeat of this host's may take its buckets a tolerance and a period
        // after that heartbeat (its own bound, without the wait for its view's members: the
        // host serves nobody while down, so an early release costs nothing but a rejoin).
        const std::int64_t span = tolerance_ms() + period();
        if (!link_held_)
            link_peers_ = 0;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            const auto& peer = peers_.peer(p);
            const std::int64_t heard = peer.heard_ms();
            if (p == me_ || !peer.known || now - heard > span)
                continue;
            const auto sent = confirmed_.confirmed(p, peer.heartbeat.nonce);
            if (!sent || *sent == kNever)
                continue;
            const std::int64_t until = *sent + span - span / 32;
            link_peers_ |= host_bit(p);
            if (until < link_bound_.until.count())
                link_bound_ = {Millis(until), p};
        }
        // Peers that confirm nothing (a 1.1 peer) still take a host they no longer hear: a
        // tolerance after its last frame, which left up to a period and a half ago. So does,
        // after its start wait (a tolerance at least), a peer that starts, or restarts,
        // while the link is down: a host alone lets go then too.
        const std::uint64_t others = view_ & ~host_bit(me_);
        if (link_bound_.by == 0)
            link_bound_ = {Millis(now + period() / 2 +
                                  period() * std::max<std::int64_t>(
                                                 0, config_.cluster.heartbeat_tolerance - 2)),
                           others ? lowest(others) : std::uint8_t{0}};
        link_down_ = true;
        link_down_at_ = now;
        link_why_ = std::move(why);
        event(now, EventKind::link_down, me_,
              (link_why_.empty() ? "link down: this host hears no peer and no peer hears it"
                                 : "link down (" + link_why_ + "): this host hears no peer") +
                  "; it forms no epoch meanwhile and keeps its buckets for " +
                  std::to_string(std::max<std::int64_t>(0, link_bound_.until.count() - now)) +
                  " ms at most" +
                  (link_bound_.by ? std::string() : std::string(" (a peer may start meanwhile)")));
    } else {
        link_down_ = false;
        // Until the peers confirm a heartbeat sent from now on, the bound stands: a flap
        // that ends just before it (or that the agent notices late) leaves peers that took
        // this host for dead, which no confirmation here bounds any more.
        link_held_ = !recovering_;
        link_up_at_ = now;
        // Frames from before the link went down prove nothing about now: a host that let go
        // of its buckets agrees only on frames heard from here on, and one whose peers
        // expired meanwhile, or that has none in its view (one that started with its link
        // down never listened), first gives everyone a chance to be heard, as a host that
        // just started does. A shorter flap leaves the start as it was: a peer's death soon
        // after it is taken over without the start's wait.
        if (recovering_ || now - link_down_at_ >= tolerance_ms() || view_ == host_bit(me_))
            started_at_ = std::max(started_at_, now);
        // Alone, it is young again too: beside a host that had just started, one whose start
        // was long past though it listened only from here counted as old, and the two agreed
        // within a period without a peer paused meanwhile, which still served.
        if (recovering_ || view_ == host_bit(me_))
            rejoined_at_ = now;
        event(now, EventKind::link_up, me_,
              "link up after " + std::to_string(now - link_down_at_) + " ms" +
                  (recovering_ ? ": joining again" : ""));
        // Heard at once: the bound stands until the peers confirm a heartbeat sent from now
        // on, and a flap that ended late in a period left a period less for that.
        send_soon(now);
    }
    confirmed_at_ = -1; // the cached bound knows nothing of the link
    on_tick(now_ms);
}

void ConvergenceEngine::note_confirmation(const Heartbeat& hb) {
    // A frame without this host's ack keeps the last one: the peer counts this host dead
    // (it acks live peers only), having taken in nothing since, and may take its buckets
    // once the bound has run (a peer not heard for a while bounds nothing: its bound past).
    const auto* ack = hb.has_acks && my_echo(hb.priority) ? hb.ack_of(me_) : nullptr;
    if (!ack)
        return;
    confirmed_.confirm(hb.priority, hb.nonce, confirmed_.sent_at(ack->sequence).value_or(kNever));
}

void ConvergenceEngine::on_stall(std::int64_t now, std::int64_t gap) {
    recover(now,
            "no input for " + std::to_string(gap) + " ms (watchdog " +
                std::to_string(period() * (config_.cluster.heartbeat_tolerance - 1)) +
                " ms): released every bucket, converging again",
            "stall of " + std::to_string(gap) + " ms");
}

void ConvergenceEngine::recover(std::int64_t now, const std::string& what, const std::string& why) {
    ++counters_.stalls;
    event(now, EventKind::stalled, me_, what);
    stalled_at_ = now;
    // Peers not heard meanwhile are dead now, before any decision uses them.
    for (auto p : peers_.expire(now, tolerance_ms())) {
        event(now, EventKind::host_left, p, "host " + std::to_string(p) + " not heard during the stall");
        ++params_generation_;
    }
    update_others_dirty();
    link_held_ = false;
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
    begin_convergence(now, why);
}

} // namespace nlb
