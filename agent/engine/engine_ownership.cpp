// ConvergenceEngine, ownership: installing an epoch, taking and releasing buckets, dirty
// buckets, and the slot views the dataplane installs.
#include "convergence_engine.hpp"

#include <algorithm>
#include <limits>

#include "digest.hpp"
#include "engine_util.hpp"
#include "heartbeat_codec.hpp"

namespace nlb {

using detail::host_list;
using detail::in_view_state;
using detail::lowest;
using detail::serving_state;

void ConvergenceEngine::install(std::int64_t now) {
    agreeing_ = false;
    yielded_epoch_ = 0;              // in an epoch again: what it let go of is past (kFlagYielded)
    switch_install_pending_ = false; // agreement is on a view of the switched configuration
    stable_ = 0;
    // Even when the map stays (an epoch with this digest is installed already), what is in
    // panic may not: all members back at once hash as all forced back in panic did.
    note_panic(now, view_panic_);
    if (view_digest_ != epoch_ || !target_) {
        std::shared_ptr<const ClusterMap> map = candidate_map();
        prev_ = target_;
        prev_epoch_ = epoch_;
        prev_digest_ = target_digest_;
        target_ = std::move(map);
        epoch_ = view_digest_;
        epoch_members_ = view_;
        target_digest_ = target_->digest();
        target_gen_ = next_gen_;
        map_owners_ = 0;
        for (const auto& slot : target_->slots)
            for (const auto owner : slot)
                if (owner != 0)
                    map_owners_ |= host_bit(owner);
    }
    target_valid_ = true;
    // Release at once what the new share lacks.
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        if (owned_[s].none())
            continue;
        const auto& slot = target_->slots[s];
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (owned_[s][b] && slot[b] != me_) {
                owned_[s].reset(b);
                released_at_[s * NLB_BUCKETS + b] = now;
                released_last_ = now;
            }
    }
    to_take_.clear();
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        const auto& slot = target_->slots[s];
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (slot[b] == me_ && !owned_[s][b])
                to_take_.push_back(static_cast<std::uint32_t>(s * NLB_BUCKETS + b));
    }
    accepted_base_ = accepted_total_;
    frozen_ = false;
    pending_take_ = !to_take_.empty();
    views_dirty_ = true;
    if (state_ == HostState::converging) {
        set_state(now, HostState::converged, "");
        event(now, EventKind::converged, me_,
              "members " + host_list(epoch_members_) + ", default host " +
                  std::to_string(default_host()));
    }
    // Back from a stall once converged, at once: the agent arms the watchdog again after this
    // very input (not while recovering), bounded by what the peers confirmed. Left to the
    // next tick, a pause right after the install kept the dataplane stopped unarmed, and on
    // resume, the bound past by then and no longer checked while recovering, the agent
    // revived it for a whole timeout beside the peers that had taken its buckets (seed 5103).
    if (state_ == HostState::converged)
        recovering_ = false;
    update_held(now);
    try_take(now);
    send_soon(now);
}

const std::shared_ptr<const ClusterMap>& ConvergenceEngine::candidate_map() {
    if (!candidate_ || candidate_epoch_ != view_digest_) {
        std::uint32_t panic = 0;
        const std::vector<MemberParams> members = view_members(view_, panic);
        // agreement() saw base_ == chosen_ when chosen_ != 0.
        const ClusterMap* from = chosen_ != 0 && base_digest_ == chosen_ ? base_.get() : nullptr;
        candidate_ = reallocate(from, modes_, members);
        candidate_epoch_ = view_digest_;
        candidate_digest_ = candidate_->digest();
    }
    return candidate_;
}

