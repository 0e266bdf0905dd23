#include "release_dataplane.hpp"

#include <cstring>
#include <stdexcept>

#include "control_server.hpp"
#include "dataplane_loader.hpp"
#include "host_interface.hpp"
#include "link_info.hpp"

namespace nlb {

namespace {

// The mode and cluster IP the pinned cluster MAC was made of (cluster_mac()); an IGMP MAC
// keeps only the IP's last two octets, all its group is made of.
InterfacePlan plan_of(const nlb_config& cfg) {
    InterfacePlan plan;
    const std::uint8_t* m = cfg.cluster_mac;
    std::uint8_t ip[4] = {m[2], m[3], m[4], m[5]};
    if (m[0] == 0x03 && m[1] == 0xbf) {
        plan.mode = ClusterMode::multicast;
    } else if (m[0] == 0x01 && m[1] == 0x00 && m[2] == 0x5e) {
        plan.mode = ClusterMode::igmp;
        ip[0] = ip[1] = 0;
    } else {
        plan.mode = ClusterMode::unicast;
    }
    std::memcpy(&plan.cluster_ip, ip, 4);
    plan.host_priority = cfg.host_priority;
    return plan;
}

} // namespace

InterfacePlan pinned_interface_plan(const std::string& ifname, const nlb_config& cfg,
                                    std::span<const nlb_vip> vips, const std::string& socket_path) {
    InterfacePlan plan = plan_of(cfg);
    // A VLAN cluster's VIPs sit on the VLAN's interface, whatever its name; none left, they
    // went with it.
    plan.ifname = ifname;
    if (cfg.vlan)
        if (auto vlan = vlan_interface(ifname, cfg.vlan))
            plan.ifname = *vlan;
    plan.vips = VipLayout::of_slots(vips, cfg.vip_seed).vips;
    plan.saved_settings = socket_path + ".arp_announce";
    return plan;
}

std::optional<std::string> release_pinned_dataplane(const std::string& pin_dir,
                                                    const std::string& socket_path) {
    if (ControlServer::someone_listens(socket_path))
        throw std::runtime_error("release " + pin_dir + ": an agent answers on " + socket_path +
                                 " and owns the dataplane (nlbadm detach, or stop it)");
    return take_down_pinned_dataplane(pin_dir, socket_path);
}

std::optional<std::string> take_down_pinned_dataplane(const std::string& pin_dir,
                                                      const std::string& socket_path) {
    // Read in another network namespace, the link's index names another interface (each
    // namespace numbers its own): that one's VIPs and MAC filter are not this dataplane's,
    // and the pins are not this namespace's to remove.
    const Dataplane::PinnedLink link = Dataplane::pinned_link(pin_dir);
    if (link.kind == Dataplane::PinnedLink::elsewhere)
        throw std::runtime_error("release " + pin_dir + ": " + link.why_elsewhere() +
                                 ": nothing removed (run it in the namespace the agent ran in)");
    std::unique_ptr<Dataplane> dp;
    try {
        dp = Dataplane::adopt(pin_dir);
    } catch (const std::exception& e) {
        // Pins no program of this build can take over: the pins alone go, the link with them
        // (a link lives while a pin or a descriptor holds it). Its interface deleted, that is
        // all there was; else what the attach put on the interface stays, and is said.
        const bool gone = Dataplane::pinned_link_defunct(pin_dir);
        Dataplane::remove_pins(pin_dir);
        if (gone)
            return "a deleted interface";
        throw std::runtime_error("release " + pin_dir + ": " + e.what() +
                                 ": removed the pins (the XDP program went with them); the "
                                 "VIPs and arp_announce on its interface stay");
    }
    if (!dp)
        return std::nullopt;
    const std::string ifname = dp->interface();
    const InterfacePlan plan = pinned_interface_plan(ifname, dp->maps().state().config,
                                                     dp->maps().state().vips, socket_path);
    // As a detach: the stack stops taking the VIPs before the program stops filtering them.
    HostInterface::take_down(plan);
    dp->detach();
    return ifname;
}

} // namespace nlb
