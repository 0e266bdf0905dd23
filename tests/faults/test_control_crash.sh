#!/usr/bin/env bash
# Control for the harness (not one of the issue's faults): the failure today's agent already
# handles (tests/e2e/test_failover.sh) — host 4 crashes: kill -9 of its agent and its link
# down. Run through the same stream, judge and bound, it must pass: it shows that a passing
# agent passes here, so the faults' failures are the agent's, not the harness's.
#   zero requests answered twice; every request sent later than (tolerance + 2) periods +
#   slack after the crash is answered; hosts 1-3 converged [1, 2, 3].
source "$(dirname "$0")/lib.sh"
faults_init control_crash
faults_setup 1 2 3 4
start_cluster 1 2 3 4
stream_start
sleep 1.5

crash() {
  { kill -9 "$AGENT_PID_4" && wait "$AGENT_PID_4"; } 2>/dev/null || true
  ip -n "$TOPO-h4" link set eth0 down
}
fault_do crash -- crash
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 2")"
fcheck "hosts 1-3 converged [1, 2, 3]" converged_as 1,2,3 1 2 3
stream_stop
faults_report
