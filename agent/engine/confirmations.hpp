// When each peer last confirmed hearing this host (heartbeat section 12): the peer names the
// low 16 bits of the sequence number of this host's newest frame it took in, and this host
// knows when it sent that frame. The peer counts this host dead no sooner than a tolerance
// after that frame (later still if it came late), and takes its buckets no sooner than a
// period after that (the grace, try_take). So this host's dataplane must stop by then, or
// two hosts serve: the watchdog counts from this host's own last look only, which is not
// enough when its frames were lost for a while just before it paused (docs/convergence.md,
// "Confirmed heartbeats").
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include <nlb/limits.h>

#include "membership.hpp"

namespace nlb {

class Confirmations {
  public:
    // Frames sent further back than this are confirmed too late to count: at most four early
    // heartbeats and two regular ones a period, so 1,024 frames are over 170 periods, past
    // the largest tolerance (100).
    static constexpr std::size_t kRing = 1024;

    // This host sent its frame `sequence` (> 0, one more than the last) at `now`.
    void sent(std::uint64_t sequence, std::int64_t now) {
        ring_[sequence % kRing] = {sequence, now};
        newest_ = sequence;
    }
    // When this host sent the frame whose sequence ends in `low` (the newest such one sent):
    // nullopt when it went further back than the ring holds, or was never sent.
    std::optional<std::int64_t> sent_at(std::uint16_t low) const {
        const std::uint64_t back = static_cast<std::uint16_t>(newest_ - low);
        if (back >= newest_ || back >= kRing)
            return std::nullopt;
        const auto& s = ring_[(newest_ - back) % kRing];
        if (s.sequence != newest_ - back)
            return std::nullopt;
        return s.at;
    }
    // Peer `p` (boot `nonce`) confirmed, in its newest frame, a frame this host sent at
    // `sent` (kNever: one sent too long ago to say).
    void confirm(std::uint8_t p, std::uint64_t nonce, std::int64_t sent) {
        if (p < 1 || p > NLB_MAX_HOSTS)
            return;
        if (peers_[p].nonce != nonce || sent < peers_[p].sent)
            ++changes_; // a bound may come nearer: not only later, as a stream's acks move
        peers_[p] = {nonce, sent};
    }
    // How often a confirmation changed otherwise than later in the same stream.
    std::uint64_t changes() const { return changes_; }
    // When this host sent the frame that peer `p`'s boot `nonce` confirmed last (nullopt:
    // none confirmed by that boot).
    std::optional<std::int64_t> confirmed(std::uint8_t p, std::uint64_t nonce) const {
        if (p < 1 || p > NLB_MAX_HOSTS || nonce == 0 || peers_[p].nonce != nonce)
            return std::nullopt;
        return peers_[p].sent;
    }

  private:
    struct Sent {
        std::uint64_t sequence = 0;
        std::int64_t at = kNever;
    };
    struct Confirmed {
        std::uint64_t nonce = 0; // the peer's boot; 0: nothing confirmed
        std::int64_t sent = kNever;
    };
    std::array<Sent, kRing> ring_{};
    std::uint64_t newest_ = 0;
    std::array<Confirmed, NLB_MAX_HOSTS + 1> peers_{};
    std::uint64_t changes_ = 0;
};

} // namespace nlb
