#include "bucket_entries.hpp"

#include <nlb/maps.h>

namespace nlb {

std::array<std::uint16_t, NLB_BUCKETS> bucket_entries(const SlotView& view, std::uint8_t me) {
    std::array<std::uint16_t, NLB_BUCKETS> out{};
    for (std::size_t b = 0; b < NLB_BUCKETS; ++b) {
        std::uint16_t e = view.owners[b];
        if (me != 0 && view.owners[b] == me) {
            e |= NLB_BKT_MINE;
            if (view.dirty_elsewhere[b])
                e |= NLB_BKT_DIRTY_OTHER;
            if (view.adopt[b])
                e |= NLB_BKT_ADOPT;
        } else if (view.tracked_here[b]) {
            e |= NLB_BKT_TRACKED_HERE;
        }
        out[b] = e;
    }
    return out;
}

} // namespace nlb
