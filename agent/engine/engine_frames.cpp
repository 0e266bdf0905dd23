// ConvergenceEngine, heartbeat input: authenticate, drop the second copy of a frame, hear
// and accept what is new, and decide once per batch of frames (begin_frames/end_frames).
#include "convergence_engine.hpp"

#include <algorithm>
#include <utility>

#include "heartbeat_codec.hpp"

namespace nlb {

void ConvergenceEngine::on_heartbeat(std::span<const std::uint8_t> frame, Millis now_ms, Path path,
                                     std::optional<Millis> arrived) {
    const std::int64_t now = now_ms.count();
    // When the frame came: what waited in the socket while the agent was held up is judged
    // as of then (observe), and dated so (peers' liveness, below).
    const std::int64_t heard = arrived ? std::min(arrived->count(), now) : now;
    observe(now, heard);
    last_trusted_ = false;
    ++counters_.received;
    if (path == Path::contact)
        ++counters_.contact_received;
    // Authenticate before parsing: the fixed head, then the HMAC, then the sections.
    const auto head = decode_head(frame);
    if (!head.head) {
        count_undecodable(head.error);
        if (head.error == DecodeError::bad_version && head.cluster_ip == config_.cluster.ip)
            note_unreadable(now, RefuseReason::version);
        return;
    }
    if (!admit(frame, *head.head, path, now))
        return;
    // The peer is alive from when its frame came. After a stall the frames that queued up are
    // read at once; taken as news, the last ones of a peer that died meanwhile would make it
    // alive again (and, echoing this boot, agreed with) while its restarted boot serves. One
    // that came more than a tolerance ago proves nothing alive now: it is not taken in. It
    // still shows that its path delivers: which paths do (deafness, two-way contact, the
    // echo's paths) is judged by when frames are read, since a host that reads its sockets
    // late (starved of CPU) has not heard what waits there, though its port delivered it.
    if (now - heard > tolerance_ms()) {
        ++counters_.late;
        const auto& h = *head.head;
        if (!h.chunk && h.priority != me_ && peers_.peer(h.priority).heard_nonce == h.nonce)
            peers_.heard_again(h.priority, now, path == Path::contact);
        return;
    }
    if (head.head->chunk) {
        if (path == Path::segment)
            on_map_chunk(frame, now);
        return;
    }
    // Every heartbeat comes twice, once by each path. The second copy of one taken in
    // already (authentic: admit) changes only when its path was last heard: nothing to decode
    // or decide again, unless it is the segment's and that path had been silent for a
    // tolerance (two-way contact and deafness turn on it). This halves a large cluster's
    // work per period, and the copy does not count as the stream speaking again
    // (Membership::accept's rivals).
    const FrameHead& h = *head.head;
    // Each path's replay window keeps its own frames in order, not one path's against the
    // other's: a frame that comes after a later one of its stream by the other path (segment
    // frames wait for the reader's linger, the second path's do not) only says that its path
    // works. Taken in, it would set the peer back to what it said before (its state, view,
    // base), and the next frame forward again, each a change of parameters that can start a
    // convergence. The segment heard again after a tolerance of silence is news to decide on
    // (two-way contact and deafness turn on it), as below.
    if (h.priority != me_ && peers_.superseded(h.priority, h.nonce, h.sequence)) {
        const bool segment_back = path == Path::segment &&
                                  now - peers_.peer(h.priority).heard_segment_ms > tolerance_ms();
        peers_.heard_again(h.priority, now, path == Path::contact);
        ++counters_.accepted;
        ++counters_.superseded;
        last_trusted_ = h.minor >= 2;
        if (segment_back) {
            held_eval_ = true;
            held_heard_ |= host_bit(h.priority);
            if (!holding_)
                settle_frames(now);
        }
        return;
    }
    if (h.priority != me_ && peers_.holds(h.priority, h.nonce, h.sequence)) {
        const auto& peer = peers_.peer(h.priority);
        if (path == Path::contact || now - peer.heard_segment_ms <= tolerance_ms()) {
            peers_.heard_again(h.priority, now, path == Path::contact);
            ++counters_.accepted;
            last_trusted_ = h.minor >= 2;
            return;
        }
    }
    const auto decoded = decode_heartbeat(frame);
    if (!decoded.heartbeat) {
        count_undecodable(decoded.error);
        return;
    }
    const Heartbeat& hb = *decoded.heartbeat;
    ++counters_.accepted;
    // A host cut off one way (Heartbeat::kFlagLinkDown): heard, which is all its frame says.
    // Its echoes are of frames it heard before, its claim ends by its own bound, which this
    // host's takes come after (a tolerance after its last frame without the flag).
    if (hb.flags & Heartbeat::kFlagLinkDown)
        return;
    if (hb.priority == me_) {
        // Echoed so that a real second host can prove the clash; a recording of this host's
        // earlier boot never echoes this boot's nonce, and is ignored.
        dup_nonce_ = hb.nonce;
        dup_heard_ = now;
        if (!verified(hb)) {
            ++counters_.unverified;
            return;
        }
        ++counters_.duplicate_priority;
        handle_priority_clash(hb, now);
        held_eval_ = true;
        if (!holding_)
            settle_frames(now);
        return;
    }
    if (peers_.peer(hb.priority).heard_nonce != hb.nonce && hb.nonce != served_with_[hb.priority] &&
        hb.claim != 0 && !(hb.claim_members & host_bit(me_)))
        formed_without_[hb.priority] = hb.nonce;
    const auto heard_before = peers_.peer(hb.priority).heard_ms();
    // Before anything of it is taken in, proven or not: a peer that served an epoch with this
    // host and now claims one without it has counted this host gone (or another host says
    // members of this host's epoch left it), and that group may own this host's buckets.
    if (dropped_by(hb))
        recover(
            now,
            "host " + std::to_string(hb.priority) +
                " claims an epoch without this host (its members counted this host gone): released "
                "every bucket, converging again",
            "host " + std::to_string(hb.priority) + " left this host out");
    const bool new_stream = peers_.hear(hb, now, path == Path::contact, quiet_ms());
    if (!verified(hb)) {
        // Authentic but not proven fresh: it may be a recording, or a peer that has not heard
        // this host yet. Its nonce is echoed (hear), nothing else changes. A stream heard for
        // the first time in a tolerance gets the echo at once (a partition heal decides on
        // it); others at the usual pace.
        ++counters_.unverified;
        // It may serve all the same: a host that restarted just before this one heard it
        // could not prove contact before it paused. Until a tolerance after its frame (its
        // watchdog runs out sooner) this host takes nothing, as when a peer names it in
        // grace. A replayed recording can only delay takes so.
        if (may_serve(hb))
            named_.note_unproven(hb.priority, heard + tolerance_ms());
        if (new_stream || now - heard_before > tolerance_ms())
            next_send_ = std::min(next_send_, now);
        else
            send_soon(now);
        return;
    }
    had_peer_ = true;
    // A 1.1 frame is authentic but not proven fresh (it echoes nobody): a recording could
    // be replayed under any source MAC, so only 1.2 frames vouch for their source.
    last_trusted_ = !legacy(hb);
    // A peer that newly asks for the second path's copies (its segment frames from this
    // host are late there) gets the next heartbeat soon, not a period later.
    const auto& before = peers_.peer(hb.priority).heartbeat;
    // A member of this host's epoch let go of it at a partition heal: its group lost, and
    // this host follows. It may not hear the other group at all, or not as fresh: a VM woken
    // with its clock holds this host's new boot as a rival of the one it served with, and
    // echoes only that one (two owners for 1.8 s, until the VM took the new boot in, in
    // chaos-ops seed 2827). Only at the frame that first says so: once this host converged
    // again, the member's flag until its own install says nothing new. Not while this host
    // meets the other group itself: it judges by the scores, and may have found its group
    // the winner, which a member that yielded on missing the leader's frame (check_partition)
    // must not overturn.
    const bool member_yielded = met_at_ < 0 && (hb.flags & Heartbeat::kFlagYielded) &&
                                !(before.flags & Heartbeat::kFlagYielded) &&
                                before.nonce == hb.nonce && before.claim == epoch_ &&
                                (epoch_members_ & host_bit(hb.priority)) && reported_claim() != 0;
    const bool newly_asked = hb.has_want && (hb.want & host_bit(me_)) &&
                             !(before.has_want && (before.want & host_bit(me_)));
    const auto change = peers_.accept(hb, heard, quiet_ms());
    if (newly_asked && change.result != Membership::Accept::pending)
        send_soon(now);
    if (change.result == Membership::Accept::pending) {
        // Most likely the peer's new boot, replacing the earlier once that is quiet. One that
        // serves a group of its own is met at once (check_partition).
        if (rival_claim(peers_.peer(hb.priority), now) != 0) {
            held_eval_ = true;
            if (!holding_)
                settle_frames(now);
        }
        return;
    }
    if (change.result != Membership::Accept::duplicate) {
        // The peer's own stream, proven: echoed from now on, whatever was heard last (a
        // recording of its earlier boot, its stopped boot just before a restart).
        // Echoed soon too when this host last heard that priority two periods or more ago
        // (its link flapped, it paused): its dataplane keeps serving only while its peers'
        // confirmations keep up, and the bound of those it had runs out a tolerance after its
        // last frame before the gap. Only while this host has not counted it out (at
        // tolerance 2, never): after that its bound has run out, and one that comes back
        // unaware of the gap (a VM stopped with its clock) still serves what the peers took
        // meanwhile. Echoed soon, such hosts served beside the takers for 1.5-5.3 s in
        // chaos-ops seeds 779, 965, 1358, 1669 and 1963 (found, not explained: the soon frame
        // carries what the next heartbeat would); echoed at the next heartbeat, they pass.
        const std::int64_t gap = now - heard_before;
        if (peers_.hear_proven(hb, now, path == Path::contact) ||
            (gap > 2 * period() &&
             gap <= Membership::timeout_of(peers_.peer(hb.priority), tolerance_ms())))
            send_soon(now);
        note_confirmation(hb);
        if (hb.claim != 0 && (hb.claim_members & host_bit(me_)))
            served_with_[hb.priority] = hb.nonce;
        maybe_inherit_fixed_seed(hb, now);
        named_.note(hb.priority, hb.nonce, hb.outside_owners & ~host_bit(me_),
                    heard + tolerance_ms());
        named_.note_grace(
            hb.priority, hb.grace_owners & ~host_bit(me_),
            heard + std::min<std::int64_t>(hb.grace_left_ms,
                                           std::max(tolerance_ms(), Membership::tolerance_in(hb)) +
                                               std::max(period(), Membership::period_in(hb))));
    }
    if (change.result == Membership::Accept::duplicate) {
        ++counters_.duplicate_priority;
        event(now, EventKind::duplicate_priority, hb.priority,
              "a second host uses priority " + std::to_string(hb.priority) + ": ignored");
        return;
    }
    if (change.result == Membership::Accept::new_host) {
        refused_logged_ &= ~host_bit(hb.priority);
        event(now, EventKind::host_joined, hb.priority,
              "host " + std::to_string(hb.priority) + " heard (" + to_string(hb.state) + ")");
    } else if (change.state_changed) {
        event(now, EventKind::host_changed, hb.priority,
              "host " + std::to_string(hb.priority) + " is " + to_string(hb.state));
    }
    if (change.params_changed)
        ++params_generation_;
    if (change.dirty_changed)
        update_others_dirty();
    if (member_yielded)
        yield_partition(now, "host " + std::to_string(hb.priority) +
                                 " of our epoch let go of it at a partition heal");
    held_eval_ = true;
    held_heard_ |= host_bit(hb.priority);
    if (!holding_)
        settle_frames(now);
}

bool ConvergenceEngine::dropped_by(const Heartbeat& hb) const {
    // Only what this host owns under its epoch can be taken from it.
    if (legacy(hb) || claim() == 0)
        return false;
    // Now the peer claims an epoch agreed on without this host: it counted this host dead
    // (a VM stopped with its clock, which saw no stall of its own; frames lost for a
    // tolerance) or lacks two-way contact, or it restarted since and formed its group without
    // this host. That group takes this host's buckets as soon as it counts it gone: whatever
    // this host still owns may be owned twice. Not a joiner's peers, which claim the epoch
    // before (this host's previous one, or an epoch it never served, which blocks its takes).
    if (hb.claim == 0 || hb.claim == epoch_ || (prev_ && hb.claim == prev_epoch_) ||
        (hb.claim_members & host_bit(me_)))
        return false;
    const bool member = epoch_members_ & host_bit(hb.priority);
    if (member && !(hb.claim_members & host_bit(hb.priority)))
        return false;
    // A second host with the member's priority (a cloned VM's configuration): a stream set
    // aside as one, or a rival the member's own stream spoke after (Membership::accept), says
    // nothing of what the member counted. (A rival the member has not spoken after may be the
    // member restarted, whose new boot formed its group without this host: that one counts.)
    const auto& peer = peers_.peer(hb.priority);
    if (peer.alive && hb.nonce != peer.heartbeat.nonce &&
        (hb.nonce == peer.second_nonce ||
         (hb.nonce == peer.rival_nonce && peer.last_heard_ms > peer.rival_since_ms)))
        return false;
    const auto& before = peer.heartbeat;
    // A later frame of the stream this host last took in as proven (sent after it: no
    // recording), or one that proves contact itself.
    const bool later = peer.known && before.nonce == hb.nonce && hb.sequence > before.sequence;
    const bool fresh = verified(hb) || later;
    if (state_ == HostState::draining) {
        // Its peers agree on the epoch without a draining host as a matter of course, and it
        // lets go at its own install of it; until then they name it among the owners outside
        // their view (section 11) and take nothing it claims. A member that served with it
        // and no longer names it counted it dead (a VM stopped with its clock): that group
        // takes its buckets. Only the member's stream from then (a new boot has not heard it
        // yet, and would name it once it has); any claim without the names would also make
        // it let go at every second drainstop or weight change, and a draining host never
        // converges to end the recovery: its watchdog ran out with the connections it drained.
        // Section 11 goes only when it names someone, so its absence says nothing of a build
        // that predates it (a rolling upgrade, when drains are common): only a sender of
        // section 12, which every later build sends, is taken at its word.
        if (member && later && hb.has_acks && hb.nonce == served_with_[hb.priority] &&
            !((hb.outside_owners | hb.grace_owners) & host_bit(me_)))
            return true;
        // A member's new boot that proves it heard this host, and claimed an epoch without it
        // before this host heard it at all: it served unaware of this host (every peer that
        // served with it restarted while its VM stood still), so its names say nothing of what
        // it took. Not one that has served an epoch with this host since (this host joined
        // it: its first frames here claimed the epoch it served alone), nor while another
        // member that served with this host still names it.
        if (!(member && verified(hb) && hb.nonce == formed_without_[hb.priority] &&
              hb.nonce != served_with_[hb.priority]))
            return false;
        for (std::uint8_t q = 1; q <= NLB_MAX_HOSTS; ++q) {
            const auto& other = peers_.peer(q);
            // (One whose new boot is pending here, the earlier silent since: restarted too.)
            const bool restarted = other.rival_nonce != 0 &&
                                   other.rival_nonce != other.heartbeat.nonce &&
                                   other.last_heard_ms <= other.rival_since_ms;
            if (q != me_ && q != hb.priority && other.alive && !restarted &&
                other.heartbeat.nonce == served_with_[q] &&
                ((other.heartbeat.outside_owners | other.heartbeat.grace_owners) & host_bit(me_)))
                return false;
        }
        return true;
    }
    if (!member) {
        // A host outside the epoch says that members of it serve, with it, an epoch without
        // this host: they left it. A VM stopped with its clock meets such a group when the
        // member it served with restarted meanwhile and is paused now, its dataplane serving
        // the new epoch's map unheard, and the frames that say so are the first it reads: the
        // partition heal that follows lets the group with the paused member yield, which
        // stops nothing of that member (two owners until its watchdog, 3.2 s in one schedule
        // of test_chaos_ops.cpp).
        return (hb.claim_members & epoch_members_ & ~host_bit(me_)) && fresh;
    }
    // The stream that served this epoch with this host, later than its last frame that proved
    // contact (sent after it: no recording), or a frame that proves contact itself (made after
    // this host started: a new boot of the peer).
    return verified(hb) || (fresh && before.claim != 0 && (before.claim_members & host_bit(me_)));
}

void ConvergenceEngine::end_frames(Millis now_ms) {
    const std::int64_t now = now_ms.count();
    // Each frame was judged at its arrival: the time since, to the read, is judged here,
    // before anything is decided or the dataplane's deadline is armed again.
    if (std::exchange(holding_, false))
        observe(now);
    if (held_eval_)
        settle_frames(now);
}

void ConvergenceEngine::settle_frames(std::int64_t now) {
    const std::uint64_t heard = std::exchange(held_heard_, 0);
    held_eval_ = false;
    ++counters_.evaluations;
    evaluate(now);
    // The frame that completes agreement starts the count of stable periods now rather than
    // at the next half-period send: failover must fit in tolerance + 2 periods.
    if (agreeing_ && participating() && stable_ == 0 && agreement(now))
        send_soon(now);
    // A member waiting for our base gets its chunks with our next frame, not a period later.
    if (chosen_ != 0 && base_digest_ == chosen_)
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
            if ((heard & view_ & host_bit(p)) && member_lacks_base(peers_.peer(p).heartbeat)) {
                send_soon(now);
                break;
            }
}

} // namespace nlb