void ConvergenceEngine::note_panic(std::int64_t now, std::uint32_t panic) {
    for (std::size_t r = 0; r < config_.rules.size(); ++r) {
        const std::uint32_t bit = std::uint32_t{1} << r;
        if ((panic & bit) == (panic_ & bit))
            continue;
        if (panic & bit)
            event(now, EventKind::panic_started, me_,
                  "port rule " + std::to_string(r) +
                      ": too few members healthy, served as if all were");
        else
            event(now, EventKind::panic_ended, me_,
                  "port rule " + std::to_string(r) + ": enough members healthy again");
    }
    panic_ = panic;
}

void ConvergenceEngine::try_take(std::int64_t now) {
    if (!pending_take_ || !target_ || !serving_member())
        return;
    // Who may still own buckets we are to take: hosts claiming our previous epoch own only
    // their share of it; a host claiming anything else (not 0, not ours) blocks everything.
    std::uint64_t blockers = 0;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        // Dead for less than a period: its last frame before a pause may have been lost on
        // the way, and its watchdog runs out (tolerance - 1) periods after the pause, up to a
        // period after the frame before that one came. A lost run longer than that brings a
        // request for the second path's copies (late after a period and a half).
        const bool grace = in_grace(peer, now);
        if (p == me_ || !(peer.alive || grace))
            continue;
        // Its last frames may also have said that it installed an epoch this host reported
        // but never installed (agreement completes on each member at its own frame), and
        // took buckets that are no share of its last claim here: until the grace ends it may
        // own any bucket, as its watchdog, bounded by what its peers confirmed, allows.
        if (grace && in_view_state(peer.heartbeat.state))
            return;
        // So may a live one whose frames stopped coming (late_server).
        if (late_server(peer, now))
            return;
        // So may its new boot, not taken in yet, that serves a group of its own.
        if (rival_claim(peer, now) != 0)
            return;
        const auto c = may_own(peer.heartbeat);
        if (c == 0 || c == epoch_)
            continue;
        if (prev_ && c == prev_epoch_)
            blockers |= host_bit(p);
        else
            return;
    }
    // A host outside the view may own buckets while it is silent: paused for less than the
    // tolerance, its watchdog has not expired. Those of its peers that heard it say so
    // (section 11). One this host has not heard within the tolerance (it started after that
    // host's last frame, or does not hear it) blocks everything, as a foreign claim does,
    // until nobody reports it: it spoke again (and its claim counts above), or it is dead.
    const std::uint64_t unheard = ~(peers_.alive_mask() | host_bit(me_));
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p != me_ && peer.alive && (peer.heartbeat.outside_owners & unheard))
            return;
    }
    // A peer in grace at a namer may own any bucket too; this host may never have heard it
    // (restarted since), or heard it before the namer last did.
    if (named_.grace_until(unheard, now) >= now)
        return;
    // What a namer that crashed or restarted since said still stands (NamedOwners).
    if (named_.named_by_gone(unheard, now, [&](std::uint8_t by, std::uint64_t nonce) {
            const auto& namer = peers_.peer(by);
            return !namer.alive || namer.heartbeat.nonce != nonce;
        }))
        return;
    // After a switch of configuration, a changed slot's packets may land elsewhere on a host
    // that still runs the earlier set: its buckets wait until every live host claims this
    // epoch (or nothing), whatever it owned before (docs/staged-config.md).
    if (changed_slots_ && !blockers && !switch_install_pending_)
        changed_slots_ = 0;
    bool took = false;
    std::size_t keep = 0;
    for (const auto entry : to_take_) {
        const std::size_t s = entry / NLB_BUCKETS;
        const std::uint32_t b = entry % NLB_BUCKETS;
        const bool disabled = s < config_.rules.size() && control_[s] == RuleControl::disabled;
        const std::uint8_t before = prev_ ? prev_->slots[s][b] : 0;
        if (disabled || owned_[s][b] || ((changed_slots_ >> s) & 1) ||
            (before != 0 && before != me_ && (blockers & host_bit(before)))) {
            if (!owned_[s][b])
                to_take_[keep++] = entry;
            continue;
        }
        owned_[s].set(b);
        adopt_[s].set(b);
        released_at_[entry] = -1;
        took = true;
    }
    to_take_.resize(keep);
    if (took) {
        adopt_until_ = now + tolerance_ms();
        views_dirty_ = true;
        update_held(now);
        send_soon(now);
        // Peers must know this host owns under its epoch before it serves: a pause right after
        // the take would otherwise leave them its last frame, which claimed something else.
        // The frame goes with the maps (take_decision; the agent sends right after it installs).
        announce_ = claim_sent_ != epoch_;
    }
    pending_take_ = !to_take_.empty();
}

