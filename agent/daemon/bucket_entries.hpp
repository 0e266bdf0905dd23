// A rule slot as the engine decided it (SlotView), in the dataplane's encoding: the owner's
// priority plus the NLB_BKT_* flags (include/nlb/maps.h) that let the XDP program decide most
// packets from ownership alone and send only buckets in transition to the connection table.
#pragma once

#include <array>
#include <cstdint>

#include <nlb/limits.h>

#include "convergence_engine.hpp"

namespace nlb {

std::array<std::uint16_t, NLB_BUCKETS> bucket_entries(const SlotView& view, std::uint8_t me);

} // namespace nlb
