// Reads the dataplane's connection tables: which (rule, bucket) pairs still hold live
// connections on this host (what makes a bucket this host lost "dirty"), forgets established
// connections whose socket closed longer than the grace period ago and, while the socket
// program runs, opening records that were never established.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <vector>

#include "dataplane_maps.hpp"

namespace nlb {

struct ConnScan {
    // live_buckets[rule slot][bucket]: a bitmap, not a set: a full table's half a million
    // entries cost a bit each, not a tree insertion (a tenth of a full scan's CPU).
    std::array<std::bitset<NLB_BUCKETS>, NLB_RULE_SLOTS> live_buckets{};
    std::uint64_t live = 0;        // connections still counted (both tables)
    std::array<std::uint64_t, NLB_RULE_SLOTS> live_by_rule{}; // the same, per rule slot
    std::uint64_t opening = 0;     // entries in the opening tables (both families)
    std::uint64_t established = 0; // entries in the established tables (both families)
    std::uint64_t closing = 0;     // established ones whose socket closed, in their grace
    std::uint64_t expired = 0;     // established ones removed by this scan (socket closed)
    std::uint64_t opening_expired = 0; // opening ones removed: never established in time
};

// `now_ns`: CLOCK_MONOTONIC (the clock the dataplane stamps with, coarse). `age_opening`:
// the socket program runs, so an opening record older than NLB_OPENING_MAX_AGE_NS will never
// be established; without it the opening table is all there is and only the LRU evicts.
ConnScan scan_connections(const DataplaneMaps& maps, std::uint64_t now_ns, bool age_opening);

// Ends the established records (as if their socket had closed now) that no socket in
// `sockets` carries and that were recorded before `listed_at_ns`, the time the socket table
// was read: a socket closed while no socket program ran (the agent's predecessor's), or
// whose close it missed. Returns how many.
std::uint64_t end_orphans(const DataplaneMaps& maps, const std::vector<nlb_tuple>& sockets,
                          std::uint64_t listed_at_ns, std::uint64_t now_ns);

} // namespace nlb
