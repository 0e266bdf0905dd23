// The few rtnetlink requests the agent makes, each sent and acknowledged synchronously.
#pragma once

#include <cstdint>
#include <string>

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
// The IPv4 multicast group (network byte order) as a host-scope /32 address of the interface
// with the autojoin flag (what `ip addr add GROUP/32 dev IF scope host autojoin label LABEL`
// does): the kernel joins the group on a socket of its own for as long as the address exists,
// so the membership (the NIC's multicast filter, the IGMP reports) outlives the process that
// added it. Adding finds an existing autojoin address and keeps it (0); an address without the
// flag (added by hand) is replaced, since it joins nothing. Host scope: never a source address.
// The label (at most 15 bytes) matters because host scope puts the address first on the
// interface: under the interface's own name, SIOCGIFADDR (ifconfig, older tools) would take
// it for the interface's address.
// `created` (optional): whether the address was missing and is now added.
int add_group_address(int ifindex, std::uint32_t group, const std::string& label,
                      bool* created = nullptr);
int delete_group_address(int ifindex, std::uint32_t group);
// How many TC filters hang at `parent` of the interface (the clsact qdisc's ingress or egress
// hook: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS); none where no such
// qdisc is), or a negative errno.
int count_filters(int ifindex, std::uint32_t parent);

} // namespace nlb::netlink