std::uint64_t ConvergenceEngine::outside_owners() const {
    std::uint64_t out = 0;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p != me_ && peer.alive && !(view_ & host_bit(p)) && may_own(peer.heartbeat) != 0)
            out |= host_bit(p);
    }
    return out;
}

bool ConvergenceEngine::in_grace(const Peer& peer, std::int64_t now) const {
    return peer.known && !peer.alive && now <= claim_lapses(peer) && may_serve(peer.heartbeat);
}

// A peer's other stream that waits to replace the one taken in (Membership::accept: pending)
// proved contact (a 1.2 frame that echoes this boot): most likely the peer restarted, unknown
// to a VM woken with its clock, by which the earlier boot spoke just before. Its frames are
// not taken in until that one has been quiet for 1.5 periods, and until then the two never
// meet as groups: a new boot that serves a group of its own serves beside this host's (1.5 s
// of two owners in chaos-ops seed 2869). check_partition yields to it, once per stream taken
// in (rival_yield_: recorded frames of the peer's earlier boots, replayed one boot after
// another between the peer's own frames, would otherwise make it yield at every install);
// try_take takes nothing beside it. It counts while heard within the tolerance, and not once
// the stream taken in spoke after it (a second host: Membership's duplicate).
std::uint64_t ConvergenceEngine::rival_claim(const Peer& peer, std::int64_t now) const {
    if (!peer.alive || peer.rival_nonce == 0 || peer.rival_nonce == peer.heartbeat.nonce ||
        peer.rival_nonce == peer.second_nonce || peer.last_heard_ms > peer.rival_since_ms ||
        now - peer.rival_heard_ms > tolerance_ms() || (peer.rival_claim_members & host_bit(me_)) ||
        peer.rival_claim == epoch_)
        return 0;
    return peer.rival_claim;
}

bool ConvergenceEngine::late_server(const Peer& peer, std::int64_t now) const {
    // A period and a half. Two of its intervals for a peer that sends every half period
    // (converging, draining, taking) closed chaos seed 7367, a partition, but 64 agents at
    // 100 ms on two cores then lost 2,823 requests at a join of 8 instead of 33: their
    // frames come a period late often there, and every late one blocked every take.
    return peer.alive && now - peer.last_heard_ms > period() + period() / 2 &&
           may_serve(peer.heartbeat);
}

std::uint64_t ConvergenceEngine::grace_owners(std::int64_t now, std::uint32_t& left) const {
    std::uint64_t out = 0;
    left = 0;
    // Peers in grace, and live ones whose frames are late (late_server): a host that never
    // heard one would take from it (seed 8795: a restarted host took from a peer whose frames
    // were lost since it took). Named until the claim lapses (a late one: dead, then its
    // grace), unless heard again before.
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !(in_grace(peer, now) || late_server(peer, now)))
            continue;
        out |= host_bit(p);
        left = std::max(left, static_cast<std::uint32_t>(claim_lapses(peer) - now));
    }
    // Peers heard here without proof that may serve (on_heartbeat): a host that never heard
    // them learns of them so.
    std::int64_t until = now;
    const auto unproven = named_.self_named(now, until) & ~peers_.alive_mask() & ~host_bit(me_);
    if (unproven) {
        out |= unproven;
        left = std::max(left, static_cast<std::uint32_t>(until - now));
    }
    return out;
}

