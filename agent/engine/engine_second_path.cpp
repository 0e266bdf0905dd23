// ConvergenceEngine, the second path: which peers get this host's heartbeat by UDP between
// dedicated IPs beside the segment (docs/convergence.md, "Contact"), and when a host asks
// for such copies.
#include "convergence_engine.hpp"

#include <algorithm>
#include <limits>

namespace nlb {

std::uint64_t ConvergenceEngine::want_mask(std::int64_t now) const {
    std::uint64_t bits = 0;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || peer.heard_nonce == 0 || now - peer.heard_ms() > tolerance_ms())
            continue;
        if (now - peer.heard_segment_ms > quiet_ms())
            bits |= host_bit(p);
    }
    return bits;
}

bool ConvergenceEngine::requests_in_time() const {
    const std::int64_t tolerance = config_.cluster.heartbeat_tolerance;
    return tolerance >= 4 && (tolerance - 3) * period() >= 100;
}

std::int64_t ConvergenceEngine::next_late() const {
    std::int64_t at = std::numeric_limits<std::int64_t>::max();
    if (!requests_in_time())
        return at;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        const std::int64_t late = peer.heard_segment_ms + quiet_ms() + 1;
        // One late already is asked for by the tick that found it (send_soon): a deadline in
        // the past would only spin the timer until that send.
        if (p != me_ && peer.alive && !(wanted_ & host_bit(p)) && late > last_input_)
            at = std::min(at, late);
    }
    return at;
}

bool ConvergenceEngine::backup_only() const {
    return (peers_.alive_mask() & ~host_bit(me_)) == (epoch_members_ & ~host_bit(me_)) && settled();
}

void ConvergenceEngine::send_second_path(const std::vector<std::uint8_t>& frame, std::uint64_t want,
                                         std::int64_t now) {
    // The same frame by the second path to every peer heard lately on either path (also one
    // that does not hear this host: that is how a deaf host learns it is deaf). While the
    // cluster is settled, every live peer a member, and a peer both hears this host on the
    // segment and is heard there, the second path is only a backup: such a peer gets it only
    // while it asks (its want: this host's segment frames are late there), or, a version
    // that cannot ask, every other send, which keeps it alive by that path within a
    // tolerance. This host itself asks for, and sends to, every peer late here (want_mask),
    // so that a segment cut both ways still leaves both sides talking. Anything else (a
    // stranger, a convergence) gets every frame.
    const bool quiet = backup_only();
    const bool thin = (++contact_round_ & 1) == 0;
    const bool by_request = requests_in_time();
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || peer.contact.family == 0 || now - peer.heard_ms() > tolerance_ms())
            continue;
        // (A peer heard under a new boot is not skipped: its requests are not read until its
        // frames prove contact, and that takes this host's copies if it is deaf.)
        if (quiet && peer.alive && !(want & host_bit(p)) &&
            peer.heard_nonce == peer.heartbeat.nonce) {
            const auto* echo = my_echo(p);
            const auto& theirs = peer.heartbeat;
            const bool asked =
                theirs.has_want && by_request ? (theirs.want & host_bit(me_)) != 0 : !thin;
            if (echo && (echo->paths & Heartbeat::kPathSegment) && !asked)
                continue;
        }
        out_.contact.push_back({p, peer.contact, frame});
        ++counters_.contact_sent;
    }
    // The configured addresses that no peer heard lately answers at: a host that has heard
    // nobody (restarted behind a port deaf and mute at once) still reaches its peers' agents,
    // which then know where it answers and send it theirs. Priority 0: nobody known yet.
    for (const auto& address : config_.host.peers) {
        if (address.family == 0 || address == config_.host.contact)
            continue;
        bool known = false;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS && !known; ++p) {
            const auto& peer = peers_.peer(p);
            known = p != me_ && peer.contact == address && now - peer.heard_ms() <= tolerance_ms();
        }
        if (known)
            continue;
        out_.contact.push_back({0, address, frame});
        ++counters_.contact_sent;
    }
}

} // namespace nlb
