// ConvergenceEngine, membership: who is a member (two-way contact, same configuration), which
// group serves when hosts disagree, refusals, priority clashes and partition heals.
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

namespace {

int size_of(std::uint64_t bits) {
    return __builtin_popcountll(bits);
}

} // namespace

bool ConvergenceEngine::verified(const Heartbeat& hb) const {
    // A 1.1 peer echoes nobody: its frames count as before (rolling upgrade).
    return legacy(hb) || hb.echo_of(me_, nonce_) != nullptr;
}

const Heartbeat::Echo* ConvergenceEngine::my_echo(std::uint8_t p) const {
    const auto& hb = peers_.peer(p).heartbeat;
    auto& c = echo_cache_[p];
    if (c.nonce != hb.nonce || c.sequence != hb.sequence) {
        c = {hb.nonce, hb.sequence, -1};
        for (std::size_t i = 0; i < hb.echoes.size(); ++i)
            if (hb.echoes[i].priority == me_ && hb.echoes[i].nonce == nonce_) {
                c.index = static_cast<int>(i);
                break;
            }
    }
    return c.index < 0 ? nullptr : &hb.echoes[static_cast<std::size_t>(c.index)];
}

bool ConvergenceEngine::two_way(std::uint8_t p, std::int64_t now, std::int64_t window) const {
    // Two-way on the segment: this host hears the peer's 0x886F frames, and the peer's last
    // proven frame says it hears this host's there. Heartbeats go where client frames go, so
    // a host that hears none cannot be a member.
    const auto& peer = peers_.peer(p);
    if (!peer.alive)
        return false;
    const auto& hb = peer.heartbeat;
    const bool hear = peer.heard_nonce == hb.nonce && now - peer.heard_segment_ms <= window;
    if (legacy(hb))
        return hear;
    const auto* echo = my_echo(p);
    return hear && echo && (echo->paths & Heartbeat::kPathSegment);
}

bool ConvergenceEngine::deaf(std::int64_t now) const {
    // Live peers hear this host on the segment, and it hears none of them there.
    bool heard_by_one = false;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive)
            continue;
        if (peer.heard_nonce == peer.heartbeat.nonce &&
            now - peer.heard_segment_ms <= tolerance_ms())
            return false;
        // A stream heard, or alive again, for less than a tolerance proves nothing missing
        // yet: its first proving frame may come by the second path, read at once, while the
        // segment's copy waits in the reader's linger or the stream's next period. Counted,
        // it made a host that had just met one peer refuse itself as deaf (CI, e2e_refusal).
        if (now - std::max(peer.heard_first_ms, peer.alive_since_ms) <= tolerance_ms())
            continue;
        const auto* echo = my_echo(p);
        heard_by_one = heard_by_one || (echo && (echo->paths & Heartbeat::kPathSegment));
    }
    return heard_by_one;
}

void ConvergenceEngine::recompute_cohort(std::int64_t now) {
    // This host and the live peers it has two-way contact with that share its configuration,
    // whatever their state but stopped or suspended: refused ones count, so that hosts a
    // misconfigured first host refused can outnumber it.
    std::uint64_t bits = host_bit(me_);
    const std::int64_t window = segment_window(now);
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive || peer.heartbeat.state == HostState::stopped ||
            peer.heartbeat.state == HostState::suspended)
            continue;
        // A peer mid-switch stays: it follows within a frame, and the cluster neither
        // shrinks meanwhile nor converges twice.
        if (two_way(p, now, window) &&
            (same_config(peer.heartbeat) || switching_peer(peer.heartbeat, now)))
            bits |= host_bit(p);
    }
    if (bits != cohort_) {
        cohort_ = bits;
        send_soon(now);
    }
}

