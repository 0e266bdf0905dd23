#!/usr/bin/env bash
# Fault "short pauses": host 4's agent is stopped (SIGSTOP) ten times, at random instants, each
# time for 2.6 s of its watchdog's 3.2 s ((tolerance - 1) periods: tolerance 17 here, for room
# against this machine's timing: a refresh trails the last input by at most a 0.2 s step, an
# input comes every 0.1 s, so 0.3 s are left for the pause's own lateness). A pause shorter than the timeout is not a stall: the
# dataplane keeps accepting through it, and nobody converges.
# The watchdog's deadline counts from the engine's last look at its inputs, as of the last
# refresh. Refreshed only by the timer (four times per timeout), it could trail that look by a
# quarter of the timeout: a loop stopped right after handling a heartbeat then found its
# dataplane stopped on resume, with no stall its engine could see (the inputs were less than a
# timeout apart), and dropped requests meanwhile (seen under a CPU quota, test_starved_join).
# Now every input that moves the look a sixteenth of the timeout on refreshes it.
#   zero requests lost (strict: through every pause) or answered twice; host 4: no stall, no
#   watchdog expiry, no frame dropped by the watchdog; no host converged again.
HEARTBEAT_MS=200
TOLERANCE=17
source "$(dirname "$0")/lib.sh"
faults_init short_pauses
PAUSES=10
PAUSE_S=2.6

faults_setup 1 2 3 4
start_cluster 1 2 3 4
stream_start
sleep 1.5

before=$(convergences 1 2 3 4)
started=$(now)
pauses() {
  local k
  for ((k = 0; k < PAUSES; k++)); do
    # A random phase against the agent's refreshes (every 0.8 s): 0.3-0.8 s running;
    # the build before expired when the last one came more than 0.6 s before the pause.
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.3 + r / 32768 * 0.5 }')"
    kill -STOP "$AGENT_PID_4"
    sleep "$PAUSE_S"
    kill -CONT "$AGENT_PID_4"
  done
}
fault_do pauses strict -- pauses
sleep_periods 3
echo "host 4: $(count_events 4 stalled "$started") stalls, $(count_events 4 watchdog_expired "$started") watchdog expiries"
fcheck_kept_serving 4 "$started" "every pause shorter than the timeout"
after=$(convergences 1 2 3 4)
echo "convergences: $before -> $after"
fcheck "no host converged again" deltas_within "$(deltas "$before" "$after")" 0
stream_stop
faults_report
