// The peer table: the latest accepted heartbeat of every other host priority, when it was
// heard, and who is alive (heard within the tolerance). One stream (boot nonce) per priority:
// while a live host holds a priority, frames from a second host claiming it are set aside.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include <nlb/limits.h>

#include "heartbeat.hpp"

namespace nlb {

inline constexpr std::int64_t kNever = -(std::int64_t{1} << 60);

struct Peer {
    bool known = false; // a stream is recorded for this priority
    bool alive = false; // a frame proving contact (echoing this boot) within the tolerance
    std::int64_t last_heard_ms = 0;
    std::int64_t alive_since_ms = 0;
    Heartbeat heartbeat; // from the last such frame
    // Any authentic, fresh frame of the stream heard last, proven or not: what this host
    // echoes, where it sends by the second path, and on which path it hears the peer.
    std::uint64_t heard_nonce = 0;
    std::int64_t heard_segment_ms = kNever;
    std::int64_t heard_contact_ms = kNever;
    std::int64_t heard_first_ms = kNever; // the stream heard last, first heard (either path)
    // The stream heard last, last heard on either path.
    std::int64_t heard_ms() const { return std::max(heard_segment_ms, heard_contact_ms); }
    ContactAddress contact;
    std::uint16_t heard_mtu = 0; // the heard stream's last word on its MTU (0: 1,500 or more)
    // Another proven-fresh stream under this priority while the live one was not yet quiet,
    // and when it was first accepted: a duplicate only if the live one speaks after it.
    std::uint64_t rival_nonce = 0;
    std::int64_t rival_since_ms = 0;
    std::uint64_t rival_sequence = 0; // the live stream's sequence then
    // What the rival's last frame claimed (1.2 frames only), and when it came: most likely a
    // new boot, which may serve a group of its own meanwhile (ConvergenceEngine::rival_claim);
    // possibly a late or replayed frame of an earlier boot.
    std::uint64_t rival_claim = 0;
    std::uint64_t rival_claim_members = 0;
    std::int64_t rival_heard_ms = kNever;
    // The rival proven a second host (the live stream sent two frames after it appeared; a
    // restarted host's earlier stream never speaks again): set aside until that one is dead.
    std::uint64_t second_nonce = 0;
};

class Membership {
  public:
    enum class Accept {
        new_host,  // first frame of a host not alive until now (or a new boot of it)
        updated,   // next frame of a live host
        duplicate, // a second host with the priority of a live one: ignored
        // Another stream while the live one has been silent for less than `quiet_ms` and has
        // not spoken since that stream appeared: a restart until proven otherwise; ignored.
        pending,
    };
    struct Change {
        Accept result = Accept::updated;
        bool params_changed = false; // weights, handling priorities, rule controls, base map
        bool state_changed = false;
        bool dirty_changed = false;
    };