void ConvergenceEngine::check_groups(std::int64_t now) {
    awaiting_contact_ = false;
    if (!participating() && state_ != HostState::refused)
        return;
    if (state_ == HostState::refused && reason_ != RefuseReason::rules_differ &&
        reason_ != RefuseReason::no_contact)
        return;
    // A group's claim to serve: more hosts; then, between two lone hosts, the one that hears
    // the segment (a deaf host cannot receive clients); then the group already serving; then
    // the lowest priority. Every host compares the same reported cohorts, so one side yields.
    auto serving = [&](std::uint64_t bits) {
        for (std::uint8_t q = 1; q <= NLB_MAX_HOSTS; ++q) {
            if (!(bits & host_bit(q)))
                continue;
            if (q == me_ ? reported_claim() != 0
                         : peers_.peer(q).alive && peers_.peer(q).heartbeat.claim != 0)
                return true;
        }
        return false;
    };
    const std::uint64_t mine = cohort_ | host_bit(me_);
    const bool i_am_deaf = size_of(mine) == 1 && deaf(now);
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        const auto& hb = peer.heartbeat;
        if (p == me_ || !peer.alive || (mine & host_bit(p)) || hb.state == HostState::stopped ||
            hb.state == HostState::suspended)
            continue;
        const bool differs = !same_config(hb);
        if (differs && (switching_peer(hb, now) || runs_staged(hb)))
            continue; // it follows this host, or this host it, or the cluster it
        const std::uint64_t theirs =
            legacy(hb) ? (hb.view | host_bit(p)) : (hb.cohort | host_bit(p));
        if (theirs & host_bit(me_))
            continue;
        bool they_win;
        if (size_of(theirs) != size_of(mine)) {
            they_win = size_of(theirs) > size_of(mine);
        } else {
            const bool they_are_deaf =
                size_of(theirs) == 1 && (hb.contact_flags & Heartbeat::kContactDeaf);
            if (i_am_deaf != they_are_deaf)
                they_win = i_am_deaf;
            else if (serving(mine) != serving(theirs))
                they_win = serving(theirs);
            else
                they_win = lowest(theirs) < lowest(mine);
        }
        if (!they_win) {
            if (differs && participating() && !(refused_logged_ & host_bit(p))) {
                refused_logged_ |= host_bit(p);
                event(now, EventKind::host_refused, p,
                      "host " + std::to_string(p) + " refused: " + config_difference(hb));
            }
            continue;
        }
        // A newly heard peer's lack of two-way contact is at first only frames that have not
        // crossed yet: ours echoing it, its own counting us. Meanwhile this host does not
        // install (agreement()) and is not refused; refused, it would leave every view and
        // come back a tolerance later, two more convergences of the whole cluster.
        if (!differs && now - peer.alive_since_ms < contact_grace()) {
            awaiting_contact_ = true;
            continue;
        }
        const auto reason = differs ? RefuseReason::rules_differ : RefuseReason::no_contact;
        std::string detail;
        if (differs)
            detail = config_difference(hb) + "; the larger group " + host_list(theirs) + " serves";
        else if (i_am_deaf)
            detail = "not receiving cluster-MAC frames: no heartbeat of hosts " +
                     host_list(theirs) +
                     " arrives on the segment while they hear this host (check the "
                     "vSwitch's promiscuous / MAC-spoofing setting)";
        else
            detail = "no two-way contact on the segment with hosts " + host_list(theirs) +
                     ", which outnumber or outrank this host's group " + host_list(mine);
        if (state_ == HostState::refused) {
            last_conflict_ = now;
            reason_ = reason;
            reason_detail_ = detail;
        } else {
            refuse(now, reason, p, detail);
        }
        return;
    }
}

std::int64_t ConvergenceEngine::cluster_tolerance_ms(Millis now) const {
    // Peers that may serve: a refused or stopped one (a misconfigured host of any timing)
    // owns nothing a restarted host could take twice.
    std::int64_t longest = young(now.count()) ? start_wait() : tolerance_ms();
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (const auto& peer = peers_.peer(p); p != me_ && peer.alive && may_serve(peer.heartbeat))
            longest = std::max(longest, Membership::tolerance_in(peer.heartbeat));
    return longest;
}

std::int64_t ConvergenceEngine::contact_grace() const {
    // Both paths deliver within moments of each other, but on a loaded machine a host reads
    // and answers a new peer's frames hundreds of ms late (64 agents on 2 cores at 100 ms:
    // 5 of 8 joiners refused). A host that serves, or is about to take buckets, keeps one
    // period: two serving groups that meet one-way both answer requests until one yields.
    // One that serves nothing loses nothing by waiting (it installs nothing meanwhile), up
    // to the stall limit.
    return claim() != 0 || pending_take_ ? period() : std::max(period(), tolerance_ms() - period());
}

