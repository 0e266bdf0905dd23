#!/usr/bin/env bash
# E2E 1: a 4-host cluster serves 2,000 TCP connections from 200 client addresses, each
# answered by exactly one host, no reset, no timeout; UDP request/response likewise with no
# duplicate answer; load within ±5 % of equal shares (affinity none, 10,000 flows); and
# `nlbadm query --json` of every host reports the converged 4-host membership.
source "$(dirname "$0")/common.sh"
topo_init "nlbe1-$$"
for i in 1 2 3 4; do topo_add_host "$i"; done
topo_add_client 200
topo_add_bystander

rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "single"},
        {"vip": "all", "ports": [7001, 7001], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
for i in 1 2 3 4; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 7001 --vip "$CLUSTER_IP"
  topo_start_agent "$i"
done
wait_converged 4 20 1 2 3 4

for i in 1 2 3 4; do
  q=$(nlbadm_h "$i" --json query)
  check "host $i converged" test "$(json 'd["host"]["state"]' <<<"$q")" = converged
  check "host $i sees members 1-4" test "$(json 'sorted(d["cluster"]["members"])' <<<"$q")" = "[1, 2, 3, 4]"
  check "host $i default host is 1" test "$(json 'd["cluster"]["default_host"]' <<<"$q")" = 1
done

r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+200 --per-source 10 --proto tcp)
check "2000 TCP connections answered" test "$(json 'sum(d["answers"].values())' <<<"$r")" = 2000
check "no TCP failure" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "single affinity: one host per source" test "$(json 'all(len(set(v)) == 1 for v in d["per_source"].values())' <<<"$r")" = True
check "all 4 hosts served" test "$(json 'len(d["answers"])' <<<"$r")" = 4

r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+200 --per-source 5 --proto udp)
check "1000 UDP requests answered" test "$(json 'sum(d["answers"].values())' <<<"$r")" = 1000
check "no UDP failure" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "no duplicate UDP answer" test "$(json 'd["duplicates"]' <<<"$r")" = 0

r=$(client burst --vip "$CLUSTER_IP" --port 7001 --sources 10.10.1.1+200 --per-source 50 \
  --first-port 20000 --proto udp --dup-wait 0)
check "balance of 10,000 flows within ±5 %" balanced "$r" 4 5

r=$(ip netns exec "$TOPO-bystander" python3 "$NLB_ROOT/tests/tools/nlb_testclient.py" burst \
  --vip "$CLUSTER_IP" --port 7000 --sources 10.10.0.250 --per-source 20 --proto tcp)
check "bystander served too" test "$(json 'sum(d["answers"].values())' <<<"$r")" = 20
e2e_finish
