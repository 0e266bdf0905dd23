#!/usr/bin/env bash
# An interface deleted and created again under its name (ifupdown or networkd rebuilding a bond
# or a VLAN): its XDP program and VIPs go with the old one, and the agent attaches afresh
# within a period, where it used to stay refused (its heartbeat socket bound to the old
# index, every send failing) until a restart. A host the operator stopped stays stopped.
source "$(dirname "$0")/common.sh"
topo_init "nlbir-$$"
for i in 1 2; do topo_add_host "$i"; done
topo_add_client 40
HEARTBEAT_MS=100
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
for i in 1 2; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
  topo_start_agent "$i"
done
wait_converged 2 20 1 2

# recreate I: host I's eth0 deleted (and its bridge port with it), then made again.
recreate() {
  ip -n "$TOPO-h$1" link del eth0
  sleep 0.3
  topo_link "$TOPO-h$1" "h$1"
  ip -n "$TOPO-h$1" addr add "10.10.0.$((10 + $1))/16" dev eth0
}

# attached_afresh SECONDS: until host 1 logs the fresh attach after $mark.
attached_afresh() {
  local deadline=$((SECONDS + $1))
  until grep -q "deleted and created again" <(since 1 "$mark") || ((SECONDS > deadline)); do sleep 0.2; done
  grep -q "deleted and created again" <(since 1 "$mark")
}

mark=$(log_lines 1)
recreate 1
check "host 1 says it attached afresh" attached_afresh 10
wait_converged 2 20 1 2 || fail "no convergence after host 1's eth0 was made again"
check "the new eth0 has the XDP program" test -n "$(ip -n "$TOPO-h1" link show eth0 | grep -o 'prog/xdp')"
check "the new eth0 has the VIP" test -n "$(ip -n "$TOPO-h1" addr show eth0 | grep "$CLUSTER_IP/32")"
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+40 --per-source 3 --proto udp)
check "both hosts serve, once each ($(json 'd["answers"], d["duplicates"]' <<<"$r"))" \
  test "$(json 'sorted(d["answers"]), sum(d["answers"].values()), d["duplicates"]' <<<"$r")" = "(['1', '2'], 120, 0)"

# Stopped by the operator: attached afresh, still stopped.
nlbadm_h 1 stop >/dev/null
wait_converged 1 20 2
mark=$(log_lines 1)
recreate 1
attached_afresh 10 || true
sleep 1
check "stopped host: attached afresh" test -n "$(ip -n "$TOPO-h1" link show eth0 | grep -o 'prog/xdp')"
check "stopped host: still stopped" test "$(nlbadm_h 1 --json query | json 'd["host"]["state"]')" = stopped

# An attach that fails at first is tried again: the new eth0 comes with another XDP program
# on it, which the operator then removes. A drained rule stays drained meanwhile.
nlbadm_h 1 start >/dev/null
wait_converged 2 20 1 2
nlbadm_h 1 drain 7000 >/dev/null
mark=$(log_lines 1)
ip -n "$TOPO-h1" link del eth0
ip link add eth9 netns "$TOPO-h1" type veth peer name h1 netns "$TOPO-br"
ip -n "$TOPO-br" link set h1 master br0
ip -n "$TOPO-br" link set h1 xdpdrv obj "$BUILD/bpf/bare.bpf.o" sec xdp
ip -n "$TOPO-br" link set h1 up
ip -n "$TOPO-h1" link set eth9 xdpgeneric obj "$BUILD/bpf/bare.bpf.o" sec xdp
ip -n "$TOPO-h1" link set eth9 name eth0
ip -n "$TOPO-h1" link set eth0 up
ip -n "$TOPO-h1" addr add 10.10.0.11/16 dev eth0
check "blocked by another XDP program: noticed" attached_afresh 10
deadline=$((SECONDS + 10))
until grep -q "trying again every second" <(since 1 "$mark") || ((SECONDS > deadline)); do sleep 0.2; done
check "blocked: the failed attach is said, and tried again" grep -q "another XDP program.*trying again every second" <(since 1 "$mark")
check "blocked: not attached meanwhile" test "$(nlbadm_h 1 --json query | json 'd["host"]["attached"]')" = False
ip -n "$TOPO-h1" link set eth0 xdpgeneric off
deadline=$((SECONDS + 10))
until [ "$(nlbadm_h 1 --json query | json 'd["host"]["attached"]')" = True ] || ((SECONDS > deadline)); do sleep 0.2; done
check "unblocked: attached within a few seconds" test "$(nlbadm_h 1 --json query | json 'd["host"]["attached"]')" = True
check "the drained rule is still drained ($(nlbadm_h 1 --json query | json 'd["rules"][0].get("control")'))" \
  test "$(nlbadm_h 1 --json query | json 'd["rules"][0]["control"]')" = draining
check "the host is started" test "$(nlbadm_h 1 --json query | json 'd["host"]["state"]')" != stopped
e2e_finish
