#!/usr/bin/env bash
# Fault "outage_pause" (found by the chaos test's outages, tests/engine/test_chaos.cpp): host
# 3's own heartbeats stop leaving on both paths (nft bridge family: the heartbeat EtherType
# and the second path's UDP 2505 from h3; what reaches h3 still comes), as a VM's last frames
# before a live migration's stop, or a stuck transmit queue; 3.5 periods later its agent is
# stopped (SIGSTOP, the VM frozen) and the filter goes. Its peers last heard it at the
# outage's start and take its buckets a tolerance and a period later; its watchdog, counted
# from its own last look, would let it serve until (tolerance - 1) periods into the pause,
# 2.5 periods longer. Its peers' heartbeats say which of its frames they took in last
# (section 12): its dataplane stops a tolerance and a period after it sent that one.
#   zero requests answered twice; within (tolerance + 2) periods + slack of the outage's
#   start every request is answered again; hosts 1-2 converged [1, 2] while host 3 is
#   paused; all three converged after the resume.
source "$(dirname "$0")/lib.sh"
faults_init outage_pause
faults_setup 1 2 3
start_cluster 1 2 3
stream_start
sleep 1.5

outage() {
  nft_fault iifname '"h3"' ether type 0x886f
  nft_fault iifname '"h3"' udp dport 2505
}
fault_do outage -- outage
sleep_periods 3.5
paused=$(now)
freeze() {
  kill -STOP "$AGENT_PID_3"
  FAULT_OUTAGE_DROPPED=$(nft_dropped)
  nft_clear
}
fault_do pause -- freeze
fextra filter_dropped "$FAULT_OUTAGE_DROPPED"
fcheck "the outage dropped host 3's heartbeats ($FAULT_OUTAGE_DROPPED frames)" \
  test "$FAULT_OUTAGE_DROPPED" -gt 0
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S")"
fcheck "while paused: hosts 1 and 2 converged [1, 2] (its buckets taken over)" \
  wait_converged_as 1,2 1 1 2
sleep_until "$(calc "$paused + 3 * $TOLERANCE * $HEARTBEAT_MS / 1000")"
fault_do resume -- kill -CONT "$AGENT_PID_3"
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S")"
fcheck "resumed: 3 converged members again within 10 s" wait_converged_as 1,2,3 10 1 2 3
stream_stop
faults_report
