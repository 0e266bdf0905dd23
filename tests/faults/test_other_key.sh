#!/usr/bin/env bash
# Fault "other key": 3 hosts share a cluster key; a 4th host of the same cluster IP starts
# with another key (nlbadm keygen) while they serve. It hears frames it cannot authenticate:
# it must never serve (it is refused, DESIGN.md §2), and the 3 keep serving.
#   zero requests answered twice, host 4 serves no request, no request lost at all (strict:
#   nothing the 3 do changes), hosts 1-3 stay converged [1, 2, 3], host 4 ends refused.
source "$(dirname "$0")/lib.sh"
faults_init other_key
faults_setup 1 2 3 4
key=$(fault_key cluster)
other=$(fault_key other)
for i in 1 2 3; do fault_config "$i" "$key"; start_agent "$i"; done
fault_config 4 "$other"
require_converged 1 2 3
stream_start
sleep 1.5

t=$(now)
start_agent 4
fault_agents_started other_key_started "$t" strict -- 4
# A lone host serves after tolerance periods; give it 4x that.
sleep_periods $((4 * TOLERANCE))
fextra host4_state "\"$(state_of 4)\""
fcheck "host 4 (other key) served no request" test ! -s "$TOPO_DIR/served4.log"
fcheck "host 4 (other key) is refused" test "$(state_of 4)" = refused
fcheck "hosts 1-3 still converged [1, 2, 3]" converged_as 1,2,3 1 2 3
stream_stop
faults_report --must-not-lose
