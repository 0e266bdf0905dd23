#!/usr/bin/env bash
# A restart that adopts a kept dataplane (kill -9, --keep-dataplane) where something changed
# meanwhile (docs/agent.md, "Adoption"). Each failed before (a review's finds, 2026-12-07):
#   A  cluster.ip changed: the earlier cluster MAC stayed in eth0's filter for good (the
#      detach knew only the new one);
#   B  eth0 deleted and made again while no agent ran: the pinned link is defunct and the
#      agent exited 1 at every start ("not an XDP link on an existing interface");
#   C  host.interface changed to eth1: the agent adopted eth0 and ignored it.
source "$(dirname "$0")/common.sh"
topo_init "nlbac-$$"
topo_add_host 1
ip link add eth1 netns "$TOPO-h1" type veth peer name h1b netns "$TOPO-br"
ip -n "$TOPO-br" link set h1b master br0; ip -n "$TOPO-br" link set h1b up; ip -n "$TOPO-h1" link set eth1 up
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
agent_alive() { kill -0 "$AGENT_PID_1" 2>/dev/null; }
kill1() { kill -9 "$AGENT_PID_1"; wait "$AGENT_PID_1" 2>/dev/null || true; }
fdb() { bridge -n "$TOPO-h1" fdb show dev "$1" self permanent | grep -io '^02:bf[0-9a-f:]*' | tr '\n' ' ' || true; }

echo "=== A: cluster.ip changed across a kept dataplane"
host_config 1 "$rules"
topo_start_agent 1
wait_converged 1 20 1
echo "eth0 filter before: $(fdb eth0)"
kill1
CLUSTER_IP=10.10.0.101 host_config 1 "$rules"
mark=$(log_lines 1)
topo_start_agent 1
wait_converged 1 20 1
check "A: adopted" adopted_since 1 "$mark"
echo "eth0 filter while running: $(fdb eth0)"
kill -TERM "$AGENT_PID_1"; wait "$AGENT_PID_1" 2>/dev/null || true
left=$(fdb eth0)
echo "eth0 filter after the detach: $left"
check "A: no cluster MAC left in eth0's filter after the detach" test -z "$left"

echo "=== B: eth0 made again while no agent ran"
host_config 1 "$rules"
topo_start_agent 1
wait_converged 1 20 1
kill1
ip -n "$TOPO-h1" link del eth0
sleep 0.3
topo_link "$TOPO-h1" h1
ip -n "$TOPO-h1" addr add 10.10.0.11/16 dev eth0
mark=$(log_lines 1)
topo_start_agent 1
sleep 3 # a start that fails exits within this
since 1 "$mark" | tail -3
check "B: the agent runs" agent_alive
check "B: and serves" wait_converged 1 10 1
agent_alive && kill1
ip netns exec "$TOPO-h1" "$NLB_AGENT" --release-dataplane --socket "$TOPO_DIR/h1.sock" --pin-dir "$TOPO_DIR/bpffs/h1" || true
ip -n "$TOPO-h1" link set eth0 xdpgeneric off 2>/dev/null || true
ip -n "$TOPO-h1" addr del "$CLUSTER_IP/32" dev eth0 2>/dev/null || true

echo "=== C: host.interface changed from eth0 to eth1 across a kept dataplane"
host_config 1 "$rules"
topo_start_agent 1
wait_converged 1 20 1
kill1
host_config 1 "$rules" unicast '[]' ''
sed -i 's/"interface": "eth0"/"interface": "eth1"/' "$TOPO_DIR/h1.json"
grep -o '"interface": "[a-z0-9]*"' "$TOPO_DIR/h1.json"
mark=$(log_lines 1)
topo_start_agent 1
sleep 3
since 1 "$mark" | grep -E 'attached|adopted|error' | head -5
ifc=$(nlbadm_h 1 --json query 2>/dev/null | json 'd["host"].get("interface")' || echo none)
check "C: the agent attached the configured eth1 (it is on: $ifc)" test "$ifc" = eth1
check "C: eth0 released: no VIP left there" \
  bash -c "! ip -n '$TOPO-h1' addr show eth0 | grep -q '$CLUSTER_IP/32'"
check "C: eth1 has the VIP" bash -c "ip -n '$TOPO-h1' addr show eth1 | grep -q '$CLUSTER_IP/32'"
e2e_finish
