#!/usr/bin/env bash
# Mixed versions (issue 10, rule 10): a keyed 3-host cluster of the release before wire format
# 1.2 (OLD_REV, built from this repository's history by build_old.sh) is upgraded to this
# build one host at a time under the request stream: each old agent stops (SIGTERM: it
# leaves, its buckets move at once) and this build's agent starts in its place.
#   zero requests answered twice over the whole run; after every step every request is
#   answered again within the bound; the mixed cluster converges with all 3 members (the
#   new agents speak 1.1 to an old peer); once every member is new, the new rules are in
#   force: the second path carries frames on every host.
source "$(dirname "$0")/lib.sh"
OLD_REV=${OLD_REV:-249a391} # build_old.sh's default
rc=0
OLD_BUILD=$("$FAULTS_DIR/build_old.sh" "$OLD_REV") || rc=$?
if ((rc == 2)); then # no history to build it from: skipped (ctest SKIP_RETURN_CODE), not passed
  echo "SKIP: rolling_upgrade: revision $OLD_REV is not in this clone's history" >&2
  exit 77
fi
((rc == 0)) || { echo "FAIL: no build of $OLD_REV" >&2; exit 1; }
faults_init rolling_upgrade
faults_setup 1 2 3
key=$(fault_key cluster)
for i in 1 2 3; do
  fault_config "$i" "$key"
  NLB_AGENT=$OLD_BUILD/agent/daemon/nlb-agent start_agent "$i"
done
wait_converged_as 1,2,3 30 1 2 3 || { echo "FAIL: no 3-host cluster of $OLD_REV to start from" >&2; exit 1; }
fcheck "the cluster runs $OLD_REV's agent (no second path)" \
  test "$(query_field 1 'd["host"].get("second_path", "none")')" = none
stream_start
sleep 1.5

upgrade() { # upgrade I: the old agent leaves, this build's agent takes its place
  local i=$1 pid
  pid=$(eval echo "\$AGENT_PID_$i")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  start_agent "$i"
}
for i in 1 2 3; do
  t=$(now)
  upgrade "$i"
  fault_agents_started "upgrade_h$i" "$t" -- "$i"
  sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 1")"
  fcheck "after host $i: converged [1, 2, 3]" wait_converged_as 1,2,3 10 1 2 3
done
sleep_periods 3
for i in 1 2 3; do
  fcheck "host $i: this build ($(query_field "$i" 'd["version"]' stats))" \
    test "$(query_field "$i" 'd["host"].get("second_path", "none")')" != none
  fcheck "host $i: frames received by the second path" \
    test "$(query_field "$i" 'int(d["heartbeats"]["contact_received"] > 0)' stats)" = 1
done
stream_stop
faults_report