    // A proven-fresh frame. Another stream replaces a live peer's only once that one has been
    // silent for more than `quiet_ms` (a restart); until then it is pending, and a duplicate
    // once the live stream speaks after it (two hosts, interleaved). A stream set aside (a
    // proven duplicate, or one that does not serve while the live one does) replaces it only
    // once it is dead, however long it is silent before that (lost frames), or has stepped
    // aside itself.
    Change accept(const Heartbeat& hb, std::int64_t now_ms, std::int64_t quiet_ms);
    // Records an authentic, fresh frame (proven or not) for the echo list and the paths. A
    // frame of another stream does not displace a live peer's.
    // `quiet_ms`: how long the stream heard last must have been silent before another one
    // replaces it (a restart), so that replayed frames of an earlier boot do not turn the
    // echo away from a host that is talking; a stream set aside (accept) never takes the
    // echo from a live peer, whose proven frames take it back (hear_proven). True when the
    // stream is new here.
    bool hear(const Heartbeat& hb, std::int64_t now_ms, bool by_contact, std::int64_t quiet_ms);
    // A frame of the stream taken in (accept: new_host or updated), which proved contact: the
    // echo and the paths follow it at once, whatever stream was heard last. Otherwise an
    // authentic recording of an earlier boot, fresh to a host restarted since, would keep
    // them from the live stream as long as it is replayed every 1.5 periods, and a stopped
    // boot's last frames would keep them for 1.5 periods from its restart, which replaces it
    // at once; the peer lacks two-way contact meanwhile (a lone peer beside it is deaf). True
    // when the stream was not heard last.
    bool hear_proven(const Heartbeat& hb, std::int64_t now_ms, bool by_contact);
    // The heartbeat accepted last from `priority`, heard last too, is (nonce, sequence): a
    // frame with these is the other path's copy of one already taken in.
    bool holds(std::uint8_t priority, std::uint64_t nonce, std::uint64_t sequence) const {
        const auto& p = peers_[priority];
        return p.alive && p.heartbeat.nonce == nonce && p.heartbeat.sequence == sequence &&
               p.heard_nonce == nonce;
    }
    // A frame of the stream held that one taken in since has superseded: late on its path.
    bool superseded(std::uint8_t priority, std::uint64_t nonce, std::uint64_t sequence) const {
        const auto& p = peers_[priority];
        return p.alive && p.heartbeat.nonce == nonce && sequence < p.heartbeat.sequence &&
               p.heard_nonce == nonce;
    }
    // That copy: only the time its path was last heard changes.
    void heard_again(std::uint8_t priority, std::int64_t now_ms, bool by_contact) {
        auto& p = peers_[priority];
        (by_contact ? p.heard_contact_ms : p.heard_segment_ms) = now_ms;
    }
    // Marks dead every live peer not heard for more than `timeout_ms`, or than its own
    // tolerance when its heartbeat says it runs a longer one; returns them.
    std::vector<std::uint8_t> expire(std::int64_t now_ms, std::int64_t timeout_ms);
    // Earliest time a live peer can expire (INT64_MAX if none).
    std::int64_t next_expiry(std::int64_t timeout_ms) const;
    // How long `p` may be silent before it is dead: `timeout_ms`, or the tolerance its last
    // heartbeat gives (heartbeat_ms × heartbeat_tolerance, within what a configuration may
    // say) when longer. Its dataplane's watchdog runs by its own timing: a host that has
    // switched to a shorter one (a staged change, docs/staged-config.md) while the peer, paused
    // or not yet switched, runs the longer one must not take the peer's buckets before the
    // peer's own watchdog stops them.
    static std::int64_t timeout_of(const Peer& p, std::int64_t timeout_ms) {
        return std::max(timeout_ms, tolerance_in(p.heartbeat));
    }
    // The period and the tolerance (ms) a heartbeat says its sender runs, within what a
    // configuration may say (rules.cpp: heartbeat_ms 10..60000, heartbeat_tolerance 2..100);
    // 0 for a frame without them (1.1).
    static std::int64_t period_in(const Heartbeat& hb) {
        return hb.has_config ? std::min<std::int64_t>(hb.heartbeat_ms, 60000) : 0;
    }
    static std::int64_t tolerance_in(const Heartbeat& hb) {
        return period_in(hb) * std::min<std::int64_t>(hb.heartbeat_tolerance, 100);
    }

    const Peer& peer(std::uint8_t priority) const { return peers_[priority]; }
    std::uint64_t alive_mask() const { return alive_; }

  private:
    static bool note_heard(Peer& p, const Heartbeat& hb, std::int64_t now_ms, bool by_contact);

    std::array<Peer, NLB_MAX_HOSTS + 1> peers_{};
    std::uint64_t alive_ = 0; // bit p-1 = priority p
};

inline std::uint64_t host_bit(std::uint8_t priority) {
    return std::uint64_t{1} << (priority - 1);
}

} // namespace nlb
