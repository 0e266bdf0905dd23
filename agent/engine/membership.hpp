// The peer table: the latest accepted heartbeat of every other host priority, when it was
// heard, and who is alive (heard within the tolerance). One stream (boot nonce) per priority:
// while a live host holds a priority, frames from a second host claiming it are set aside.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <nlb/limits.h>

#include "heartbeat.hpp"

namespace nlb {

struct Peer {
    bool known = false; // a stream is recorded for this priority
    bool alive = false;
    std::int64_t last_heard_ms = 0;
    Heartbeat heartbeat;
};

class Membership {
  public:
    enum class Accept {
        new_host,  // first frame of a host not alive until now (or a new boot of it)
        updated,   // next frame of a live host
        duplicate, // a second host with the priority of a live one: ignored
    };
    struct Change {
        Accept result = Accept::updated;
        bool params_changed = false; // weights, handling priorities, rule controls, base map
        bool state_changed = false;
        bool dirty_changed = false;
    };

    Change accept(const Heartbeat& hb, std::int64_t now_ms);
    // Marks dead every live peer not heard for more than `timeout_ms`; returns them.
    std::vector<std::uint8_t> expire(std::int64_t now_ms, std::int64_t timeout_ms);
    // Earliest time a live peer can expire (INT64_MAX if none).
    std::int64_t next_expiry(std::int64_t timeout_ms) const;

    const Peer& peer(std::uint8_t priority) const { return peers_[priority]; }
    std::uint64_t alive_mask() const { return alive_; }

  private:
    std::array<Peer, NLB_MAX_HOSTS + 1> peers_{};
    std::uint64_t alive_ = 0; // bit p-1 = priority p
};

inline std::uint64_t host_bit(std::uint8_t priority) {
    return std::uint64_t{1} << (priority - 1);
}

} // namespace nlb
