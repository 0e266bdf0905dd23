#!/usr/bin/env bash
# Fault "link_flap": host 4's link loses its carrier (its veth set down in its namespace: a
# cable pulled, a switch port reset, a NIC's driver resetting it), then comes back; first for
# two periods, then for longer than the tolerance.
#   zero requests answered twice: cut off, the host knows it (its agent watches the carrier),
#   forms no epoch alone, lets go of its buckets when its peers may take them and joins again
#   once the link is back (before: it served every bucket alone and, back, beside the peers
#   that had taken its share until the partition heal: 117 requests answered twice in a run);
#   the short flap reconverges nobody and stops no dataplane; after each event every request
#   sent later than (tolerance + 2) periods + slack is answered.
source "$(dirname "$0")/lib.sh"
faults_init link_flap
faults_setup 1 2 3 4
start_cluster 1 2 3 4
stream_start
sleep 1.5

before=$(convergences 1 2 3 4)
t=$(now)
fault_do short -- ip -n "$TOPO-h4" link set eth0 down
sleep_periods 2
ip -n "$TOPO-h4" link set eth0 up
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S")"
d=$(deltas "$before" "$(convergences 1 2 3 4)")
fextra short_convergences "[$d]"
fcheck "short: host 4 saw its link go down and come back" \
  test "$(count_events 4 link_down "$t")/$(count_events 4 link_up "$t")" = 1/1
fcheck "short: no convergence completed on any host ($d)" deltas_within "$d" 0
fcheck_kept_serving 4 "$t" "a flap shorter than the tolerance"

t=$(now)
fault_do long -- ip -n "$TOPO-h4" link set eth0 down
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 2.5")"
fextra long_states "$(nlbq summary 1 2 3 4)"
fcheck "long: host 4's query says its link is down" test "$(query_field 4 'd["host"]["link"]')" = down
fcheck "long: 3 converged members without host 4" converged_as 1,2,3 1 2 3
fcheck "long: host 4 let go of its buckets, its link down" \
  test "$(count_log 4 '(?=.*"event":"stalled")(?=.*link has been down)' "$t")" = 1
fcheck "long: host 4 formed no epoch alone" test "$(count_events 4 converged "$t")" = 0
fault_do up -- ip -n "$TOPO-h4" link set eth0 up
fcheck "up: 4 converged members again within 10 s" wait_converged_as 1,2,3,4 10 1 2 3 4
fcheck "up: host 4's query says its link is up" test "$(query_field 4 'd["host"]["link"]')" = up
sleep 1
stream_stop
faults_report