std::int64_t ConvergenceEngine::claim_lapses(const Peer& peer) const {
    // By the peer's timing where it is the longer (a staged switch to a shorter one, the peer
    // paused or not switched yet): its watchdog runs by its own.
    return peer.last_heard_ms + Membership::timeout_of(peer, tolerance_ms()) +
           std::max(period(), Membership::period_in(peer.heartbeat));
}

std::int64_t ConvergenceEngine::grace_end() const {
    std::int64_t at = std::numeric_limits<std::int64_t>::max();
    if (!pending_take_)
        return at;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p != me_ && in_grace(peer, last_input_))
            at = std::min(at, claim_lapses(peer) + 1);
    }
    const auto named = named_.grace_until(~(peers_.alive_mask() | host_bit(me_)), last_input_);
    if (named >= 0)
        at = std::min(at, named + 1);
    return at;
}

bool ConvergenceEngine::may_serve(const Heartbeat& hb) {
    return may_own(hb) != 0 || in_view_state(hb.state);
}

std::uint64_t ConvergenceEngine::may_own(const Heartbeat& hb) {
    // A host still taking its share claims its epoch from the install on (reported_claim).
    // One of an earlier release claims nothing until it has taken a bucket, and does not say
    // which epoch it takes under (its view may have moved on): it may own anything.
    if (hb.claim == 0 && (hb.flags & Heartbeat::kFlagTaking))
        return kUnknownEpoch;
    return hb.claim;
}

void ConvergenceEngine::release_slot(std::int64_t now, std::size_t s) {
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        if (owned_[s][b])
            released_at_[s * NLB_BUCKETS + b] = released_last_ = now;
    owned_[s].reset();
    adopt_[s].reset();
    views_dirty_ = true;
}

void ConvergenceEngine::release_all(std::int64_t now, bool keep_connections) {
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        release_slot(now, s);
    if (!keep_connections)
        live_ = LiveBuckets{};
    pending_take_ = false;
    update_held(now);
}

void ConvergenceEngine::update_held(std::int64_t now) {
    const bool keeps = participating();
    const std::int64_t cleanup = std::int64_t{config_.cluster.cleanup_delay_s} * 1000;
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        BucketBits held;
        const bool disabled = s < config_.rules.size() && control_[s] == RuleControl::disabled;
        if (keeps && !disabled && live_.slots[s].any()) {
            const BucketBits candidates = live_.slots[s] & ~owned_[s];
            for (std::uint32_t b = 0; b < NLB_BUCKETS && candidates.any(); ++b) {
                if (!candidates[b])
                    continue;
                auto& since = released_at_[s * NLB_BUCKETS + b];
                if (since < 0)
                    since = now;
                if (now - since < cleanup)
                    held.set(b);
            }
        }
        if (held != held_[s]) {
            held_[s] = held;
            views_dirty_ = true;
        }
    }
}

void ConvergenceEngine::update_others_dirty() {
    std::array<BucketBits, NLB_RULE_SLOTS> dirty{};
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive)
            continue;
        for (const auto& d : peer.heartbeat.dirty)
            dirty[d.slot] |= d.buckets;
    }
    if (dirty != others_dirty_) {
        others_dirty_ = dirty;
        views_dirty_ = true;
    }
}

void ConvergenceEngine::rebuild_views(std::int64_t) {
    views_dirty_ = false;
    auto views = std::make_shared<SlotViews>();
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        auto& v = (*views)[s];
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b) {
            std::uint8_t owner = 0;
            if (owned_[s][b])
                owner = me_;
            else if (target_ && target_->slots[s][b] != me_)
                owner = target_->slots[s][b];
            else if (prev_ && prev_->slots[s][b] != me_)
                owner = prev_->slots[s][b];
            v.owners[b] = owner;
        }
        v.dirty_elsewhere = owned_[s] & others_dirty_[s];
        v.tracked_here = held_[s];
        v.adopt = adopt_[s] & ~others_dirty_[s];
    }
    if (!views_ || *views_ != *views) {
        views_ = views;
        out_.maps = views_;
    }
}

