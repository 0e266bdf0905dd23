#!/usr/bin/env bash
# Fault "vip_removed": the host's network configuration takes the VIP off host 4's interface
# while its dataplane serves: first the VIP alone (a network manager reconfiguring drops the
# addresses it does not know), then every address (ifdown flushes them; ifup puts back only
# the host's own), the link up throughout.
#   every request sent later than (tolerance + 2) periods + slack after each is answered: the
#   agent puts the VIP back within a second and says so (before, the dataplane went on
#   accepting host 4's share and the stack dropped every packet for the address it no longer
#   had: a quarter of the requests lost until someone restarted the agent); zero answered
#   twice; nobody converges.
source "$(dirname "$0")/lib.sh"
faults_init vip_removed
faults_setup 1 2 3 4
start_cluster 1 2 3 4
stream_start
sleep 1.5

has_vip() { ip -n "$TOPO-h4" -4 addr show dev eth0 | grep -q "inet $CLUSTER_IP/32"; }
before=$(convergences 1 2 3 4)
t=$(now)
fault_do del_vip -- ip -n "$TOPO-h4" addr del "$CLUSTER_IP/32" dev eth0
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 1")"
fcheck "del_vip: the VIP is back on host 4's interface" has_vip
fcheck "del_vip: host 4 said it put it back" \
  test "$(count_log 4 "VIP $CLUSTER_IP had gone from the interface.*put back" "$t")" = 1

t=$(now)
fault_do flush -- sh -c "ip -n '$TOPO-h4' addr flush dev eth0 && ip -n '$TOPO-h4' addr add 10.10.0.14/16 dev eth0"
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 1")"
fcheck "flush: the VIP is back on host 4's interface" has_vip
fcheck "flush: host 4 said it put it back" \
  test "$(count_log 4 "VIP $CLUSTER_IP had gone from the interface.*put back" "$t")" = 1
d=$(deltas "$before" "$(convergences 1 2 3 4)")
fextra convergences "[$d]"
fcheck "no convergence completed on any host ($d)" deltas_within "$d" 0
fcheck "4 converged members" converged_as 1,2,3,4 1 2 3 4
stream_stop
faults_report
