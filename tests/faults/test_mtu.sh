#!/usr/bin/env bash
# Fault "mtu": host 4's interface has a smaller MTU than its peers' (1300 against 1500: set by
# hand, or given by another DHCP server or overlay), the rest of the segment as it was. Hosts
# 1-3 hold connections in every bucket of four port rules (nlb-fill-conns --every-rule), so
# that their hand-over to host 4 as it joins makes their dirty lists long and their
# heartbeats long with them. Later the operator sets host 4's MTU to 1500.
#   zero answered twice; every request sent later than (tolerance + 2) periods + slack after
#   the join answered; hosts 1-3 converge once for it, 4 once; 1-3 say whose MTU cuts their
#   frames, and cut them no more once it is raised. The build before: host 4 dropped every
#   long frame, counted its peers dead, served alone and drew them into yielding to it
#   (11 requests answered twice, `3+4`, then host 4 serving every request alone).
source "$(dirname "$0")/lib.sh"
FAULT_RULES='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "single"}'
for port in 7001 7002 7003; do
  FAULT_RULES+=", {\"vip\": \"all\", \"ports\": [$port, $port], \"protocol\": \"tcp\", \"mode\": \"multiple\", \"affinity\": \"single\"}"
done
FAULT_RULES+="]"
# Tables of 32,768 a family, not 262,144: every owned bucket of the four rules still holds
# connections (about six each), so the dirty lists are as long; the agents' scans of eight
# times fewer records no longer starve a 2-core machine's agents past their watchdogs (with
# the full default tables, CI lost requests in one run of this test in 2026-12-07's, and
# beside a busy core 7 runs in 8 did, the build before as this one).
FAULT_OPENING=32768
faults_init mtu
faults_setup 1 2 3 4
ip -n "$TOPO-h4" link set eth0 mtu 1300
for i in 1 2 3 4; do fault_config "$i"; done
for i in 1 2 3; do start_agent "$i"; done
require_converged 1 2 3
for i in 1 2 3; do
  echo "host $i's tables: $("$BUILD/tests/tools/nlb-fill-conns" --every-rule "$TOPO_DIR/bpffs/h$i")"
done
stream_start
sleep 1.5

before=$(convergences 1 2 3)
t=$(now)
start_agent 4
fault_agents_started small_mtu_joins "$t" -- 4
wait_converged_as 1,2,3,4 20 1 2 3 4 || true
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 4")"
fcheck "1-4 converged [1, 2, 3, 4]" converged_as 1,2,3,4 1 2 3 4
d=$(deltas "$before" "$(convergences 1 2 3)")
fextra convergences "[$d]"
fcheck "hosts 1-3 converged once for the join ($d)" deltas_within "$d" 1
fcheck "host 4 converged once" test "$(query_field 4 'd["convergences"]' stats)" = 1
fcheck "host 1's frames cut to 1252 bytes" test "$(query_field 1 'd["host"]["frame_budget"]')" = 1252
names_host_4() { query_field 1 'd["host"]["problem"]' | grep -q "host 4's interface MTU is 1300"; }
fcheck "host 1 names host 4's MTU as its problem" names_host_4
for i in 1 2 3; do
  fcheck "host $i said host 4's MTU cuts its frames" \
    test "$(count_log "$i" "host 4's interface MTU is 1300, below this host's 1500" "$t")" -ge 1
done
fcheck "host 4 sized its own frames to its MTU" test "$(query_field 4 'd["host"]["frame_budget"]')" = 1300
fextra largest_cut "$(query_field 1 'd["heartbeats"]["oversized"]' stats)"

t=$(now)
fault_do mtu_raised strict -- ip -n "$TOPO-h4" link set eth0 mtu 1500
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S")"
fcheck "host 4 saw its MTU raised" test "$(count_log 4 '"event":"mtu".*"mtu":1500' "$t")" = 1
for i in 1 2 3; do
  fcheck "host $i sends frames of 1500 bytes again" \
    test "$(query_field "$i" 'd["host"]["frame_budget"]')" = 1500
done
fcheck "4 converged members" converged_as 1,2,3,4 1 2 3 4
stream_stop
faults_report
