#!/usr/bin/env bash
# Fault "starved join": host 4 joins a 3-host cluster while its agent gets a hundredth of a
# core (a container's CPU limit, a noisy neighbour), from before its first convergence until
# well after it.
# At a host's first convergence its engine computes its first bucket map. The allocation's
# shared table (2 MB, 13-15 ms of CPU here, most of it first touches of fresh pages) used to be
# built right then: at 1 % of a core, seconds with the loop held up, past the watchdog; the
# joiner stalled, let its new buckets go and converged again (on the 64-host bed at 100 ms
# every joiner did so once, and requests were lost for seconds after every join). The engine
# now builds it when it is made, before the agent starts.
#   host 4 converges with the others under its limit, with no stall, no watchdog expiry and no
#   refresh held up; every request sent later than the bound after its convergence is
#   answered, none twice; 1-3 converged only for the join.
source "$(dirname "$0")/lib.sh"
faults_init starved_join
trap 'st=$?; set +e; cg_cleanup; (exit $st); fault_cleanup; topo_cleanup' EXIT

faults_setup 1 2 3 4
for i in 1 2 3 4; do fault_config "$i"; done
for i in 1 2 3; do start_agent "$i"; done
require_converged 1 2 3
stream_start
sleep 1.5

before=$(convergences 1 2 3)
# Host 4 starts mute (its heartbeats dropped at the switch: the others do not hear it, so it
# cannot converge) and unlimited, so that it loads its programs at full speed (not what this
# test is about; at 1 % it would take a minute). Once it has started, the limit; then the
# switch lets its heartbeats through, and it joins under the limit.
nft_fault iifname '"h4"' ether type 0x886f
start_agent 4
cg_limit "$AGENT_PID_4" max
wait_answering 4
started=$(log_ts 4 started 0)
[ -n "$started" ] || { echo "FAIL: host 4 answers but never logged \"started\"" >&2; exit 1; }
sleep_periods 2
cg_quota 1
limited=$(now)
echo "host 4: $(state_of 4) and limited to 1 % of a core, $(calc "$limited - $started") s after it started"
fcheck "harness: host 4 had not converged before its limit" \
  test "$(count_events 4 converged 0)" = 0
# The join: from the switch letting host 4's heartbeats through until it converged. A starved
# joiner is slow to take what the others gave up, so the bound counts from its convergence.
joined=$(now)
nft_clear
fcheck "host 4 converged with 1-3 under its limit (20 s)" wait_converged_as 1,2,3,4 20 1 2 3 4
fault_span join "$joined" - "$(log_ts 4 converged "$joined")"
sleep_periods 15 # its first quiet scans, orphan check and filter upkeep, still under the limit
echo "host 4: $(count_events 4 stalled "$limited") stalls, $(count_events 4 watchdog_expired "$limited") watchdog expiries, $(count_log 4 'held up for' "$limited") refreshes held up"
fcheck "host 4: no stall under its limit" test "$(count_events 4 stalled "$limited")" = 0
fcheck "host 4: its watchdog never expired" test "$(count_events 4 watchdog_expired "$limited")" = 0
fcheck "host 4: no refresh held up" test "$(count_log 4 'held up for' "$limited")" = 0
fcheck "host 4 converged once" test "$(count_events 4 converged 0)" = 1
after=$(convergences 1 2 3)
echo "convergences of 1-3: $before -> $after"
fcheck "1-3 converged once each, for the join" deltas_within "$(deltas "$before" "$after")" 1
cg_unlimit
stream_stop
faults_report
