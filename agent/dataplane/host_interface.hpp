// What attaching changes on the host besides the XDP program (DESIGN.md §4): the cluster MAC
// in the NIC's filter (unicast: the unicast filter, promiscuous where the driver has none;
// multicast: the multicast filter; igmp: the group joined, by the kernel), the VIPs on the
// interface (so the stack accepts their traffic; /32 and /128, so outgoing connections keep
// the dedicated IP as source), arp_announce=2 (ARP requests never claim a VIP), and the
// announcements that tell the segment where the VIPs are. undo() takes all of it away again.
// Nothing here belongs to the agent process: without undo() it all stays for the pinned
// dataplane that outlives the agent (kill -9, --keep-dataplane), and the next agent's
// HostInterface on the interface adopts it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster_mac.hpp"
#include "dataplane_tables.hpp"

namespace nlb {

struct InterfacePlan {
    std::string ifname;
    ClusterMode mode = ClusterMode::unicast;
    std::uint32_t cluster_ip = 0; // network byte order
    std::vector<IpAddress> vips;  // cluster IP included
    std::uint8_t host_priority = 1;
    // Where the interface's arp_announce from before the first attach is kept while a
    // dataplane is: a restart that keeps the dataplane finds 2 (this agent's) there, and the
    // detach after it must put back the operator's. Empty: kept in memory only.
    std::string saved_settings;
};

// The interface's own MAC (what accepted frames get as destination). Throws
// std::runtime_error naming the interface.
MacAddress interface_mac(const std::string& ifname);

class HostInterface {
  public:
    // Throws std::runtime_error "attach eth0: <step>: <reason>"; on failure the steps already
    // done are undone.
    explicit HostInterface(InterfacePlan plan);
    ~HostInterface() = default; // undoes nothing: see undo()
    HostInterface(const HostInterface&) = delete;
    HostInterface& operator=(const HostInterface&) = delete;

    // Gratuitous ARP for each IPv4 VIP, unsolicited neighbour advertisement for each IPv6 VIP,
    // both advertising the cluster MAC from the masked source MAC.
    void announce() const { announce(plan_.vips); }
    void announce(const std::vector<IpAddress>& vips) const;
    // A live VIP change (docs/staged-config.md), in two steps around the dataplane's tables:
    // first the VIPs `next` lacks leave the interface (the stack drops what the dataplane
    // still accepts for them), then, once the tables know them, the new ones are added.
    // Both throw std::runtime_error naming the VIP; add_vips returns the VIPs it added.
    void remove_vips_except(const std::vector<IpAddress>& next);
    std::vector<IpAddress> add_vips(const std::vector<IpAddress>& next);
    // The VIPs of `from` that `keep` lacks, off `ifname` (also an adopted dataplane's, which
    // an earlier agent added). Returns those it removed; throws naming the VIP.
    static std::vector<IpAddress> remove_vips(const std::string& ifname,
                                              const std::vector<IpAddress>& from,
                                              const std::vector<IpAddress>& keep);
    // What someone took off the interface while the dataplane serves on it, put back: the
    // VIPs (ifdown flushes every address, a network manager reconfiguring drops those it does
    // not know, and an interface set down loses its IPv6 ones), and the cluster MAC's unicast
    // filter entry or, in igmp mode, the group's address. Without them the dataplane accepts
    // this host's buckets and the stack drops every packet. Returns what it put back ("VIP
    // 10.0.0.100"); throws std::runtime_error naming what it could not.
    std::vector<std::string> restore();
    // Removes VIPs and the MAC filter entry or the group, restores arp_announce.
    void undo();
    // What undo() removes, for a plan an agent that is gone had applied (a dataplane left
    // pinned): arp_announce goes back to the value kept in plan.saved_settings, and stays
    // as it is where nothing was kept for this interface.
    static void take_down(const InterfacePlan& plan);
    // The cluster MAC of plan.mode and plan.cluster_ip out of plan.ifname's filter (the
    // group left, in igmp mode): an adopted dataplane's, which an earlier agent added for a
    // cluster IP or mode the configuration has changed since.
    static void remove_cluster_mac(const InterfacePlan& plan);

    const InterfacePlan& plan() const { return plan_; }

  private:
    void apply();
    // The plan's VIPs onto the interface; those that were missing. Throws after `what`.
    std::vector<IpAddress> add_missing_vips(const std::string& what);
    static void remove(const InterfacePlan& plan, int ifindex, const std::string& arp_announce);
    static void remove_cluster_mac(const InterfacePlan& plan, int ifindex);
    std::string group_name() const; // "239.255.c.d"

    InterfacePlan plan_;
    int ifindex_ = 0;
    std::string saved_arp_announce_;
};

} // namespace nlb
