// The cluster's MAC addresses (DESIGN.md §4) and this host's bucket entries.
#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include <nlb/maps.h>

#include "bucket_entries.hpp"
#include "cluster_mac.hpp"

using namespace nlb;

TEST_CASE("cluster MACs derive from the cluster IP as DESIGN.md §4 says") {
    std::uint32_t ip = 0;
    inet_pton(AF_INET, "192.0.2.100", &ip);
    CHECK(to_string(cluster_mac(ip, ClusterMode::unicast)) == "02:bf:c0:00:02:64");
    CHECK(to_string(cluster_mac(ip, ClusterMode::multicast)) == "03:bf:c0:00:02:64");
    CHECK(to_string(cluster_mac(ip, ClusterMode::igmp)) == "01:00:5e:7f:02:64");
    CHECK(to_string(masked_source_mac(ip, 7)) == "02:07:c0:00:02:64");
    char group[INET_ADDRSTRLEN];
    std::uint32_t g = igmp_group(ip);
    inet_ntop(AF_INET, &g, group, sizeof(group));
    CHECK(std::string(group) == "239.255.2.100");
    CHECK(parse_cluster_mode("igmp") == ClusterMode::igmp);
    CHECK_FALSE(parse_cluster_mode("broadcast"));
}

TEST_CASE("bucket entries carry the owner and this host's flags") {
    BucketView v;
    v.owners[0] = 1; // mine, steady
    v.owners[1] = 1; // mine, another host still serves connections in it
    v.dirty_elsewhere[1] = true;
    v.owners[2] = 2; // theirs, but I still serve connections in it
    v.tracked_here[2] = true;
    v.owners[3] = 2; // theirs
    v.owners[4] = 1; // mine, newly taken: adopt mid-stream connections
    v.adopt[4] = true;
    v.owners[5] = 2; // theirs: flags for other owners' state never leak into mine
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
    // Host 0 does not exist: nothing is ever "mine".
    auto none = bucket_entries(v, 0);
    for (auto x : none)
        CHECK((x & NLB_BKT_MINE) == 0);
}
