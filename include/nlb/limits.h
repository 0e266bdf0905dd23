/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Sizes both the dataplane and the agent are built with. Changing one changes the map layout
 * and the heartbeat wire format, so each is a protocol constant, not a tunable. */
#ifndef NLB_LIMITS_H
#define NLB_LIMITS_H

/* Hosts per cluster; host priorities are 1..NLB_MAX_HOSTS, 0 means "no host". */
#define NLB_MAX_HOSTS 64
/* Port rules per cluster (identical on every host). */
#define NLB_MAX_RULES 32
/* Rule slot that holds the default host's all-buckets map for traffic no rule covers
 * (uncovered ports, ICMP echo). It sits after the configured rules. */
#define NLB_RULE_DEFAULT NLB_MAX_RULES
/* Number of rule slots in the rule map: configured rules plus the default-host slot. */
#define NLB_RULE_SLOTS (NLB_MAX_RULES + 1)
/* Buckets per rule; a power of two so that "hash mod B" is a mask. NLB used 60. */
#define NLB_BUCKETS 4096
#define NLB_BUCKET_MASK (NLB_BUCKETS - 1)

/* Virtual IPs (IPv4 or IPv6), including the cluster IP. */
#define NLB_MAX_VIPS 32
/* Direct-mapped VIP table: the agent picks a hash seed under which every VIP has a slot of
 * its own, so a lookup is one array access and one compare, never a probe sequence. */
#define NLB_VIP_SLOTS 256
#define NLB_VIP_SLOT_MASK (NLB_VIP_SLOTS - 1)

/* Port table: per (VIP, protocol) 65536 one-byte rule indices, stored as chunks of
 * NLB_PORT_CHUNK so that an array element carries no padding. */
#define NLB_PORT_CHUNK 64
#define NLB_PORT_CHUNK_SHIFT 6
#define NLB_PORT_CHUNKS_PER_PROTO (65536 / NLB_PORT_CHUNK)
#define NLB_PORT_TABLE_ENTRIES (NLB_MAX_VIPS * 2 * NLB_PORT_CHUNKS_PER_PROTO)

/* Connection tables per host and family, by default (config: dataplane.opening_connections,
 * dataplane.established_connections). Opening: an LRU of unproven connections. Established:
 * never evicted; about 100 bytes an entry. */
#define NLB_CONN_TABLE_ENTRIES 262144
#define NLB_EST_TABLE_ENTRIES 262144
/* After its socket closed, an established record is kept this long (a SYN on its tuple in a
 * bucket that moved is then the new owner's); it keeps no bucket dirty meanwhile. */
#define NLB_CONN_CLOSE_GRACE_NS (10ULL * 1000 * 1000 * 1000)
/* An opening record not established by then is forgotten (a SYN_RECV socket gives up after
 * about 63 s with the default tcp_synack_retries of 5). */
#define NLB_OPENING_MAX_AGE_NS (75ULL * 1000 * 1000 * 1000)

/* An opening record made by a SYN takes the client's packets whose sequence numbers lie this
 * far past the SYN's, the client's first window and more (the SYN-ACK offers at most 64 KB
 * unscaled): a client established with another host, answering this host's SYN-ACK to a
 * forged SYN from its own sequence space, falls outside but once in 32,768 (bpf/conntrack.h). */
#define NLB_OPENING_SEQ_WINDOW (1U << 17)

/* Slots of the direct-mapped table of first-fragment verdicts (16 bytes each, both families):
 * a datagram's record is overwritten when a datagram that starts before its last fragment
 * hashes to its slot, a chance of one in this many per such datagram. */
#define NLB_FRAG_SLOTS 65536
/* A record older than this is ignored: by then the receiving stack has given up reassembling
 * the datagram (Linux's ipfrag_time, 30 s; IPv6's is 60 s, and a shorter age only passes a
 * straggler to every host), and a later fragment with the same key belongs to a new datagram
 * that reused the IP ID. */
#define NLB_FRAG_TIMEOUT_NS (30ULL * 1000 * 1000 * 1000)

/* Heartbeat EtherType (the one NLB used). */
#define NLB_ETH_P_HEARTBEAT 0x886F

/* VLAN tags the dataplane reads before a frame's own type (priority tags, which the kernel
 * strips however many there are, and the frame's VLAN); more is malformed. 14 + 4 x 4 bytes
 * keeps the network header within the first 31 bytes, which the neighbour answers' offsets
 * are masked to. */
#define NLB_MAX_TAGS 4

#endif
