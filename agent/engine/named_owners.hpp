// Hosts that peers named as owning buckets outside their view (heartbeat section 11), kept
// per named host and per namer until a tolerance after the naming frame came: were the named
// host paused then, its watchdog stops it sooner. A namer that crashes or restarts names
// nobody any more while the named host may still serve, so its last word stands; a namer
// still on the same boot speaks for itself through its current frame. Each namer's word
// counts on its own: one that stopped naming a host does not speak for another that crashed.
// Hosts named in grace (dead or late at the namer) stay named until the latest end any namer
// gave, whatever becomes of the namer and whatever it sends next: a new boot of it, or a
// recording of an earlier one, names nobody or itself, and the named host's watchdog runs on.
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

    // `namer` named `owners` in grace, until `until`. A later frame of the namer that names
    // fewer, or a new boot of it that never heard them, does not end what it gave: a host
    // that never heard them itself would take their buckets while their watchdogs run.
    void note_grace(std::uint8_t namer, std::uint64_t owners, std::int64_t until) {
        if (namer < 1 || namer > NLB_MAX_HOSTS)
            return;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
            if (p != namer && (owners & host_bit(p)) && until > grace_[p])
                grace_[p] = until;
    }
    // Host `p` heard here without proof of contact while it may serve, until `until`: kept
    // apart from what namers say of it, which a frame of its own must not replace.
    void note_unproven(std::uint8_t p, std::int64_t until) {
        if (p >= 1 && p <= NLB_MAX_HOSTS && until > unproven_[p])
            unproven_[p] = until;
    }
    // The latest end of a grace some namer gave for one of `hosts` at `now` or later, or of
    // one heard without proof (-1: none runs).
    std::int64_t grace_until(std::uint64_t hosts, std::int64_t now) const {
        std::int64_t until = -1;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            if (!(hosts & host_bit(p)))
                continue;
            for (const auto end : {grace_[p], unproven_[p]})
                if (end >= now && end > until)
                    until = end;
        }
        return until;
    }

    // Hosts this host heard itself without proof of contact (`note_unproven`) whose grace
    // runs at `now`; `until` receives the latest end.
    std::uint64_t self_named(std::int64_t now, std::int64_t& until) const {
        std::uint64_t out = 0;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            if (unproven_[p] >= now) {
                out |= host_bit(p);
                until = unproven_[p] > until ? unproven_[p] : until;
            }
        }
        return out;
    }

  private:
    // Per named host: the latest end of a grace a namer gave, and of its own unproven frame.
    std::array<std::int64_t, NLB_MAX_HOSTS + 1> grace_ = filled(-1);
    std::array<std::int64_t, NLB_MAX_HOSTS + 1> unproven_ = filled(-1);
    static constexpr std::array<std::int64_t, NLB_MAX_HOSTS + 1> filled(std::int64_t v) {
        std::array<std::int64_t, NLB_MAX_HOSTS + 1> a{};
        a.fill(v);
        return a;
    }
    struct Entry {
        std::uint64_t nonce = 0; // the namer's boot
        std::int64_t until = -1;
    };
    std::array<std::array<Entry, NLB_MAX_HOSTS + 1>, NLB_MAX_HOSTS + 1> entries_{};
    std::uint64_t named_ = 0; // hosts with an entry (some may have run out)
};

} // namespace nlb
