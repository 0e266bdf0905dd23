/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Keys and values of every BPF map the dataplane reads and the agent writes. Compiled by clang
 * for BPF and by g++ for the agent: fixed-width types only, explicit padding. */
#ifndef NLB_MAPS_H
#define NLB_MAPS_H

#include <linux/types.h>

#include "limits.h"

/* nlb_state.config: per-host settings the agent rewrites at run time. */
struct nlb_config {
	/* Watchdog: the agent runs nlb_watchdog_arm at least four times per timeout with a
	 * deadline, its engine's last look plus watchdog_timeout_ns; a BPF timer is set to fire
	 * then (at most a timeout from now) and `alive` is set, or, when the deadline has passed,
	 * `alive` is cleared. If the timer fires, `alive` drops to 0 and no load-balanced traffic
	 * is accepted until the next arm. The per-packet path reads one word instead of a clock. */
	__u64 watchdog_timeout_ns;
	/* CLOCK_MONOTONIC of the pending expiry (written by arm); also the coarse clock that ages
	 * the fragment records (bpf/fragments.h) */
	__u64 watchdog_deadline_ns;
	__u32 alive;
	__u32 vip_seed; /* seed of the VIP slot hash, chosen so that VIPs never share a slot */
	__u8 own_mac[6];     /* destination written into accepted frames */
	__u8 cluster_mac[6]; /* ARP / ND answers advertise this one */
	__u8 arp_src_mac[6]; /* Ethernet source of those answers: 02-h-a-b-c-d, never learnt */
	__u8 host_priority;
	__u8 flags; /* NLB_CFG_* */
	/* Seed of the bucket hash (nlb_flow_bucket), one per cluster; 0 reads as NLB_FLOW_SEED
	 * (nlb_config_flow_seed). */
	__u32 flow_seed;
	/* The host's network namespace (SO_NETNS_COOKIE): the socket program runs for every
	 * socket of the machine and records only this namespace's. Set exactly while the
	 * socket program is attached (0 otherwise), which the XDP program reads as "established
	 * connections leave the opening table" (nlb_tcp_tracked). */
	__u64 netns_cookie;
	/* The cluster's VLAN id (cluster.vlan), 0 for an untagged cluster: only frames of this
	 * VLAN are the cluster's; every other frame passes untouched (docs/dataplane.md). */
	__u16 vlan;
	__u8 pad[6];
};

/* Answer ARP requests and neighbour solicitations for VIPs. Off, this host answers none of
 * them and its kernel still sees none (they are dropped, counted neigh_dropped): another
 * host's dataplane (or a static entry) has to answer, since the kernel would answer with
 * the host's own MAC and draw every client of the VIP to this one host. */
#define NLB_CFG_ANSWER_NEIGH 0x01
/* Remote control is on: UDP to the cluster IP, port NLB_REMOTE_CONTROL_PORT, goes to the
 * stack of every host, whatever the port rules say. Off: it is dropped here (counted), so
 * the host's stack never sees it. */
#define NLB_CFG_REMOTE_CONTROL 0x02
/* The agent's note, never read by the programs: the interface's clsact qdisc was made by an
 * nlb attach for the ND egress filter, so the detach that removes the filter removes the
 * qdisc too if nothing else hangs on it. Kept here so that it outlives a restarted agent. */
#define NLB_CFG_QDISC_OURS 0x04

/* nlbadm --cluster talks to every host's agent on this UDP port of the cluster IP. */
#define NLB_REMOTE_CONTROL_PORT 2504
/* The agents' second path (docs/convergence.md, "Contact"): signed heartbeats by unicast
 * UDP between dedicated IPs. Not a VIP port: the dataplane passes it like any dedicated-IP
 * traffic. */
#define NLB_CONTACT_PORT 2505

enum nlb_family {
	NLB_FAMILY_NONE = 0,
	NLB_FAMILY_V4 = 4,
	NLB_FAMILY_V6 = 6,
};

enum nlb_proto_index {
	NLB_PROTO_TCP = 0,
	NLB_PROTO_UDP = 1,
};