void ConvergenceEngine::check_map_agreement(std::int64_t now) {
    // One epoch, one map: every member computes it from the same inputs, and the digest in
    // its heartbeat proves it. A host whose digest is in the minority among the members that
    // installed this epoch (tie: the lowest priority's side) stops serving: a bug, a memory
    // fault or a tampered build must not make two hosts own one bucket.
    if (state_ != HostState::converged || agreeing_ || !target_)
        return;
    struct Tally {
        std::uint64_t digest;
        int count;
        std::uint8_t lowest;
    };
    std::vector<Tally> tally{{target_digest_, 1, me_}};
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        const auto& hb = peer.heartbeat;
        if (p == me_ || !peer.alive || !(epoch_members_ & host_bit(p)) || legacy(hb) ||
            hb.state != HostState::converged || hb.view_digest != epoch_ || hb.map_digest == 0)
            continue;
        auto it = std::find_if(tally.begin(), tally.end(),
                               [&](const Tally& t) { return t.digest == hb.map_digest; });
        if (it == tally.end())
            tally.push_back({hb.map_digest, 1, p});
        else {
            ++it->count;
            it->lowest = std::min(it->lowest, p);
        }
    }
    const Tally& mine = tally.front();
    for (const auto& t : tally) {
        if (&t == &mine)
            continue;
        if (t.count > mine.count || (t.count == mine.count && t.lowest < mine.lowest)) {
            refuse(now, RefuseReason::map_minority, t.lowest,
                   "this host's map digest is held by " + std::to_string(mine.count) +
                       " member(s), another by " + std::to_string(t.count));
            return;
        }
    }
}

bool gives_up(const SlotViews& installed, const SlotViews& next, std::uint8_t me) {
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        for (std::size_t b = 0; b < NLB_BUCKETS; ++b)
            if (installed[s].owners[b] == me && next[s].owners[b] != me)
                return true;
    return false;
}

void fold_rescan(Decision& first, Decision again, bool stale) {
    for (auto& e : again.events)
        first.events.push_back(std::move(e));
    if (again.maps)
        first.maps = std::move(again.maps);
    if (again.flow_seed)
        first.flow_seed = again.flow_seed;
    first.switched = first.switched || again.switched;
    if (stale) {
        first.frames.clear();
        first.contact.clear();
    }
    for (auto& f : again.frames)
        first.frames.push_back(std::move(f));
    for (auto& c : again.contact)
        first.contact.push_back(std::move(c));
    first.state = again.state;
    first.next_tick = again.next_tick;
}

bool ConvergenceEngine::needs_scans() const {
    if (recovering_ || probe_down_ != 0 ||
        (released_last_ >= 0 && last_input_ - released_last_ <= 2 * period()))
        return true;
    for (std::size_t r = 0; r < config_.rules.size() && r < NLB_MAX_RULES; ++r)
        if (control_[r] != RuleControl::enabled)
            return true;
    for (const auto& h : held_)
        if (h.any())
            return true;
    return false;
}

bool ConvergenceEngine::settled() const {
    if (state_ != HostState::converged || agreeing_ || pending_take_ || !target_)
        return false;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == me_ || !(epoch_members_ & host_bit(p)))
            continue;
        const auto& peer = peers_.peer(p);
        const auto& hb = peer.heartbeat;
        if (!peer.alive || hb.state != HostState::converged)
            return false;
        if (map_owners_ & host_bit(p)) {
            if (hb.claim != epoch_ || (hb.flags & Heartbeat::kFlagTaking))
                return false;
        } else if (hb.claim != 0 && hb.claim != epoch_) {
            return false;
        }
    }
    return true;
}

} // namespace nlb
