// This host's view of one rule's buckets, in the dataplane's encoding (include/nlb/maps.h):
// the owner's priority plus the NLB_BKT_* flags that let the XDP program decide most packets
// from ownership alone and send only buckets in transition to the connection table.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>

#include <nlb/limits.h>

namespace nlb {

using BucketOwners = std::array<std::uint8_t, NLB_BUCKETS>; // priority, 0 = nobody
using BucketSet = std::bitset<NLB_BUCKETS>;

struct BucketView {
    BucketOwners owners{};
    BucketSet dirty_elsewhere; // owned here, but another host still serves connections in it
    BucketSet tracked_here;    // owned elsewhere, but this host may still serve connections
    BucketSet adopt;           // owned here: record mid-stream connections not seen opening
};

// Entries for one rule slot as host `me` must install them.
std::array<std::uint16_t, NLB_BUCKETS> bucket_entries(const BucketView& view, std::uint8_t me);

} // namespace nlb
