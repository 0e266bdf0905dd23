/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The host's TCP stack tells the dataplane which connections it really has. XDP sees only
 * the client's side of a connection, so a SYN or a first ACK proves nothing (anyone can send
 * one); a socket that reached ESTABLISHED does: its client answered this host's SYN-ACK. The
 * socket program, attached to the root cgroup, records such a connection in nlb_est* (never
 * evicted) and asks to hear of the socket's state changes, so that the record ends when the
 * socket closes (kept a grace period for the last ACKs). nlb_seed does the same for a socket
 * the agent finds in the socket table (connections older than the program). Both compute
 * the rule and bucket exactly as the XDP program does for the connection's packets.
 *
 * The program runs for every socket of the machine, in every network namespace: it records
 * only those of the namespace the agent named (nlb_config.netns_cookie), to one of this
 * cluster's VIPs, on a port a rule covers. Kernel floor: 5.15 (bpf_get_netns_cookie in
 * sock_ops). */
#ifndef NLB_SOCKOPS_H
#define NLB_SOCKOPS_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include <nlb/flow.h>
#include <nlb/maps.h>

#include "conntrack.h"
#include "maps.bpf.h"
#include "neigh.h"
#include "verdict.h"

static __always_inline void nlb_conn_proven(struct nlb_conn *c)
{
	if (c)
		c->flags &= (__u8)~NLB_CONN_SYN_SEQ;
}

/* Records `t` as established here. Returns 1 when recorded, 0 when the tuple is none of
 * this cluster's (nothing to record), -1 when the table is full. */
static __always_inline int nlb_establish(const struct nlb_tuple *t)
{
	const struct nlb_config *cfg = &nlb_state.config;
	const struct nlb_vip *vip = nlb_find_vip(cfg, t->family, t->daddr);
	const struct nlb_rule *rule;
	struct nlb_stats *st;
	struct nlb_conn entry = {};
	__u32 rule_idx;
	int err;

	if (!vip)
		return 0;
	rule_idx = nlb_port_rule(vip, NLB_PROTO_TCP, bpf_ntohs(t->dport));
	if (rule_idx >= NLB_RULE_SLOTS)
		return 0;
	rule = &nlb_state.rules[rule_idx];
	if (rule->mode == NLB_MODE_DISABLED)
		return 0; /* the dataplane accepts none of its packets */
	st = nlb_stats_slot(rule_idx);
	if (!st)
		return 0;
	entry.opened_ns = bpf_ktime_get_coarse_ns();
	entry.bucket = nlb_flow_bucket(t->family, t->saddr, t->sport, rule->affinity,
				       nlb_config_flow_seed(cfg));
	entry.rule = (__u8)rule_idx;
	/* The opening record (if the LRU still has it) is, when the established table is
	 * full, the connection's only trace: kept, and serving from it beats serving from
	 * nothing. The stack proved the connection, so the record stops holding it to its
	 * SYN's first window (nlb_tcp_tracked), which would cut it off past 128 KB. */
	if (t->family == NLB_FAMILY_V4) {
		struct nlb_conn_key4 k4 = {
			.saddr = t->saddr[0], .daddr = t->daddr[0], .sport = t->sport, .dport = t->dport};

		err = nlb_conn_insert(NLB_FAMILY_V4, &nlb_est4, &k4, &entry);
		if (!err)
			bpf_map_delete_elem(&nlb_conns4, &k4);
		else
			nlb_conn_proven(bpf_map_lookup_elem(&nlb_conns4, &k4));
	} else {
		struct nlb_conn_key6 k6 = {.sport = t->sport, .dport = t->dport};

		__builtin_memcpy(k6.saddr, t->saddr, 16);
		__builtin_memcpy(k6.daddr, t->daddr, 16);
		err = nlb_conn_insert(NLB_FAMILY_V6, &nlb_est6, &k6, &entry);
		if (!err)
			bpf_map_delete_elem(&nlb_conns6, &k6);
		else
			nlb_conn_proven(bpf_map_lookup_elem(&nlb_conns6, &k6));
	}
	if (err) {
		st->established_full++;
		return -1;
	}
	st->established++;
	return 1;
}

