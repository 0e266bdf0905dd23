#include "membership.hpp"

#include <algorithm>
#include <limits>

namespace nlb {
namespace {

bool serving(HostState s) {
    return s == HostState::converging || s == HostState::converged || s == HostState::draining;
}

// Another stream under a live peer's priority that must not replace it before it is dead,
// however many of its frames are lost: one proven a second host, or one that does not serve
// while the live one does (a restarted host comes back converging; a refused one would take
// a serving member out of the cluster's view for nothing).
bool set_aside(const Peer& p, const Heartbeat& hb) {
    return hb.nonce == p.second_nonce || (serving(p.heartbeat.state) && !serving(hb.state));
}

} // namespace

Membership::Change Membership::accept(const Heartbeat& hb, std::int64_t now_ms,
                                      std::int64_t quiet_ms) {
    Change change;
    auto& p = peers_[hb.priority];
    if (p.alive && p.heartbeat.nonce != hb.nonce &&
        (now_ms - p.last_heard_ms <= quiet_ms || set_aside(p, hb))) {
        // Two hosts claim one priority. The live one keeps it unless it has stepped aside
        // (refused, stopped) and the newcomer has not. A stream that went quiet before a
        // proven-fresh one appeared is the same host restarted: the new one replaces it at
        // once, so its buckets never pass to the others in between.
        if (serving(p.heartbeat.state) || !serving(hb.state)) {
            // A restarted agent can prove contact within a period of its earlier boot's last
            // frame; only the earlier stream speaking again proves a second host.
            if (p.rival_nonce != hb.nonce) {
                p.rival_nonce = hb.nonce;
                p.rival_since_ms = now_ms;
                p.rival_sequence = p.heartbeat.sequence;
            }
            // A 1.1 frame echoes nobody, so may be a recording of any earlier boot: its claim
            // counts for nothing (ConvergenceEngine::rival_claim).
            const bool proven = hb.version_minor >= 2;
            p.rival_claim = proven ? hb.claim : 0;
            p.rival_claim_members = proven ? hb.claim_members : 0;
            p.rival_heard_ms = now_ms;
            const bool spoke_after = p.last_heard_ms > p.rival_since_ms;
            // Set aside for good only once the live stream sent two frames since: one frame of
            // a restarted host's earlier boot, late on the other path, is not a second host.
            if (spoke_after && p.heartbeat.sequence >= p.rival_sequence + 2)
                p.second_nonce = hb.nonce;
            change.result =
                spoke_after || hb.nonce == p.second_nonce ? Accept::duplicate : Accept::pending;
            return change;
        }
    }
    const bool fresh = !p.alive || p.heartbeat.nonce != hb.nonce;
    if (fresh)
        // A proven second host that takes over from a live one that stepped aside leaves
        // that one set aside in its turn (both talk); any other new stream starts clean.
        p.second_nonce = p.alive && hb.nonce == p.second_nonce ? p.heartbeat.nonce : 0;
    change.result = fresh ? Accept::new_host : Accept::updated;
    change.params_changed =
        fresh || p.heartbeat.rules != hb.rules || p.heartbeat.control != hb.control ||
        p.heartbeat.rule_count != hb.rule_count || p.heartbeat.base_digest != hb.base_digest ||
        p.heartbeat.base_generation != hb.base_generation ||
        p.heartbeat.base_flags != hb.base_flags || p.heartbeat.has_health != hb.has_health ||
        p.heartbeat.probe_down != hb.probe_down || p.heartbeat.panic_percent != hb.panic_percent;
    change.state_changed = fresh || p.heartbeat.state != hb.state;
    change.dirty_changed = fresh ? !hb.dirty.empty() : p.heartbeat.dirty != hb.dirty;
    p.known = true;
    if (fresh)
        p.alive_since_ms = now_ms;
    // Times are when frames came: the two paths' sockets are read in turn, so a frame read
    // later may have come earlier than one taken in already.
    p.last_heard_ms = fresh ? now_ms : std::max(p.last_heard_ms, now_ms);
    p.alive = true;
    p.heartbeat = hb;
    alive_ |= host_bit(hb.priority);
    return change;
}

bool Membership::hear(const Heartbeat& hb, std::int64_t now_ms, bool by_contact,
                      std::int64_t quiet_ms) {
    auto& p = peers_[hb.priority];
    if (p.heard_nonce != hb.nonce) {
        const bool back_from_second =
            p.alive && hb.nonce == p.heartbeat.nonce && p.heard_nonce == p.second_nonce;
        if ((p.alive && hb.nonce != p.heartbeat.nonce && set_aside(p, hb)) ||
            (!back_from_second && p.heard_nonce != 0 && now_ms - p.heard_ms() <= quiet_ms))
            return false;
    }
    return note_heard(p, hb, now_ms, by_contact);
}

bool Membership::hear_proven(const Heartbeat& hb, std::int64_t now_ms, bool by_contact) {
    return note_heard(peers_[hb.priority], hb, now_ms, by_contact);
}

bool Membership::note_heard(Peer& p, const Heartbeat& hb, std::int64_t now_ms, bool by_contact) {
    const bool fresh = p.heard_nonce != hb.nonce;
    if (fresh) {
        p.heard_nonce = hb.nonce;
        p.heard_segment_ms = p.heard_contact_ms = kNever;
        p.heard_first_ms = now_ms;
    }
    (by_contact ? p.heard_contact_ms : p.heard_segment_ms) = now_ms;
    if (hb.has_contact)
        p.contact = hb.contact;
    // From any authentic frame, proven or not: a peer that cannot take this host's longer
    // frames cannot echo them either, and would never be proven if its MTU waited for that.
    p.heard_mtu = hb.mtu;
    return fresh;
}

std::vector<std::uint8_t> Membership::expire(std::int64_t now_ms, std::int64_t timeout_ms) {
    std::vector<std::uint8_t> dead;
    for (std::uint8_t prio = 1; prio <= NLB_MAX_HOSTS; ++prio) {
        auto& p = peers_[prio];
        if (p.alive && now_ms - p.last_heard_ms > timeout_of(p, timeout_ms)) {
            p.alive = false;
            alive_ &= ~host_bit(prio);
            dead.push_back(prio);
        }
    }
    return dead;
}

std::int64_t Membership::next_expiry(std::int64_t timeout_ms) const {
    std::int64_t t = std::numeric_limits<std::int64_t>::max();
    for (std::uint8_t prio = 1; prio <= NLB_MAX_HOSTS; ++prio) {
        const auto& p = peers_[prio];
        if (p.alive)
            t = std::min(t, p.last_heard_ms + timeout_of(p, timeout_ms) + 1);
    }
    return t;
}

} // namespace nlb