std::int64_t ConvergenceEngine::segment_window(std::int64_t now) const {
    // One lossy link must not split the view: a peer alive by the second path keeps two-way
    // contact on the segment through two tolerances of silence there (30 % loss loses ten
    // frames in a row once in 170,000). A deaf host, which hears no peer at all there for a
    // tolerance, lets go at once: that is a fault of its port, not loss.
    return deaf(now) ? tolerance_ms() : 2 * tolerance_ms();
}

void ConvergenceEngine::fill_contact(Heartbeat& hb, std::int64_t now) const {
    hb.has_contact = true;
    hb.contact = config_.host.contact;
    const bool is_deaf = deaf(now);
    hb.contact_flags = is_deaf ? Heartbeat::kContactDeaf : 0;
    const std::int64_t window = is_deaf ? tolerance_ms() : 2 * tolerance_ms();
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || peer.heard_nonce == 0)
            continue;
        std::uint8_t paths = 0;
        if (now - peer.heard_segment_ms <= window)
            paths |= Heartbeat::kPathSegment;
        if (now - peer.heard_contact_ms <= tolerance_ms())
            paths |= Heartbeat::kPathContact;
        if (!paths)
            continue;
        hb.echoes.push_back({p, paths, peer.heard_nonce});
        // The stream echoed is the one taken in, alive here: its newest frame.
        if (peer.alive && peer.heartbeat.nonce == peer.heard_nonce)
            hb.acks.push_back({p, static_cast<std::uint16_t>(peer.heartbeat.sequence)});
    }
    hb.has_acks = true;
    if (dup_nonce_ != 0 && now - dup_heard_ <= tolerance_ms())
        hb.echoes.push_back({me_, Heartbeat::kPathSegment, dup_nonce_});
    hb.has_want = true;
    hb.want = want_mask(now);
    hb.has_config = true;
    hb.mode = config_.cluster.mode;
    hb.heartbeat_ms = config_.cluster.heartbeat_ms;
    hb.heartbeat_tolerance = config_.cluster.heartbeat_tolerance;
    hb.cleanup_delay_s = config_.cluster.cleanup_delay_s;
    hb.vips_digest = config_.cluster.vips_digest;
    hb.cohort = cohort_;
    hb.has_seed = true;
    hb.seed_digest = seed_digest_;
    hb.seed_source = config_.cluster.flow_seed_source;
}

std::string ConvergenceEngine::problem(Millis now_ms) const {
    const std::int64_t now = now_ms.count();
    if (state_ == HostState::refused && !reason_detail_.empty())
        return reason_detail_;
    if (link_down_)
        return link_why_.empty() ? "the link is down: this host hears no peer and no peer hears it"
                                 : "the link is up but " + link_why_ +
                                       " (a switch port, a NIC's receive path or a fibre "
                                       "failed one way?): this host hears no peer";
    if (deaf(now))
        return "not receiving cluster-MAC frames: peers hear this host, it hears none of them "
               "on the segment (check the vSwitch's promiscuous / MAC-spoofing setting)";
    std::uint64_t one_way = 0;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (p != me_ && peers_.peer(p).alive && !two_way(p, now))
            one_way |= host_bit(p);
    if (one_way)
        return "no two-way contact on the segment with hosts " + host_list(one_way) +
               " (reached by the second path only)";
    if (std::string frames = frame_problem(now); !frames.empty())
        return frames;
    if (!had_peer_ && now - last_unreadable_ <= tolerance_ms())
        return "frames of this cluster that this host cannot " +
               std::string(unreadable_reason_ == RefuseReason::version ? "read (version)"
                                                                       : "authenticate (key)");
    // Alone while cluster.peers names other hosts: they are silent on both paths. Their agents
    // stopped, or what should carry heartbeats does not: a switch that drops EtherType 0x886F
    // (some cloud vSwitches pass IP only) and a firewall that drops UDP 2505 leave every host
    // serving alone beside the others, each answering every request it receives.
    if (participating() && peers_.alive_mask() == 0 && now - started_at_ > tolerance_ms()) {
        const auto others = std::count_if(
            config_.host.peers.begin(), config_.host.peers.end(),
            [&](const ContactAddress& a) { return a.family != 0 && !(a == config_.host.contact); });
        if (others > 0)
            return "alone: no peer heard on either path, though cluster.peers lists " +
                   std::to_string(others) + " other host" + (others > 1 ? "s" : "") +
                   ": are their agents running, and do the switches pass EtherType 0x886F and "
                   "the hosts' firewalls UDP 2505? A host that serves alone answers every "
                   "request it receives";
    }
    return "";
}

