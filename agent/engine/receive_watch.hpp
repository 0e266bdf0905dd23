// The agent's watch for a link that fails one way (docs/convergence.md, "A link that fails one
// way"): pure, so that the simulator runs the same rule as the agent (Agent::receiving).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

namespace nlb {

class ReceiveWatch {
  public:
    // A new engine (its counts start at 0), or the carrier lost: silence from here on proves
    // nothing of the receive path yet. Where there is a gateway to ask, a new engine is watched
    // from its start: restarted behind a port that delivers nothing, it hears no peer, and
    // unwatched it formed an epoch alone beside the cluster, two owners of every bucket it took
    // once the port delivered again. Without, a new engine is watched only once it heard peers
    // of its own: the previous one's (a re-attach) would arm the watch before it heard anybody.
    void restart(std::int64_t now) {
        heard_seen_ = 0;
        heard_peers_ = 0;
        proven_ = false;
        up_ = true;
        lost_carrier(now);
    }
    void lost_carrier(std::int64_t now) {
        heard_moved_ = now;
        clients_seen_.reset();
        probes_ = 0;
    }
    // Whether the host still receives. One that had peers in its view and then takes in no
    // peer's frame (`heard`: the engine's accepted count) for two periods, and no client's
    // frame (`clients()`: the dataplane's counts and the probe's, read only then) for a period
    // of that, is cut off one way. `peers`: the peers in the engine's view now. Frames the
    // switch itself sends (spanning tree, LLDP, its own address's) are neither and prove
    // nothing: counting every received frame, a host came back up on one and served alone.
    // Peers that crashed on a quiet segment look the same, and their survivor must take over:
    // with `can_probe` (a gateway to ask) the watch asks the segment (`probe()`: an ARP request
    // to it, whose answer counts among clients()) from the first look on, a quarter period
    // apart, then once a period (a second at least) while it finds nothing, and the rule
    // applies to any host (one that heard nobody since its start too); without, only to a host
    // that had two peers or more (one peer's death on a quiet segment would take its survivor
    // down), and peers that all crash at once look the same until a client's frame comes.
    template <class Clients, class Probe>
    bool receiving(std::int64_t now, std::int64_t period, std::uint64_t heard, int peers,
                   bool can_probe, Clients&& clients, Probe&& probe) {
        if (heard != heard_seen_) {
            heard_seen_ = heard;
            heard_moved_ = now;
            heard_peers_ = peers;
            proven_ = false;
            clients_seen_.reset();
            probes_ = 0;
            return up_ = true;
        }
        if ((can_probe ? proven_ : heard_peers_ < 2) || now - heard_moved_ < period) {
            // Unwatched meanwhile (the gateway's route gone, say): what came before proves
            // nothing of what comes after, and the probe's socket, no longer read, must go.
            clients_seen_.reset();
            probes_ = 0;
            return up_ = true;
        }
        const std::uint64_t seen = clients();
        if (clients_seen_ && seen != *clients_seen_) {
            // A client's frame (or the gateway's answer) came while every peer was silent: the
            // receive path works. The peers are gone (crashed together) once the engine counted
            // them out, or once the host went down for their silence: watched again only once a
            // peer is heard, or a survivor on a quiet segment went down again a period after each
            // client's frame, and with clients seconds apart (a SYN retried) never served. Before
            // that it is a peer's frame late (a heartbeat lost, jitter), which is routine: ended
            // there, the watch missed a port that stopped delivering in that moment for good, and
            // in a cluster of two its host formed an epoch alone while its peer let go of every
            // bucket for it. It proves the receive path for a period more, no longer.
            clients_seen_ = seen;
            probes_ = 0;
            if (peers == 0 || !up_) {
                heard_peers_ = 0;
                proven_ = true;
            } else {
                clients_at_ = now;
            }
            return up_ = true;
        }
        if (!clients_seen_) { // the first look
            clients_seen_ = seen;
            clients_at_ = now;
        }
        // Three requests before the verdict, then once a period but at most once a second: down,
        // it goes on asking for as long as the port stays dead, and the shortest period with
        // four gateways made 40 ARP requests a second, past what a switch's ARP inspection lets
        // an untrusted port send (15 a second by default on some) before it shuts the port.
        const std::int64_t gap =
            probes_ < 3 ? period / 4 : std::max<std::int64_t>(period, kSteadyProbeMs);
        if (can_probe && (probes_ == 0 || now - probed_at_ >= gap)) {
            probe();
            probes_ = std::min(probes_ + 1, 3);
            probed_at_ = now;
        }
        return up_ = now - heard_moved_ < 2 * period || now - clients_at_ < period;
    }
    // Whether the watch is asking the segment (the probe's socket is wanted).
    bool probing() const { return probes_ > 0; }
    // How long no peer's frame came (for the engine's why).
    std::int64_t silent_for(std::int64_t now) const { return now - heard_moved_; }

  private:
    static constexpr std::int64_t kSteadyProbeMs = 1000;
    std::uint64_t heard_seen_ = 0;
    std::int64_t heard_moved_ = 0;
    int heard_peers_ = 0;
    bool up_ = true; // what the watch said last
    // With a gateway: the receive path proven while every peer was gone, unwatched until a
    // peer is heard.
    bool proven_ = false;
    std::optional<std::uint64_t> clients_seen_;
    std::int64_t clients_at_ = 0;
    int probes_ = 0; // asked since the peers fell silent
    std::int64_t probed_at_ = 0;
};

} // namespace nlb
