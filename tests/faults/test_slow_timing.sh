#!/usr/bin/env bash
# Fault "slow timing": a 4th host configured with heartbeat_ms 2000 starts beside a 200 ms
# cluster (hosts 1-3). Its period (and so its tolerance) does not match: it must be refused,
# and the cluster must not flap (join, die, join, ...).
#   host 4 ends refused; hosts 1-3 complete at most one convergence each in the 6 s after it
#   starts (nlbadm --json stats "convergences") and end converged [1, 2, 3]; zero requests
#   answered twice; every request sent later than (tolerance + 2) periods + slack is answered.
source "$(dirname "$0")/lib.sh"
faults_init slow_timing
faults_setup 1 2 3 4
for i in 1 2 3; do fault_config "$i"; start_agent "$i"; done
fault_config 4 "" 2000
require_converged 1 2 3
stream_start
sleep 1.5

before=$(convergences 1 2 3)
t=$(now)
start_agent 4
fault_agents_started slow_host_started "$t" -- 4
sleep 6
d=$(deltas "$before" "$(convergences 1 2 3)")
fextra convergences "[$d]"
fextra host4_state "\"$(state_of 4)\""
fcheck "host 4 (heartbeat_ms 2000) refused" test "$(state_of 4)" = refused
fcheck "no repeated convergence on hosts 1-3 ($d)" deltas_within "$d" 1
fcheck "hosts 1-3 converged [1, 2, 3]" converged_as 1,2,3 1 2 3
stream_stop
faults_report
