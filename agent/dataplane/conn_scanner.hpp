// Reads the dataplane's connection tables: which (rule, bucket) pairs still hold live
// connections on this host (what makes a bucket this host lost "dirty"), and forgets
// connections that closed longer than the grace period ago.
#pragma once

#include <cstdint>
#include <set>
#include <utility>

#include "dataplane_maps.hpp"

namespace nlb {

struct ConnScan {
    std::set<std::pair<std::uint8_t, std::uint16_t>> live_buckets; // (rule slot, bucket)
    std::uint64_t live = 0;    // connections still counted
    std::uint64_t expired = 0; // closed ones removed by this scan
};

// `now_ns`: CLOCK_MONOTONIC (the clock the dataplane stamps closed_ns with, coarse).
ConnScan scan_connections(const DataplaneMaps& maps, std::uint64_t now_ns);

} // namespace nlb
