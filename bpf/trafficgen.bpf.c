// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Traffic generator for tests and benchmarks. Run with BPF_PROG_TEST_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES: every iteration rewrites the IPv4 source address and source
 * port of the template frame (so the frames spread over many flows and buckets), fixes the
 * IPv4 header checksum, and redirects the frame out of `ifindex`. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 ifindex;
const volatile __u32 src_base;  /* host byte order: first source address */
const volatile __u32 src_count; /* sources cycle through src_base .. src_base + src_count - 1 */

__u64 sent;

SEC("xdp")
int xdp_trafficgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u64 n = __sync_fetch_and_add(&sent, 1);
	__u32 csum = 0;
	__u16 *w = (__u16 *)ip;

	if ((void *)(udp + 1) > data_end || ip->ihl != 5)
		return XDP_DROP;
	ip->saddr = bpf_htonl(src_base + (__u32)(n % (src_count ? src_count : 1)));
	udp->source = bpf_htons(1024 + (__u16)((n * 7919) % 60000));
	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		csum += w[i];
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	ip->check = (__u16)~csum;
	return bpf_redirect(ifindex, 0);
}