void ConvergenceEngine::handle_priority_clash(const Heartbeat& hb, std::int64_t now) {
    last_conflict_ = now;
    if (!participating() || hb.state == HostState::refused || hb.state == HostState::stopped ||
        hb.state == HostState::suspended)
        return;
    // Whoever holds buckets stays: a member converging again still serves its share, and
    // the one that releases loses its requests until the other takes them. Then a converged
    // or draining host over one that is not; the nonces decide the rest. Both sides rank from what
    // the heartbeat carries, so they reach the same answer.
    const auto rank = [](std::uint64_t claim, HostState state) {
        return claim != 0 ? 2 : serving_state(state) ? 1 : 0;
    };
    const int theirs = rank(hb.claim, hb.state);
    const int mine = rank(reported_claim(), state_);
    const bool i_lose = theirs != mine ? theirs > mine : nonce_ > hb.nonce;
    if (i_lose)
        refuse(now, RefuseReason::priority_taken, me_);
    else if (!(refused_logged_ & host_bit(me_))) {
        refused_logged_ |= host_bit(me_);
        event(now, EventKind::host_refused, me_,
              "another host with priority " + std::to_string(me_) + " refused");
    }
}

void ConvergenceEngine::refuse(std::int64_t now, RefuseReason reason, std::uint8_t because_of,
                               const std::string& detail) {
    // What it drained is let go of here; the operator's drainstop still stands (on_tick).
    refused_draining_ =
        state_ == HostState::draining || (state_ == HostState::refused && refused_draining_);
    release_all(now, false);
    forget_maps(now);
    agreeing_ = false;
    recovering_ = false;
    reason_ = reason;
    reason_detail_ = detail;
    last_conflict_ = now;
    event(now, EventKind::refused, me_,
          std::string(to_string(reason)) + " (host " + std::to_string(because_of) + ")" +
              (detail.empty() ? "" : ": " + detail));
    set_state(now, HostState::refused, to_string(reason));
}

void ConvergenceEngine::yield_partition(std::int64_t now, const std::string& why) {
    event(now, EventKind::partition_yield, me_,
          "partition heal: " + why + ": letting go of our buckets");
    yielded_epoch_ = epoch_;
    release_all(now, true);
    frozen_ = false;
    pending_take_ = false;
    if (state_ == HostState::converged)
        set_state(now, HostState::converging, "partition heal");
    begin_convergence(now, "partition heal");
    next_send_ = now; // the members that cannot hear the other group follow (kFlagYielded)
}

