#!/usr/bin/env bash
# Fault "pause": host 4's agent is stopped with SIGSTOP (as a VM pause would) for 3 x tolerance
# periods, then continued. Its dataplane must stop accepting once the agent is silent
# (watchdog), the others take its buckets over while it is paused, and on resume it must not
# serve buckets the others hold before it has converged again.
#   zero requests answered twice (around the resume too); within (tolerance + 2) periods +
#   slack of the pause, and of the resume, every request is answered again; hosts 1-3 are
#   converged [1, 2, 3] while it is paused; all 4 converged again afterwards; host 4's stall
#   says its loop neither ran nor waited for a CPU through most of it (stopped, not starved).
source "$(dirname "$0")/lib.sh"
faults_init pause
faults_setup 1 2 3 4
start_cluster 1 2 3 4
stream_start
sleep 1.5

paused=$(now)
fault_do pause -- kill -STOP "$AGENT_PID_4"
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S")"
fcheck "while paused: hosts 1-3 converged [1, 2, 3] (its buckets taken over)" \
  wait_converged_as 1,2,3 1 1 2 3
# Resume 3 x tolerance periods after the pause.
sleep_until "$(calc "$paused + 3 * $TOLERANCE * $HEARTBEAT_MS / 1000")"
resumed=$(now)
fault_do resume -- kill -CONT "$AGENT_PID_4"
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 1")"
fcheck "resumed: 4 converged members again within 10 s" wait_converged_as 1,2,3,4 10 1 2 3 4
read -r over ran waited <<<"$(stall_cause 4 "$resumed")"
fcheck "host 4's stall: stopped, neither running nor waiting for a CPU through most of it" \
  test -n "$over" -a -n "$ran" -a -n "$waited" -a "$((${ran:-0} + ${waited:-0}))" -lt "$((${over:-0} / 2))"
stream_stop
faults_report
