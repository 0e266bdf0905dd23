/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The dataplane's watchdog: the timer that clears `alive` when the agent stops refreshing it,
 * and the program the agent refreshes it with (struct nlb_config). Included by nlb.bpf.c. */
#ifndef NLB_WATCHDOG_H
#define NLB_WATCHDOG_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <nlb/maps.h>

#include "maps.bpf.h"

/* The watchdog fired: the agent missed its refresh. */
static int nlb_watchdog_expired(void *map, __u32 *key, struct nlb_watchdog *w)
{
	nlb_state.config.alive = 0;
	return 0;
}

/* Run by the agent with BPF_PROG_TEST_RUN a few times a watchdog timeout: the dataplane accepts
 * until the deadline the frame's first 8 bytes give (CLOCK_MONOTONIC ns), which the agent
 * counts from when its engine last took stock, not from this run: a run that comes after the
 * deadline (the agent was held up between the two longer than the watchdog allows, and the
 * cluster may have taken its buckets meanwhile) stops the dataplane at once and returns
 * XDP_DROP. Returns XDP_PASS when armed, XDP_ABORTED when the timer cannot be armed (the
 * dataplane then stays or goes dead). A deadline further than the configured timeout away is
 * cut to it. */
SEC("xdp")
int nlb_watchdog_arm(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 *deadline = data;
	__u32 zero = 0;
	struct nlb_config *cfg = &nlb_state.config;
	struct nlb_watchdog *w = bpf_map_lookup_elem(&nlb_watchdog, &zero);
	__u64 now, left;
	int err;

	if ((void *)(deadline + 1) > data_end || !w || !cfg->watchdog_timeout_ns)
		return XDP_ABORTED;
	now = bpf_ktime_get_ns();
	if (*deadline <= now) {
		cfg->alive = 0;
		return XDP_DROP;
	}
	left = *deadline - now;
	if (left > cfg->watchdog_timeout_ns)
		left = cfg->watchdog_timeout_ns;
	err = bpf_timer_init(&w->timer, &nlb_watchdog, 1 /* CLOCK_MONOTONIC */);
	if (err && err != -16 /* -EBUSY: initialised by an earlier arm */)
		return XDP_ABORTED;
	if (bpf_timer_set_callback(&w->timer, nlb_watchdog_expired) ||
	    bpf_timer_start(&w->timer, left, 0))
		return XDP_ABORTED;
	cfg->watchdog_deadline_ns = now + left;
	cfg->alive = 1;
	return XDP_PASS;
}

#endif
