// How the engine's view of a rule slot becomes the dataplane's bucket entries.
#include <catch2/catch.hpp>

#include <nlb/maps.h>

#include "bucket_entries.hpp"

using namespace nlb;

TEST_CASE("bucket entries carry the owner and this host's flags") {
    SlotView v;
    v.owners[0] = 1; // mine, steady
    v.owners[1] = 1; // mine, another host still serves connections in it
    v.dirty_elsewhere[1] = true;
    v.owners[2] = 2; // theirs, but I still serve connections in it
    v.tracked_here[2] = true;
    v.owners[3] = 2; // theirs
    v.owners[4] = 1; // mine, newly taken: adopt mid-stream connections
    v.adopt[4] = true;
    v.owners[5] = 2; // theirs: flags that only mean something for owned buckets stay off
    v.dirty_elsewhere[5] = true;
    v.adopt[5] = true;
    auto e = bucket_entries(v, 1);
    CHECK(e[0] == (1 | NLB_BKT_MINE));
    CHECK(e[1] == (1 | NLB_BKT_MINE | NLB_BKT_DIRTY_OTHER));
    CHECK(e[2] == (2 | NLB_BKT_TRACKED_HERE));
    CHECK(e[3] == 2);
    CHECK(e[4] == (1 | NLB_BKT_MINE | NLB_BKT_ADOPT));
    CHECK(e[5] == 2);
    CHECK(e[6] == 0); // nobody's
    // Priority 0 is no host: nothing is ever "mine".
    for (auto x : bucket_entries(v, 0))
        CHECK((x & NLB_BKT_MINE) == 0);
}
