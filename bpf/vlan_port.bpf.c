// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* A VLAN interface for kernels without 802.1Q support (CONFIG_VLAN_8021Q unset, as on the
 * machine the end-to-end tests run on), for tests only: a veth pair stands for eth0.VID.
 * vlan_from_trunk, on the trunk's TC ingress, sends the frames of VLAN `vid` untagged out of
 * `port`, the veth end whose peer stands for the VLAN interface; vlan_to_trunk, on `port`'s
 * TC ingress, tags what the stand-in sent and sends it out of the trunk. TC ingress runs
 * after the trunk's XDP program, and by then the kernel has moved the tag out of the frame
 * into the socket buffer (vlan_tci), which is where these programs read and write it. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 vid;
const volatile __u32 trunk_ifindex;
const volatile __u32 port_ifindex;

SEC("tc")
int vlan_from_trunk(struct __sk_buff *skb)
{
	/* another VLAN's frame, or an untagged one: the next filter's, or the trunk's stack's */
	if (!skb->vlan_present || (skb->vlan_tci & 0x0fff) != vid)
		return TC_ACT_UNSPEC;
	if (bpf_skb_vlan_pop(skb))
		return TC_ACT_SHOT;
	return bpf_redirect(port_ifindex, 0);
}

SEC("tc")
int vlan_to_trunk(struct __sk_buff *skb)
{
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), vid))
		return TC_ACT_SHOT;
	return bpf_redirect(trunk_ifindex, 0);
}
