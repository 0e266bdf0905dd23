// The cluster's MAC addresses (DESIGN.md §4).
#include <arpa/inet.h>

#include <catch2/catch.hpp>

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
