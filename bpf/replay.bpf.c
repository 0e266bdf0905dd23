// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Benchmark harness: BPF_PROG_TEST_RUN with `repeat` hands the same buffer to every run, so a
 * program that rewrites the frame (an ARP request turned into a reply) would see its own
 * output from the second run on. xdp_replay first copies the template frame back over the
 * buffer, then tail-calls the program under test (slot 0 of replay_target). Timing it with
 * the program under test and with the bare program gives the program's cost with the copy
 * subtracted out. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define REPLAY_MAX 128

__u8 template_frame[REPLAY_MAX];

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} replay_target SEC(".maps");

SEC("xdp")
int xdp_replay(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + REPLAY_MAX > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, template_frame, REPLAY_MAX);
	bpf_tail_call(ctx, &replay_target, 0);
	return XDP_ABORTED;
}
