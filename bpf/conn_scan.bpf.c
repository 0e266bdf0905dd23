// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* A settled host's connection scan, run in the kernel: a map iterator walks one connection
 * table and, per record, marks its (rule, bucket) live and counts it into the `nlb_conn_scan`
 * global, which the agent reads in place, at about half the CPU of copying every record out
 * (scripts/bench/conn-scan.sh). Only the keys of records that are over (an opening record never
 * established, an established one past its grace) come out, through the iterator's file,
 * for the agent to delete: deleting from the table being walked is what the iterator would
 * have to avoid, and these are few.
 * One program per table because the verifier sizes each one's key access against the map it
 * is attached to (the IPv4 key is 12 bytes, the IPv6 key 36). Loaded by the agent, attached
 * to the pinned tables, never pinned itself. Iterators over hash maps: 5.9 and later. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <nlb/limits.h>
#include <nlb/maps.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The iterator's context as the kernel lays it out (kernel/bpf/map_iter.c); declared here
 * because this tree builds without a vmlinux.h. */
struct seq_file;
struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};
struct bpf_iter__bpf_map_elem {
	struct bpf_iter_meta *meta;
	void *map;
	void *key;
	void *value;
};

struct nlb_conn_scan nlb_conn_scan;

static __always_inline int older(__u64 stamp_ns, __u64 age_ns)
{
	__u64 now = nlb_conn_scan.now_ns;

	return now > stamp_ns && now - stamp_ns > age_ns;
}

static __always_inline void count_live(const struct nlb_conn *c)
{
	__u32 rule = c->rule;
	__u32 bucket = c->bucket;

	nlb_conn_scan.live++;
	if (rule >= NLB_RULE_SLOTS)
		return;
	nlb_conn_scan.live_by_rule[rule]++;
	if (bucket < NLB_BUCKETS)
		nlb_conn_scan.live_buckets[rule][bucket / 64] |= 1ULL << (bucket % 64);
}

/* Hands out a record's key for the agent to delete and counts it in `counter`. A key that no
 * longer fits the iterator's buffer is thrown away with everything this run wrote, and the
 * kernel runs the program on the same record again in its next read: it is counted only
 * once it is out. The key goes out from the stack: older kernels take a map iterator's
 * read-only key buffer as a helper's memory argument only in some versions. */
static __always_inline void emit_key(struct bpf_iter__bpf_map_elem *ctx, __u32 key_size,
				     __u64 *counter)
{
	struct nlb_conn_key6 copy; /* the larger key */

	if (key_size == sizeof(struct nlb_conn_key4))
		__builtin_memcpy(&copy, ctx->key, sizeof(struct nlb_conn_key4));
	else
		__builtin_memcpy(&copy, ctx->key, sizeof(struct nlb_conn_key6));
	if (bpf_seq_write(ctx->meta->seq, &copy, key_size) == 0)
		(*counter)++;
}

/* Opening records: connections this host accepted a SYN of. Past NLB_OPENING_MAX_AGE_NS one
 * never will be established, but only the socket program says so (age_opening).
 * Established records: a closed one keeps no bucket live (nothing is left to serve; a
 * drainstop ends when the last socket closes) and only steers stray packets through its
 * grace period, after which it goes. */
static __always_inline int scan_record(struct bpf_iter__bpf_map_elem *ctx, int established,
				       __u32 key_size)
{
	const struct nlb_conn *c = ctx->value;

	if (!ctx->key || !c)
		return 0; /* the end of the walk */
	if (!established) {
		if (nlb_conn_scan.age_opening && older(c->opened_ns, NLB_OPENING_MAX_AGE_NS)) {
			emit_key(ctx, key_size, &nlb_conn_scan.opening_expired);
			return 0;
		}
		nlb_conn_scan.opening++;
	} else if (c->closed_ns) {
		if (older(c->closed_ns, NLB_CONN_CLOSE_GRACE_NS))
			emit_key(ctx, key_size, &nlb_conn_scan.expired);
		else
			nlb_conn_scan.closing++;
		return 0;
	} else {
		nlb_conn_scan.established++;
	}
	count_live(c);
	return 0;
}

SEC("iter/bpf_map_elem")
int nlb_scan_opening4(struct bpf_iter__bpf_map_elem *ctx)
{
	return scan_record(ctx, 0, sizeof(struct nlb_conn_key4));
}

SEC("iter/bpf_map_elem")
int nlb_scan_established4(struct bpf_iter__bpf_map_elem *ctx)
{
	return scan_record(ctx, 1, sizeof(struct nlb_conn_key4));
}

SEC("iter/bpf_map_elem")
int nlb_scan_opening6(struct bpf_iter__bpf_map_elem *ctx)
{
	return scan_record(ctx, 0, sizeof(struct nlb_conn_key6));
}

SEC("iter/bpf_map_elem")
int nlb_scan_established6(struct bpf_iter__bpf_map_elem *ctx)
{
	return scan_record(ctx, 1, sizeof(struct nlb_conn_key6));
}
