#!/usr/bin/env bash
# Issue 11, defect 9: agents on veths attached with `--xdp-mode auto` (what a new user runs)
# serve real TCP connections. Before, auto attached native XDP on a veth: the hosts converged
# and every accepted frame was dropped, since a veth classifies frames before its native hook
# runs. The log line and `nlbadm query` say which mode auto took and why.
source "$(dirname "$0")/common.sh"
topo_init "nlbxa-$$"
for i in 1 2; do topo_add_host "$i"; done
topo_add_client 50

rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "single"}]'
for i in 1 2; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
  topo_start_agent "$i" --xdp-mode auto # the later option wins over topology's generic
done
wait_converged 2 20 1 2

for i in 1 2; do
  q=$(nlbadm_h "$i" --json query)
  check "host $i: auto took generic on the veth" test "$(json 'd["host"]["xdp_mode"]' <<<"$q")" = generic
  check "host $i: query says why" test "$(json 'd["host"]["xdp_mode_reason"]' <<<"$q")" = \
    "veth: native XDP runs after the veth's packet-type decision"
  check "host $i: the attach log line says why" \
    grep -q "attached .*reason=veth: native XDP runs after the veth's packet-type decision xdp_mode=generic" \
    "$TOPO_DIR/h$i.log"
  check "host $i: generic XDP on eth0" bash -c "ip -n '$TOPO-h$i' link show eth0 | grep -q xdpgeneric"
done

r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+50 --per-source 4 --proto tcp)
check "200 TCP connections answered ($(json 'd["answers"]' <<<"$r"))" \
  test "$(json 'sum(d["answers"].values())' <<<"$r")" = 200
check "no TCP failure" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "both hosts served" test "$(json 'len(d["answers"])' <<<"$r")" = 2
e2e_finish