void ConvergenceEngine::check_partition(std::int64_t now) {
    // As the peers see it: a host still taking claims its epoch, and may lead its group.
    if (reported_claim() == 0) {
        frozen_ = false;
        met_at_ = -1;
        partition_deadline_ = kNoDeadline;
        return;
    }
    // Conflicting groups: live hosts owning buckets under an epoch neither side took part in.
    // With each, the priority whose rival alone claims it, if one does (rival_claim).
    std::vector<std::uint64_t> foreign;
    std::vector<std::uint8_t> rival_of;
    const auto note_foreign = [&](std::uint64_t claim, std::uint64_t members, std::uint8_t via) {
        if (claim == 0 || claim == epoch_ || (members & host_bit(me_)))
            return;
        const auto at = std::find(foreign.begin(), foreign.end(), claim);
        if (at == foreign.end()) {
            foreign.push_back(claim);
            rival_of.push_back(via);
        } else if (!via) {
            rival_of[at - foreign.begin()] = 0;
        }
    };
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive || (epoch_members_ & host_bit(p)))
            continue;
        note_foreign(peer.heartbeat.claim, peer.heartbeat.claim_members, 0);
        if (rival_yield_[p] != peer.heartbeat.nonce)
            note_foreign(rival_claim(peer, now), peer.rival_claim_members, p);
    }
    partition_deadline_ = kNoDeadline;
    if (foreign.empty()) {
        met_at_ = -1;
        return;
    }
    if (met_at_ < 0)
        met_at_ = now;
    if (!frozen_) {
        frozen_ = true;
        frozen_score_ = group_score();
        event(now, EventKind::partition_detected, me_,
              "another converged group met ours: " + std::to_string(foreign.size()) +
                  " group(s); our score " + std::to_string(frozen_score_));
        next_send_ = now; // the other group decides on this frame: no rate limit
    }
    // Each group's score is the frozen one its lowest live host reports, so every host of
    // both groups compares the same two numbers and exactly one group yields.
    auto leader_of = [&](std::uint64_t epoch) {
        std::uint8_t leader = epoch == epoch_ ? me_ : 0;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            const auto& peer = peers_.peer(p);
            if (p != me_ && peer.alive && peer.heartbeat.claim == epoch && (!leader || p < leader))
                leader = p;
        }
        return leader;
    };
    auto leader_score = [&](std::uint8_t leader, bool& known) -> std::uint64_t {
        if (leader == me_) {
            known = true;
            return frozen_score_;
        }
        const auto& hb = peers_.peer(leader).heartbeat;
        known = leader != 0 && (hb.flags & Heartbeat::kFlagScoreFrozen);
        return hb.score;
    };
    // A leader that has not said its frozen score within a period of both (this host meeting
    // the other group, and hearing the leader) is silent, as below.
    const auto silent_due = [&](std::uint8_t leader) {
        return std::max(met_at_, leader ? peers_.peer(leader).alive_since_ms : met_at_) + period();
    };
    bool mine_known = false;
    const std::uint8_t my_leader = leader_of(epoch_);
    const auto mine = leader_score(my_leader, mine_known);
    if (!mine_known) {
        // This group's own leader has not said its score within a period: dead, not yet
        // counted out, or paused, or it does not hear the other group. The other group waits
        // for that score too, and judges the leader silent only once it has heard it (a
        // crashed leader it never hears, never): neither side would yield. This one does,
        // the safe side: at worst both groups let go, and converge. (A VM woken with its
        // clock beside a group whose leader had just crashed: two owners for 1.8 s, until the
        // leader's new boot spoke, in chaos-ops seed 2100.) The members that follow this
        // host's yield are only those that do not hear the other group (on_heartbeat): a
        // frame of the leader's lost here does not take along a leader that found its group
        // the winner.
        const std::int64_t due = silent_due(my_leader);
        if (now >= due) {
            yield_partition(now, "our group's leader (host " + std::to_string(my_leader) +
                                     ") has not said its score within a period");
            return;
        }
        partition_deadline_ = due;
    }
    for (std::size_t i = 0; i < foreign.size(); ++i) {
        const std::uint64_t other = foreign[i];
        const std::uint8_t leader = leader_of(other);
        if (const std::uint8_t rival = rival_of[i]; rival != 0 && leader == 0) {
            // Only a peer's other stream, pending here, claims it (rival_claim): its score
            // can be read only once that stream is taken in, 1.5 periods after the earlier one
            // went quiet, and its group never hears this one meanwhile (this host echoes the
            // earlier stream), so never yields. This group does, and takes nothing until then.
            rival_yield_[rival] = peers_.peer(rival).heartbeat.nonce;
            yield_partition(now, "host " + std::to_string(rival) +
                                     "'s new boot, not taken in yet, serves an epoch of its own");
            return;
        }
        bool known = false;
        const auto theirs = leader_score(leader, known);
        if (!known) {
            // A leader sends its frozen score in the frame it sends on meeting this group, at
            // once. One that has not within a period of both (this host meeting its group, and
            // hearing it) is silent: paused (SIGSTOP, a VM stopped), or out of contact since.
            // Its group cannot be counted on to yield, its dataplane serving whatever the
            // comparison says: this host's group yields. (A VM stopped with its clock that
            // resumes beside a lone peer paused meanwhile: both served alone, and the peer's
            // frames the VM reads are the ones queued before the pause. Two owners until the
            // peer's pause ended, 1.5 s, in test_chaos_ops.cpp.)
            const std::int64_t due = silent_due(leader);
            if (now < due) {
                partition_deadline_ = std::min(partition_deadline_, due);
                continue;
            }
            yield_partition(now, "the other group's leader (host " + std::to_string(leader) +
                                     ") has not said its score within a period");
            return;
        }
        if (!mine_known)
            continue; // their score against nothing yet
        if (theirs > mine || (theirs == mine && other > epoch_)) {
            yield_partition(now, "our group accepted " + std::to_string(mine) +
                                     " connections, the other " + std::to_string(theirs));
            return;
        }
    }
}

