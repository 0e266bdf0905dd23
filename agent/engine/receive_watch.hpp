// The agent's watch for a link that fails one way (docs/convergence.md, "A link that fails one
// way"): pure, so that the simulator runs the same rule as the agent (Agent::receiving).
#pragma once

#include <cstdint>
#include <optional>

namespace nlb {

class ReceiveWatch {
  public:
    // A new engine (its counts start at 0), or the carrier lost: silence from here on proves
    // nothing of the receive path yet.
    void restart(std::int64_t now) {
        heard_seen_ = 0;
        lost_carrier(now);
    }
    void lost_carrier(std::int64_t now) {
        heard_moved_ = now;
        clients_seen_.reset();
    }
    // Whether the host still receives. One that had two peers or more in its view and then
    // takes in no peer's frame (`heard`: the engine's accepted count) for two periods, and no
    // client's frame (`clients()`: the dataplane's counts, read only then) for a period of that,
    // is cut off one way. `peers`: the peers in the engine's view now. Frames the switch itself
    // sends (spanning tree, LLDP, its own address's) are neither and prove nothing: counting
    // every received frame, a host came back up on one and served alone. With one peer the
    // rule never applies: that peer's death on a quiet segment looks the same, and its
    // survivor must take over; peers that all crash at once look the same until a client's
    // frame comes.
    template <class Clients>
    bool receiving(std::int64_t now, std::int64_t period, std::uint64_t heard, int peers,
                   Clients&& clients) {
        if (heard != heard_seen_) {
            heard_seen_ = heard;
            heard_moved_ = now;
            heard_peers_ = peers;
            clients_seen_.reset();
            return true;
        }
        if (heard_peers_ < 2 || now - heard_moved_ < period)
            return true;
        const std::uint64_t seen = clients();
        if (seen != clients_seen_) { // the first look, or clients' frames still come
            // A client's frame came while every peer was silent: the receive path works and
            // the peers are gone (crashed together). Watched again only once a peer is heard:
            // a survivor on a quiet segment otherwise went down again a period after each
            // client's frame, and with clients seconds apart (a SYN retried) never served.
            if (clients_seen_)
                heard_peers_ = 0;
            clients_seen_ = seen;
            clients_at_ = now;
            return true;
        }
        return now - heard_moved_ < 2 * period || now - clients_at_ < period;
    }
    // How long no peer's frame came (for the engine's why).
    std::int64_t silent_for(std::int64_t now) const { return now - heard_moved_; }

  private:
    std::uint64_t heard_seen_ = 0;
    std::int64_t heard_moved_ = 0;
    int heard_peers_ = 0;
    std::optional<std::uint64_t> clients_seen_;
    std::int64_t clients_at_ = 0;
};

} // namespace nlb
