#!/usr/bin/env bash
# Pinned links are an interface's index, and an index is a network namespace's. Each failed
# before (a review's finds, 2026-12-07):
#   D  eth0 made again under its name and its old index while the agent runs: the agent
#      compared indexes only and never re-attached (no program, no VIP, one member);
#   E  host 1's pins read in host 2's namespace, where eth0 has the same index:
#      --release-dataplane took the VIP and the cluster MAC off host 2's live eth0.
source "$(dirname "$0")/common.sh"
topo_init "nlbpe-$$"
for i in 1 2; do topo_add_host "$i"; done
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
for i in 1 2; do host_config "$i" "$rules"; topo_start_agent "$i"; done
wait_converged 2 20 1 2

echo "=== D: eth0 made again with its old index"
idx=$(ip netns exec "$TOPO-h1" cat /sys/class/net/eth0/ifindex)
echo "eth0 index $idx"
mark=$(log_lines 1)
ip -n "$TOPO-h1" link del eth0
sleep 0.3
ip -n "$TOPO-h1" link add eth0 index "$idx" type veth peer name h1tmp
ip -n "$TOPO-h1" link set h1tmp netns "$TOPO-br"
ip -n "$TOPO-br" link set h1tmp name h1
ip -n "$TOPO-br" link set h1 master br0
ip -n "$TOPO-br" link set h1 xdpdrv obj "$BUILD/bpf/bare.bpf.o" sec xdp
ip -n "$TOPO-br" link set h1 up
ip -n "$TOPO-h1" link set eth0 up
ip -n "$TOPO-h1" addr add 10.10.0.11/16 dev eth0
echo "new eth0 index $(ip netns exec "$TOPO-h1" cat /sys/class/net/eth0/ifindex)"
sleep 4
check "D: the agent noticed eth0 was made again" grep -q "deleted and created again" <(since 1 "$mark")
check "D: the new eth0 has the XDP program" test -n "$(ip -n "$TOPO-h1" link show eth0 | grep -o 'prog/xdp' || true)"
check "D: the new eth0 has the VIP" test -n "$(ip -n "$TOPO-h1" addr show eth0 | grep "$CLUSTER_IP/32" || true)"
check "D: host 2 sees host 1 (2 members)" wait_converged 2 5 2

echo "=== E: host 1's pins read from host 2's namespace"
kill -9 "$AGENT_PID_1"; wait "$AGENT_PID_1" 2>/dev/null || true
# Host 1 freshly attached again so that its link is live, then killed: pins left.
ip -n "$TOPO-h1" link set eth0 xdpgeneric off 2>/dev/null || true
rm -rf "$TOPO_DIR/bpffs/h1"
topo_start_agent 1
wait_converged 2 20 1 2
kill -9 "$AGENT_PID_1"; wait "$AGENT_PID_1" 2>/dev/null || true
echo "h1 eth0 index $(ip netns exec "$TOPO-h1" cat /sys/class/net/eth0/ifindex), h2 eth0 index $(ip netns exec "$TOPO-h2" cat /sys/class/net/eth0/ifindex)"
echo "h2 before: $(ip -n "$TOPO-h2" -br addr show eth0) fdb: $(bridge -n "$TOPO-h2" fdb show dev eth0 self permanent | grep -io '^02:bf[0-9a-f:]*')"
set +e
out=$(ip netns exec "$TOPO-h2" "$NLB_AGENT" --release-dataplane --socket "$TOPO_DIR/h1.sock" --pin-dir "$TOPO_DIR/bpffs/h1" 2>&1)
set -e
echo "release from h2's namespace: $out"
echo "h2 after: $(ip -n "$TOPO-h2" -br addr show eth0) fdb: $(bridge -n "$TOPO-h2" fdb show dev eth0 self permanent | grep -io '^02:bf[0-9a-f:]*')"
check "E: host 2's live eth0 keeps its VIP" test -n "$(ip -n "$TOPO-h2" addr show eth0 | grep "$CLUSTER_IP/32" || true)"
check "E: host 2's live eth0 keeps the cluster MAC" test -n "$(bridge -n "$TOPO-h2" fdb show dev eth0 self permanent | grep -io '^02:bf' || true)"
check "E: the release says why it removed nothing" grep -q "not in this network namespace" <<<"$out"
check "E: host 1's pins are still there" test -e "$TOPO_DIR/bpffs/h1/link"
e2e_finish
