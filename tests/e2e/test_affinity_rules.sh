#!/usr/bin/env bash
# E2E 2 and 5: affinity (single: one host per client address; none: one address spreads over
# all hosts; network: a /24 stays together) and rule modes (a single-host rule follows
# handling priority and fails over; a disabled rule answers nothing; an uncovered port
# reaches only the default host; a VIP-specific rule beside an "all" rule).
source "$(dirname "$0")/common.sh"
topo_init "nlbe2-$$"
for i in 1 2 3 4; do topo_add_host "$i"; done
topo_add_client 300
VIP2=10.10.0.101
for i in 1 2 3 4; do
  hp=$((5 - i)) # host 4 has the best handling priority
  host_config "$i" "[
    {\"vip\": \"all\", \"ports\": [7000, 7000], \"protocol\": \"tcp\", \"mode\": \"multiple\", \"affinity\": \"single\"},
    {\"vip\": \"all\", \"ports\": [7001, 7001], \"protocol\": \"tcp\", \"mode\": \"multiple\", \"affinity\": \"none\"},
    {\"vip\": \"all\", \"ports\": [7002, 7002], \"protocol\": \"tcp\", \"mode\": \"multiple\", \"affinity\": \"network\"},
    {\"vip\": \"all\", \"ports\": [7003, 7003], \"protocol\": \"tcp\", \"mode\": \"single\", \"handling_priority\": $hp},
    {\"vip\": \"all\", \"ports\": [7004, 7004], \"protocol\": \"tcp\", \"mode\": \"disabled\"},
    {\"vip\": \"$VIP2\", \"ports\": [7000, 7000], \"protocol\": \"tcp\", \"mode\": \"single\", \"handling_priority\": $hp}
  ]" unicast "[\"$VIP2\"]"
  topo_start_server "$i" 7000 7001 7002 7003 7004 7005
  topo_start_agent "$i"
done
wait_converged 4 20 1 2 3 4

r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 4)
check "single: every connection answered" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "single: one host per client address" test "$(json 'all(len(set(v)) == 1 for v in d["per_source"].values())' <<<"$r")" = True

r=$(client burst --vip "$CLUSTER_IP" --port 7001 --sources 10.10.1.7 --per-source 60)
check "none: one client address spreads over all 4 hosts" test "$(json 'len(d["answers"])' <<<"$r")" = 4

r=$(client burst --vip "$CLUSTER_IP" --port 7002 --sources 10.10.1.1+250 --per-source 1)
check "network: a /24 stays on one host" test "$(json 'len(d["answers"])' <<<"$r")" = 1
r2=$(client burst --vip "$CLUSTER_IP" --port 7002 --sources 10.10.2.1+50 --per-source 1)
check "network: the other /24 stays on one host too" test "$(json 'len(d["answers"])' <<<"$r2")" = 1

r=$(client burst --vip "$CLUSTER_IP" --port 7003 --sources 10.10.1.1+50 --per-source 2)
check "single-host rule: the best handling priority (host 4) serves all" test "$(json 'd["answers"]' <<<"$r")" = "{'4': 100}"
check "stop host 4" nlbadm_h 4 stop
wait_converged 3 20 1 2 3
r=$(client burst --vip "$CLUSTER_IP" --port 7003 --sources 10.10.1.1+50 --per-source 2)
check "single-host rule fails over to the next (host 3)" test "$(json 'd["answers"]' <<<"$r")" = "{'3': 100}"

r=$(client burst --vip "$CLUSTER_IP" --port 7004 --sources 10.10.1.1+20 --timeout 0.5)
check "disabled rule: nothing answers" test "$(json 'len(d["failures"]) == 20 and not d["answers"]' <<<"$r")" = True
q=$(nlbadm_h 1 --json stats)
check "disabled rule: drops counted" test "$(json 'd["rules"][4]["dropped_disabled"] > 0' <<<"$q")" = True

r=$(client burst --vip "$CLUSTER_IP" --port 7005 --sources 10.10.1.1+50 --per-source 2)
check "uncovered port: only the default host answers" test "$(json 'd["answers"]' <<<"$r")" = "{'1': 100}"

r=$(client burst --vip "$VIP2" --port 7000 --sources 10.10.1.1+50 --per-source 2)
check "VIP-specific single-host rule: host 3 (best live handling priority) serves $VIP2:7000" test "$(json 'd["answers"]' <<<"$r")" = "{'3': 100}"
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 1)
check "...while the all rule spreads $CLUSTER_IP:7000 over hosts 1-3" test "$(json 'sorted(d["answers"])' <<<"$r")" = "['1', '2', '3']"
e2e_finish