/* nlb_state.vips[slot]: slot = nlb_vip_slot(address, seed). */
struct nlb_vip {
	__u32 addr[4]; /* network byte order; IPv4 in addr[0], the rest zero */
	__u8 family;   /* enum nlb_family; NONE marks an empty slot */
	__u8 index;    /* 0..NLB_MAX_VIPS-1: selects this VIP's port table */
	/* Rule of every port of each protocol when one rule covers them all (the usual case),
	 * which spares the port-table lookup; NLB_PORT_RULE_VARIES otherwise. */
	__u8 port_rule[2];
	__u8 pad[4];
};

#define NLB_PORT_RULE_VARIES 0xff

/* nlb_ports[nlb_port_chunk(vip index, protocol, port)]: rule index per port; the entry for
 * an uncovered port is NLB_RULE_DEFAULT. VIP-specific rules take precedence over "all" rules
 * when the agent fills the table, so the dataplane does one lookup whatever the overlap. */
struct nlb_port_chunk {
	__u8 rule[NLB_PORT_CHUNK];
};

enum nlb_rule_mode {
	NLB_MODE_MULTIPLE = 0,
	NLB_MODE_SINGLE = 1,
	NLB_MODE_DISABLED = 2,
};

enum nlb_affinity {
	NLB_AFFINITY_NONE = 0,    /* source address + source port */
	NLB_AFFINITY_SINGLE = 1,  /* source address */
	NLB_AFFINITY_NETWORK = 2, /* source IPv4 /24, IPv6 /64 */
};

/* Bucket entry: the owner's priority in the low byte, this host's view in the flags. The
 * flags let the common paths decide from this one array read: only a bucket in transition
 * sends a packet to the connection table. */
#define NLB_BKT_OWNER_MASK 0x00ff
/* This host owns the bucket. */
#define NLB_BKT_MINE 0x0100
/* Owned here, but another host still serves tracked connections in it: mid-stream packets
 * this host does not track are theirs. */
#define NLB_BKT_DIRTY_OTHER 0x0200
/* Not owned here, but this host may track connections in it: look them up. */
#define NLB_BKT_TRACKED_HERE 0x0400
/* Owned here and newly taken (or just attached): track mid-stream connections that were
 * opened before this host saw their SYN, so they survive the bucket's next move. */
#define NLB_BKT_ADOPT 0x0800

/* nlb_state.rules[rule slot]. */
struct nlb_rule {
	__u8 mode;     /* enum nlb_rule_mode */
	__u8 affinity; /* enum nlb_affinity */
	__u8 pad[6];
	__u16 bucket[NLB_BUCKETS];
};

/* Connection tables, one pair per family so that the IPv4 key (hashed on every lookup) stays
 * 12 bytes. Addresses and ports as on the wire, from the client's side (saddr = client).
 * nlb_conns4/6 (LRU): connections this host accepted a SYN of, or adopted mid-stream, and not
 *   yet proven: anyone can send a SYN, so these may be evicted (a flood evicts its own kind).
 * nlb_est4/6 (hash, never evicted): connections this host's TCP stack established (its socket
 *   program's evidence, or the socket table at attach); a record ends only when its socket
 *   does (docs/dataplane.md, "Connection tracking"). */
