// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The cheapest programs XDP can run. xdp_bare_pass is the BPF_PROG_TEST_RUN floor of the
 * benchmarks and the pass-through program test topologies put on the bridge side of a veth
 * (on this kernel a veth drops frames its peer sends with XDP_TX unless it runs XDP itself);
 * xdp_bare_drop is the veth-path floor. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_bare_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int xdp_bare_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}
