// nlb-vlan-port TRUNK VID PORT: makes PORT's veth peer stand for the VLAN VID interface on
// TRUNK (bpf/vlan_port.bpf.c), where the kernel has no 802.1Q support to create one. Run in
// the namespace of the three interfaces; the TC filters stay after it exits and go with the
// interfaces. One run per VLAN; each VLAN's trunk filter has its own priority (the VID).
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "vlan_port.skel.h"

namespace {

[[noreturn]] void die(const std::string& what, int err) {
    std::fprintf(stderr, "nlb-vlan-port: %s: %s\n", what.c_str(),
                 std::strerror(err < 0 ? -err : err));
    std::exit(1);
}

void attach_ingress(int ifindex, int prog_fd, __u32 priority, const std::string& what) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        die(what + ": clsact", err);
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = 1,
                .priority = priority);
    if ((err = bpf_tc_attach(&hook, &opts)))
        die(what + ": attach", err);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fputs("usage: nlb-vlan-port TRUNK VID PORT\n", stderr);
        return 2;
    }
    const std::string trunk = argv[1], port = argv[3];
    const long vid = std::strtol(argv[2], nullptr, 10);
    const unsigned trunk_ifindex = if_nametoindex(trunk.c_str());
    const unsigned port_ifindex = if_nametoindex(port.c_str());
    if (vid < 1 || vid > 4094)
        die(std::string("VID ") + argv[2], EINVAL);
    if (!trunk_ifindex)
        die(trunk, ENODEV);
    if (!port_ifindex)
        die(port, ENODEV);
    vlan_port_bpf* skel = vlan_port_bpf__open();
    if (!skel)
        die("open", errno);
    skel->rodata->vid = static_cast<__u32>(vid);
    skel->rodata->trunk_ifindex = trunk_ifindex;
    skel->rodata->port_ifindex = port_ifindex;
    if (int err = vlan_port_bpf__load(skel))
        die("load", err);
    attach_ingress(static_cast<int>(trunk_ifindex), bpf_program__fd(skel->progs.vlan_from_trunk),
                   static_cast<__u32>(vid), trunk);
    attach_ingress(static_cast<int>(port_ifindex), bpf_program__fd(skel->progs.vlan_to_trunk), 1,
                   port);
    vlan_port_bpf__destroy(skel); // the filters hold the programs
    return 0;
}