struct nlb_conn_key4 {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

struct nlb_conn_key6 {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
};

/* nlb_conn.flags. NLB_CONN_SYN_SEQ: an opening record made by a SYN; syn_seq holds the SYN's
 * sequence number. */
#define NLB_CONN_SYN_SEQ 1

struct nlb_conn {
	__u64 opened_ns; /* CLOCK_MONOTONIC (coarse) when recorded */
	__u64 closed_ns; /* established: when its socket closed; 0 while open (opening: unused) */
	__u16 bucket;
	__u8 rule;
	__u8 flags;    /* NLB_CONN_* */
	__u32 syn_seq; /* NLB_CONN_SYN_SEQ: the SYN's sequence number (host order) */
};

/* The connection scan's global (bpf/conn_scan.bpf.c): the agent sets the inputs and zeroes
 * the rest before each scan, the iterators fill it, the agent reads it in place. */
struct nlb_conn_scan {
	__u64 now_ns;      /* in: CLOCK_MONOTONIC, the clock records are stamped with */
	__u32 age_opening; /* in: 1 when opening records older than NLB_OPENING_MAX_AGE_NS end */
	__u32 pad;
	/* out: live (rule slot, bucket) pairs, a bit each; counts as struct ConnScan has them */
	__u64 live_buckets[NLB_RULE_SLOTS][NLB_BUCKETS / 64];
	__u64 live_by_rule[NLB_RULE_SLOTS];
	__u64 live;
	__u64 opening;
	__u64 established;
	__u64 closing;
	__u64 expired;
	__u64 opening_expired;
};

/* A connection as its client's packets carry it (saddr = client): what the agent hands the
 * nlb_seed program for each connection its stack already had (bpf/sockops.h). */
struct nlb_tuple {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport; /* network byte order */
	__u16 dport; /* network byte order */
	__u8 family; /* enum nlb_family */
	__u8 pad[3];
};

/* Everything the per-packet path reads in steady state, as the program's one global
 * (its .bss map): the verifier turns a global's address into a constant, so reading a VIP slot
 * or a bucket costs an address computation, not a map lookup with its key on the stack. The
 * agent maps it (mmap) and writes the fields in place. */
/* nlb_state.claim: the last machine seen on the segment claiming a VIP as its own (an ARP with
 * a VIP as sender address, a neighbour advertisement for a VIP) with a link-layer address that
 * is not the cluster MAC: a host configured with the VIP by mistake, whose answers turn the
 * clients that hear them away from the cluster. Written by the program (the only field it
 * writes), read by the agent when the vip_claims counter rises; racy across CPUs, a hint. */
struct nlb_claim {
	__u32 addr[4];
	__u8 family; /* enum nlb_family; 0: none yet */
	__u8 mac[6];
	__u8 pad;
};

struct nlb_state {
	struct nlb_config config;
	struct nlb_vip vips[NLB_VIP_SLOTS]; /* slot = nlb_vip_slot(address, config.vip_seed) */
	struct nlb_rule rules[NLB_RULE_SLOTS];
	struct nlb_claim claim;
};

/* nlb_stats (per CPU)[rule slot, or NLB_STATS_GLOBAL for what belongs to no rule]. */
#define NLB_STATS_GLOBAL NLB_RULE_SLOTS
#define NLB_STATS_SLOTS (NLB_RULE_SLOTS + 1)

struct nlb_stats {
	__u64 accepted;
	__u64 dropped_not_owner;
	__u64 dropped_dirty;
	__u64 dropped_disabled;
	__u64 dropped_watchdog;
	__u64 malformed;
	__u64 arp_replied;
	__u64 nd_replied;
	__u64 tracked; /* connection-table entries created */
	__u64 passed_other; /* other protocols to a VIP, passed to every host */
	__u64 remote_passed;  /* remote-control datagrams passed to the stack */
	__u64 remote_dropped; /* remote-control datagrams dropped: remote control is off */
	__u64 heartbeat_rate_dropped; /* 0x886F frames over their source MAC's budget */
	__u64 fragments_recorded;  /* first fragments whose verdict later fragments follow */
	__u64 fragments_unmatched; /* later fragments with no first fragment: every host */
	/* ARP and neighbour solicitations/advertisements about a VIP that the dataplane did not
	 * answer (other hosts' announcements, replies, requests it cannot answer, answering
	 * off): dropped, so that the kernel never answers for a VIP with the host's own MAC. */
	__u64 neigh_dropped;
	__u64 established; /* connections the host's stack established, recorded for good */
	__u64 established_full; /* ... that found the established table full (not recorded) */
	__u64 vip_claims;	/* another machine claiming a VIP (nlb_state.claim) */
};

/* nlb_frags[slot]: the verdict of a fragmented datagram's first fragment (the only one that
 * carries ports), which its later fragments follow. The datagram is named by the key the
 * receiving stack reassembles it by (family, addresses, IP ID, protocol), hashed into 64 bits:
 * the slot comes from one half, `tag` is the other, so two datagrams that share a slot are
 * told apart but for a chance of 2^-32. tag, rule and verdict form one aligned 8-byte word,
 * written and read in one access, so a reader never pairs one datagram's tag with another's
 * verdict. */
struct nlb_frag_ident {
	__u32 tag;
	__u8 rule;    /* rule slot of the first fragment: later fragments are counted there */
	__u8 verdict; /* enum nlb_frag_verdict; 0: empty slot */
	__u8 pad[2];
};

enum nlb_frag_verdict {
	NLB_FRAG_ACCEPT = 1,   /* this host took the first fragment */
	NLB_FRAG_DROP = 2,     /* another host's (or a dirty bucket's, or the watchdog's) */
	NLB_FRAG_DISABLED = 3, /* the first fragment's port rule is disabled */
};

struct nlb_frag {
	__u64 stamp_ns; /* watchdog_deadline_ns when the first fragment was decided: its age */
	union {
		struct nlb_frag_ident ident;
		__u64 ident_word;
	};
};

/* nlb_hb_rate: a token bucket per source MAC for 0x886F frames (heartbeats and map chunks),
 * so that a flood from one source never reaches the agent. An agent sends at most 4 frames
 * of 1 heartbeat + 8 map chunks per period, and heartbeat_ms is at least 100: 360 frames/s.
 * The budget is fixed, not derived from this host's heartbeat_ms, because it must cover the
 * sender's period, which the receiver cannot know (docs/dataplane.md). */
#define NLB_HB_RATE_PER_S 1000
#define NLB_HB_BURST 200
#define NLB_HB_INTERVAL_NS (1000000000ULL / NLB_HB_RATE_PER_S)
#define NLB_HB_WINDOW_NS (NLB_HB_BURST * NLB_HB_INTERVAL_NS)
/* Sources remembered (LRU), 16 times the hosts of a cluster. A source evicted by a flood of
 * forged source MACs starts again with a full bucket: eviction never drops a frame. */
#define NLB_HB_RATE_ENTRIES 1024

/* nlb_hb_trusted: the source MACs of 0x886F frames the agent authenticated and found fresh
 * (members' heartbeats), written by the agent only. Frames from every other source also share
 * one budget (nlb_hb_untrusted), so that forged frames under random source MACs, which each
 * start a fresh per-source bucket, reach the agent at NLB_HB_UNTRUSTED_PER_S at most while
 * the members' frames pass on their own budgets (docs/dataplane.md). The shared budget covers
 * a whole cluster's first frames (every sender is unknown at a cold start): 64 hosts at
 * 100 ms send 1,280 heartbeats a second, 2,560 in a burst of changes. A plain hash, not an
 * LRU (whose per-CPU free lists may evict a fresh entry of a nearly empty map): full, the
 * agent empties it and writes the members again as it hears them. Frames over the shared
 * budget are counted in nlb_hb_untrusted[0].dropped. */
#define NLB_HB_TRUSTED_ENTRIES 256
#define NLB_HB_UNTRUSTED_PER_S 4000
#define NLB_HB_UNTRUSTED_BURST 1000
#define NLB_HB_UNTRUSTED_INTERVAL_NS (1000000000ULL / NLB_HB_UNTRUSTED_PER_S)
#define NLB_HB_UNTRUSTED_WINDOW_NS (NLB_HB_UNTRUSTED_BURST * NLB_HB_UNTRUSTED_INTERVAL_NS)

struct nlb_hb_rate_key {
	__u8 mac[6];
	__u8 pad[2];
};

/* The bucket stored as one time (GCRA): full_at_ns is the CLOCK_MONOTONIC at which the bucket
 * is full again. A frame is admitted when, after it pushes full_at_ns one interval later, the
 * bucket is not overdrawn: full_at_ns - now <= NLB_HB_WINDOW_NS. Equivalent to tokens =
 * NLB_HB_BURST - (full_at_ns - now) / NLB_HB_INTERVAL_NS, without a division or a second
 * field to update together. */
struct nlb_hb_rate {
	__u64 full_at_ns;
	__u64 dropped; /* this source's frames dropped over budget (bpftool map dump) */
};

#endif
