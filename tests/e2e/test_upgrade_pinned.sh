#!/usr/bin/env bash
# Issue 11, defect 11: an agent of this build adopts a dataplane pinned by an earlier release
# whose map layout differs (OLD_REV, built by tests/faults/build_old.sh: before the
# established tables, nlb_conn.opened_ns and the present nlb_config). A 3-host cluster of
# that release serves 60 held connections; each host in turn gets this build's agent by a
# keep-the-dataplane restart (SIGKILL, as a crashed or upgraded agent leaves it); then a
# fourth host joins and buckets move. The connections survive all of it, and every host
# converted its pins (docs/dataplane.md, "Upgrading a pinned dataplane").
source "$(dirname "$0")/common.sh"
OLD_REV=${OLD_REV:-249a391}
rc=0
OLD_BUILD=$("$NLB_ROOT/tests/faults/build_old.sh" "$OLD_REV") || rc=$?
if ((rc == 2)); then # no history to build it from: skipped (ctest SKIP_RETURN_CODE)
  echo "SKIP: upgrade_pinned: revision $OLD_REV is not in this clone's history" >&2
  exit 77
fi
((rc == 0)) || { echo "FAIL: no build of $OLD_REV" >&2; exit 1; }
topo_init "nlbup-$$"
for i in 1 2 3 4; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=400 # tolerance 2 s: the adopting agent verifies its programs and converts maps first
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
for i in 1 2 3 4; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
done
for i in 1 2 3; do NLB_AGENT=$OLD_BUILD/agent/daemon/nlb-agent topo_start_agent "$i"; done
wait_converged 3 30 1 2 3
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 60 --duration 150 \
  --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
sleep 1.5

for i in 1 2 3; do
  pid=$(eval echo "\$AGENT_PID_$i")
  { kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true
  sleep 0.3
  if ((i == 1)); then
    # Tables the old release did not have are created at the configured size, not the
    # default one (an earlier release's gap, 2026-12-06).
    python3 - "$TOPO_DIR/h1.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["host"]["established_connections"] = 2048
json.dump(c, open(sys.argv[1], "w"))
PY
  fi
  topo_start_agent "$i"
  wait_converged 3 20 1 2 3 || fail "host $i: no convergence after its upgrade"
  check "host $i: converted the connection table the old release pinned" \
    grep -Eq 'dataplane_migrated.*map=nlb_conns4' "$TOPO_DIR/h$i.log"
  check "host $i: converted the state (bucket maps)" \
    grep -Eq 'dataplane_migrated.*map=nlb_state' "$TOPO_DIR/h$i.log"
  check "host $i: adopted, not attached afresh" grep -Eq 'attached.*adopted=true' "$TOPO_DIR/h$i.log"
done
size=$(nlbadm_h 1 --json stats | json 'd["connection_tables"]["established_size"]')
check "host 1: the established tables the old release lacked have the configured size ($size)" \
  test "$size" = 4096
copied=$(grep -h 'dataplane_migrated.*map=nlb_conns4' "$TOPO_DIR"/h[123].log |
  grep -o 'copied=[0-9]*' | awk -F= '{s += $2} END {print s + 0}')
echo "connection records carried over: $copied"
check "the held connections' records carried over (>= 60 in all)" test "$copied" -ge 60

# Buckets move: a joiner takes a share; the held connections stay where they are.
topo_start_agent 4
wait_converged 4 20 1 2 3 4
sleep 2
check "the connections were still held at the end (client still running)" kill -0 "$hold"
touch "$TOPO_DIR/stop"
wait "$hold"
check "connections open across the upgrades and the join completed" \
  test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 60
check "no connection failed" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold.json")" = 0
# Not checked: whether the old agents dropped a restarted host for a moment. OLD_REV predates
# aa0245f (a restarted peer's new stream replaces its old one at once), so an old peer waits
# for the old stream to expire; test_restart.sh checks that this build does not.
check "no half-replaced pin is left" bash -c "! ls '$TOPO_DIR'/bpffs/h*/ | grep -q '_migrated$'"
((E2E_FAILED == 0)) || cat "$TOPO_DIR/hold.json" >&2
e2e_finish
