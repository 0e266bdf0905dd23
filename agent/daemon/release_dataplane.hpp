// nlb-agent --release-dataplane: takes down a dataplane that an agent left pinned (killed, or
// stopped with --keep-dataplane) when no agent will come back for it, as the package's removal
// does. Without it nothing would: the XDP program, the VIPs on the interface and every pinned
// table stay until reboot, and the program, its watchdog run out, drops every load-balanced
// frame the host gets.
#pragma once

#include <optional>
#include <span>
#include <string>

#include <nlb/maps.h>

#include "host_interface.hpp"

namespace nlb {

// Takes down what `pin_dir` holds, as a detach would: the VIPs leave the interface, the
// cluster MAC its filter, arp_announce goes back to what `socket_path`.arp_announce kept, the
// programs are detached and the pins removed. Everything is read from the pins, not from a
// configuration (which may have changed, or be gone, since). Returns the interface it was
// attached to ("a deleted interface": the pins alone went), or nothing when nothing is
// pinned. Throws std::runtime_error naming what failed (pins this build cannot take over are
// removed all the same, the program with them), or when an agent answers on `socket_path`:
// that one owns the dataplane (its `nlbadm detach` is the way), and the cluster would see a
// member that serves nothing.
std::optional<std::string> release_pinned_dataplane(const std::string& pin_dir,
                                                    const std::string& socket_path);
// The same without asking the socket: for an agent that owns `socket_path` itself and finds
// pins it must not adopt (another interface's than its configuration names).
std::optional<std::string> take_down_pinned_dataplane(const std::string& pin_dir,
                                                      const std::string& socket_path);

// What an agent's attach put on the host for the dataplane whose pinned state is `cfg` and
// `vips`, attached to `ifname` (read from the pins: cluster MAC, VLAN, VIP slots), with the
// arp_announce kept beside `socket_path`.
InterfacePlan pinned_interface_plan(const std::string& ifname, const nlb_config& cfg,
                                    std::span<const nlb_vip> vips, const std::string& socket_path);

} // namespace nlb
