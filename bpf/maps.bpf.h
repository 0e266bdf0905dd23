/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The dataplane's maps. Layout in include/nlb/maps.h; the agent writes nlb_state and
 * nlb_ports, the programs write nlb_conns4/6, nlb_est4/6, nlb_frags and nlb_stats. In steady
 * state the per-packet path reads only nlb_state (a global), nlb_stats and, where one VIP has
 * several port rules, nlb_ports: arrays all. */
#ifndef NLB_MAPS_BPF_H
#define NLB_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <nlb/conn_filter.h>
#include <nlb/maps.h>

/* Config, VIP slots and bucket maps (struct nlb_state): the .bss map. */
struct nlb_state nlb_state;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NLB_PORT_TABLE_ENTRIES);
	__type(key, __u32);
	__type(value, struct nlb_port_chunk);
} nlb_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NLB_CONN_TABLE_ENTRIES);
	__type(key, struct nlb_conn_key4);
	__type(value, struct nlb_conn);
} nlb_conns4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NLB_CONN_TABLE_ENTRIES);
	__type(key, struct nlb_conn_key6);
	__type(value, struct nlb_conn);
} nlb_conns6 SEC(".maps");

/* Established connections: a plain hash, so nothing but their end removes them. Sized by the
 * agent before load (host.established_connections). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NLB_EST_TABLE_ENTRIES);
	__type(key, struct nlb_conn_key4);
	__type(value, struct nlb_conn);
} nlb_est4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NLB_EST_TABLE_ENTRIES);
	__type(key, struct nlb_conn_key6);
	__type(value, struct nlb_conn);
} nlb_est6 SEC(".maps");

/* Which keys the four tables may hold (include/nlb/conn_filter.h): entry 0 its header, then
 * two halves of 64-byte blocks per family, sized by the agent before load (the default fits
 * the default tables). Not pinned: each agent's program starts with its own, valid at once
 * over tables the same load created, else invalid (read as "may hold anything") until the
 * agent has rebuilt it from the tables. Mapped by the agent, which writes it in place. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 + 4 * 16384);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct nlb_filter_block);
} nlb_conn_filter SEC(".maps");

/* Not pinned: a restarted agent's program starts it empty, and the fragments of datagrams
 * in flight then go to every host (bpf/fragments.h), which is harmless. An array, not a hash:
 * a lookup is the program's own hash and one indexed load (docs/dataplane.md). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NLB_FRAG_SLOTS);
	__type(key, __u32);
	__type(value, struct nlb_frag);
} nlb_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NLB_STATS_SLOTS);
	__type(key, __u32);
	__type(value, struct nlb_stats);
} nlb_stats SEC(".maps");

/* Checks a rule slot against NLB_RULE_SLOTS in a way 6.1's verifier follows: as a 64-bit
 * value clang cannot narrow (compared in 32 bits, jmp32 under -mcpu=v3, the bound reaches
 * only the register's lower half there), and handing back a new value, so that clang cannot
 * reload a copy it spilled before the check, whose bound that verifier does not learn. The
 * rule's address from either is refused. */
static __always_inline int nlb_rule_slot_ok(__u64 *slot)
{
	__u64 s = *slot;

	barrier_var(s);
	if (s >= NLB_RULE_SLOTS)
		return 0;
	barrier_var(s);
	*slot = s;
	return 1;
}

/* The watchdog's timer (see struct nlb_config). */
struct nlb_watchdog {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nlb_watchdog);
} nlb_watchdog SEC(".maps");

#endif
