// The few rtnetlink requests the agent makes, each sent and acknowledged synchronously.
#pragma once

#include <cstdint>

#include "cluster_mac.hpp"
#include "dataplane_tables.hpp"

namespace nlb::netlink {

// Each returns 0 or a negative errno. `exclusive` additions fail with -EEXIST when present.
int add_address(int ifindex, const IpAddress& addr);
int delete_address(int ifindex, const IpAddress& addr);
// A permanent entry in the device's own unicast filter (what `bridge fdb add MAC dev IF self
// permanent` does); a device without a unicast filter turns promiscuous while it has one.
int add_unicast_filter(int ifindex, const MacAddress& mac);
int delete_unicast_filter(int ifindex, const MacAddress& mac);

} // namespace nlb::netlink
