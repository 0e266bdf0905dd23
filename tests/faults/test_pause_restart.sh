#!/usr/bin/env bash
# Fault "pause_restart" (found by the chaos test, tests/engine/test_chaos.cpp), on a cluster of
# two: host 2's agent is stopped with SIGSTOP for 3 x tolerance periods; meanwhile host 1's
# agent crashes (kill -9, its dataplane left running until its watchdog) and starts again, and
# serves alone. On resume host 2 reads what queued up in its sockets, among it the last frames
# of host 1's earlier boot, which echo host 2's boot and show both hosts agreed: taken as news
# they would make a dead stream alive and agreed with while host 1's new boot serves every
# bucket. The agent reads each frame's kernel receive time and drops the ones that came more
# than a tolerance before they are read.
#   zero requests answered twice; within (tolerance + 2) periods + slack of each event every
#   request is answered again; both converged afterwards; host 2 counted late frames.
source "$(dirname "$0")/lib.sh"
faults_init pause_restart
faults_setup 1 2
start_cluster 1 2
stream_start
sleep 1.5

paused=$(now)
fault_do pause -- kill -STOP "$AGENT_PID_2"
sleep_periods 1
crash() { { kill -9 "$AGENT_PID_1" && wait "$AGENT_PID_1"; } 2>/dev/null || true; }
fault_do crash -- crash
sleep_periods 2
restarted=$(now)
start_agent 1
fault_agents_started restart "$restarted" -- 1
# Resume 3 x tolerance periods after the pause: host 1's earlier boot's last frames are then
# more than a tolerance old.
sleep_until "$(calc "$paused + 3 * $TOLERANCE * $HEARTBEAT_MS / 1000")"
fault_do resume -- kill -CONT "$AGENT_PID_2"
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 1")"
fcheck "resumed: both converged members again within 10 s" wait_converged_as 1,2 10 1 2
late=$(query_field 2 'd["heartbeats"]["late"]' stats)
fextra late_frames "$late"
counted() { [ "$1" != none ] && [ "$1" -gt 0 ]; }
fcheck "host 2 dropped the frames that queued up more than a tolerance ago (late: $late)" \
  counted "${late:-none}"
stream_stop
faults_report