/* The socket of `t` closed: its record lives on for the grace period (the last ACKs). */
static __always_inline void nlb_socket_closed(const struct nlb_tuple *t)
{
	struct nlb_conn *c;

	if (t->family == NLB_FAMILY_V4) {
		struct nlb_conn_key4 k4 = {
			.saddr = t->saddr[0], .daddr = t->daddr[0], .sport = t->sport, .dport = t->dport};

		c = bpf_map_lookup_elem(&nlb_est4, &k4);
	} else {
		struct nlb_conn_key6 k6 = {.sport = t->sport, .dport = t->dport};

		__builtin_memcpy(k6.saddr, t->saddr, 16);
		__builtin_memcpy(k6.daddr, t->daddr, 16);
		c = bpf_map_lookup_elem(&nlb_est6, &k6);
	}
	if (c && !c->closed_ns)
		c->closed_ns = bpf_ktime_get_coarse_ns();
}

#define NLB_CTX(field) (*(volatile __u32 *)&(field))

#define NLB_AF_INET 2
#define NLB_AF_INET6 10

SEC("sockops")
int nlb_sockops(struct bpf_sock_ops *ctx)
{
	struct nlb_tuple t = {};
	__u32 op = ctx->op;
	__u32 family;

	if (op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
	    !(op == BPF_SOCK_OPS_STATE_CB && ctx->args[1] == BPF_TCP_CLOSE))
		return 1;
	if (!nlb_state.config.netns_cookie ||
	    bpf_get_netns_cookie(ctx) != nlb_state.config.netns_cookie)
		return 1;
	/* Each context field read at its constant offset: the verifier rejects a load through
	 * a pointer into the context that the compiler computed once and reused. */
	family = NLB_CTX(ctx->family);
	if (family == NLB_AF_INET) {
		t.family = NLB_FAMILY_V4;
		t.saddr[0] = NLB_CTX(ctx->remote_ip4);
		t.daddr[0] = NLB_CTX(ctx->local_ip4);
	} else if (family == NLB_AF_INET6) {
		t.family = NLB_FAMILY_V6;
		t.saddr[0] = NLB_CTX(ctx->remote_ip6[0]);
		t.saddr[1] = NLB_CTX(ctx->remote_ip6[1]);
		t.saddr[2] = NLB_CTX(ctx->remote_ip6[2]);
		t.saddr[3] = NLB_CTX(ctx->remote_ip6[3]);
		t.daddr[0] = NLB_CTX(ctx->local_ip6[0]);
		t.daddr[1] = NLB_CTX(ctx->local_ip6[1]);
		t.daddr[2] = NLB_CTX(ctx->local_ip6[2]);
		t.daddr[3] = NLB_CTX(ctx->local_ip6[3]);
		if (t.daddr[0] == 0 && t.daddr[1] == 0 && t.daddr[2] == bpf_htonl(0xffff)) {
			/* an IPv4 client of a dual-stack socket: its packets are IPv4 */
			t.family = NLB_FAMILY_V4;
			t.saddr[0] = t.saddr[3];
			t.daddr[0] = t.daddr[3];
			t.saddr[1] = t.saddr[2] = t.saddr[3] = 0;
			t.daddr[1] = t.daddr[2] = t.daddr[3] = 0;
		}
	} else {
		return 1;
	}
	/* remote_port: network byte order in the upper half (little endian) or lower half;
	 * local_port: host byte order. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	t.sport = (__u16)(NLB_CTX(ctx->remote_port) >> 16);
#else
	t.sport = (__u16)NLB_CTX(ctx->remote_port);
#endif
	t.dport = bpf_htons((__u16)NLB_CTX(ctx->local_port));
	if (op == BPF_SOCK_OPS_STATE_CB) {
		nlb_socket_closed(&t);
		return 1;
	}
	/* The close is what ends the record: ask for state changes of this socket only. */
	if (nlb_establish(&t) == 1)
		bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags |
						   BPF_SOCK_OPS_STATE_CB_FLAG);
	return 1;
}

/* Run by the agent with BPF_PROG_TEST_RUN, one struct nlb_tuple as the packet: records a
 * connection its stack already had when the socket program started (the socket table at
 * attach). XDP_PASS when recorded or none of this cluster's, XDP_DROP when the table is full,
 * XDP_ABORTED for a malformed request. */
SEC("xdp")
int nlb_seed(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct nlb_tuple t;

	if (data + sizeof(t) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(&t, data, sizeof(t));
	if (t.family != NLB_FAMILY_V4 && t.family != NLB_FAMILY_V6)
		return XDP_ABORTED;
	return nlb_establish(&t) >= 0 ? XDP_PASS : XDP_DROP;
}

#endif
