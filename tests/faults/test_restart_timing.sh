#!/usr/bin/env bash
# Fault "restart_timing" (found by the staged changes' chaos test, seeds 528, 1377, 1544): of
# two hosts at 500 ms heartbeats, host 1's agent is stopped (SIGSTOP: its dataplane serves on
# until its watchdog, 2 s later) and at once host 2's agent crashes and starts again on a
# configuration of 100 ms heartbeats (a staged change's new file). It hears nobody, and alone
# it would serve every bucket after its own tolerance, 0.5 s, beside host 1's dataplane. Its
# earlier run kept the cluster's tolerance beside the control socket (<socket>.start_wait):
# it waits that out first.
#   zero requests answered twice; host 2 serves alone after host 1's watchdog, and every
#   request sent later than (tolerance + 2) periods + slack after the restart is answered.
HEARTBEAT_MS=500
source "$(dirname "$0")/lib.sh"
faults_init restart_timing
faults_setup 1 2
start_cluster 1 2
stream_start
sleep 1.5

kept=$(cat "$TOPO_DIR/h2.sock.start_wait" 2>/dev/null || echo none)
fextra kept_start_wait_ms "\"$kept\""
fcheck "host 2's agent keeps the cluster's tolerance for its next start ($kept ms)" \
  test "$kept" = 2500
fault_do pause -- kill -STOP "$AGENT_PID_1"
crash() { { kill -9 "$AGENT_PID_2" && wait "$AGENT_PID_2"; } 2>/dev/null || true; }
fault_do crash -- crash
fault_config 2 "" 100
restarted=$(now)
start_agent 2
fault_agents_started restart "$restarted" -- 2
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 1")"
fcheck "host 2 serves alone" converged_as 2 2
stream_stop
faults_report
