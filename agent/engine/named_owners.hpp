// Hosts that peers named as owning buckets outside their view (heartbeat section 11), kept
// per named host and per namer until a tolerance after the naming frame came: were the named
// host paused then, its watchdog stops it sooner. A namer that crashes or restarts names
// nobody any more while the named host may still serve, so its last word stands; a namer
// still on the same boot speaks for itself through its current frame. Each namer's word
// counts on its own: one that stopped naming a host does not speak for another that crashed.
#pragma once

#include <array>
#include <cstdint>

#include <nlb/limits.h>

#include "membership.hpp"

namespace nlb {

class NamedOwners {
  public:
    // `namer` (boot `nonce`) named `owners` (bit p-1) in a frame; each stays named until `until`.
    void note(std::uint8_t namer, std::uint64_t nonce, std::uint64_t owners, std::int64_t until) {
        if (namer < 1 || namer > NLB_MAX_HOSTS)
            return;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            if (p == namer || !(owners & host_bit(p)))
                continue;
            auto& e = entries_[p][namer];
            if (until >= e.until)
                e = {nonce, until};
            named_ |= host_bit(p);
        }
    }
    // Whether one of `hosts` is still named at `now` by a namer that `gone(namer, nonce)`
    // says has crashed or restarted since.
    template <class Gone>
    bool named_by_gone(std::uint64_t hosts, std::int64_t now, Gone gone) const {
        const std::uint64_t candidates = hosts & named_;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS && candidates; ++p) {
            if (!(candidates & host_bit(p)))
                continue;
            for (std::uint8_t by = 1; by <= NLB_MAX_HOSTS; ++by) {
                const auto& e = entries_[p][by];
                if (e.until >= now && gone(by, e.nonce))
                    return true;
            }
        }
        return false;
    }

  private:
    struct Entry {
        std::uint64_t nonce = 0; // the namer's boot
        std::int64_t until = -1;
    };
    std::array<std::array<Entry, NLB_MAX_HOSTS + 1>, NLB_MAX_HOSTS + 1> entries_{};
    std::uint64_t named_ = 0; // hosts with an entry (some may have run out)
};

} // namespace nlb