void ConvergenceEngine::recompute_view(std::int64_t now) {
    std::uint64_t bits = 0;
    if (serving_member())
        bits |= host_bit(me_);
    const std::int64_t window = segment_window(now);
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p != me_ && two_way(p, now, window) &&
            (same_config(peer.heartbeat) || switching_peer(peer.heartbeat, now)) &&
            in_view_state(peer.heartbeat.state))
            bits |= host_bit(p);
    }
    if (bits == view_key_members_ && params_generation_ == view_key_generation_)
        return;
    view_key_members_ = bits;
    view_key_generation_ = params_generation_;
    choose_base(bits);
    DigestBuilder d;
    d.u32(0x6e6c6276).u64(fingerprint_).u64(bits);
    // The base enters the epoch (one epoch, one map); without one the digest is 1.0's.
    if (chosen_ != 0 || chosen_gen_ != 0)
        d.u64(chosen_).u32(chosen_gen_);
    // The controls after panic mode, which are what the allocation reads: in a cluster with a
    // member that knows no probes there is no panic and they are the ones every version
    // hashes (a probe's drain travels as draining), so the digest stays the older one's.
    std::uint32_t panic = 0;
    for (const MemberParams& m : view_members(bits, panic)) {
        d.u8(m.priority);
        for (std::size_t r = 0; r < config_.rules.size(); ++r)
            d.u8(m.rules[r].load_weight)
                .u8(m.rules[r].handling_priority)
                .u8(static_cast<std::uint8_t>(m.control[r]));
    }
    const auto digest = d.finish();
    view_panic_ = panic;
    if (digest == view_digest_ && bits == view_) {
        // Same map, so no convergence; but panic may have ended (every member healthy again
        // within one heartbeat) and query, metrics and the log must say so.
        if (target_ && epoch_ == view_digest_)
            note_panic(now, panic);
        return;
    }
    const auto before = view_;
    view_ = bits;
    view_digest_ = digest;
    view_since_ = now;
    if (participating()) {
        std::string why = "membership " + host_list(before) + " -> " + host_list(bits);
        if (before == bits)
            why = "host parameters changed";
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
            if (p != me_ && (before & ~bits & host_bit(p)))
                why += "; " + left_view_because(p, now, window);
        begin_convergence(now, why);
    }
}

std::string ConvergenceEngine::left_view_because(std::uint8_t p, std::int64_t now,
                                                 std::int64_t window) const {
    const auto& peer = peers_.peer(p);
    const auto& hb = peer.heartbeat;
    const std::string host = "host " + std::to_string(p);
    auto since = [&](std::int64_t t) {
        return t == kNever ? std::string("never") : std::to_string(now - t) + " ms ago";
    };
    if (!peer.alive)
        return host + " silent on both paths";
    if (peer.heard_nonce != hb.nonce)
        return host + " restarted";
    if (now - peer.heard_segment_ms > window)
        return host + " not heard on the segment within " + std::to_string(window) + " ms (last " +
               since(peer.heard_segment_ms) + ", by the second path " +
               since(peer.heard_contact_ms) + ")";
    if (!two_way(p, now, window))
        return host + " does not hear this host on the segment";
    if (!same_config(hb) && !switching_peer(hb, now))
        return host + " runs another configuration";
    return host + " is " + to_string(hb.state);
}

} // namespace nlb
