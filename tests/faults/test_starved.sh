#!/usr/bin/env bash
# Fault "starved": host 4's agent gets a twentieth of a core, as a container's CPU limit or a
# noisy neighbour would leave it, and then its connection tables fill (524,288 records, put
# there by nlb-fill-conns).
# 1. Its next quiet scan, 150-200 ms of CPU here, takes seconds: it runs beside the agent's
#    loop, which goes on sending and reading heartbeats and refreshing the watchdog.
#      no refresh held up, no stall, no convergence; the watchdog's word stays 1; the scan
#      finished (stats count the records) and the 4 stay converged.
# 2. Host 5 joins: host 4 gives it buckets, and the scan that decides which of them still
#    hold connections runs on the loop (the engine decides on it), for seconds; the agent
#    neither sends nor reads heartbeats meanwhile, and the others take its buckets after
#    tolerance periods. Its watchdog expires; whichever comes first after the scan, the
#    refresh (its deadline counts from the engine's last look, before the scan: "held up"
#    in the log) or the engine's next input (a stall), must leave the dataplane stopped
#    rather than revive it on maps the cluster has left behind, until the engine has found
#    the stall and converged again. Then the limit is lifted.
#      zero requests answered twice; host 4 logs its watchdog's expiry and its stall (its
#      loop waited for a CPU through most of it: starved, not stopped or busy); the
#      watchdog's word, watched from outside the agent, stays 0 from its expiry until host
#      4 converged again; within (tolerance + 2) periods + slack of the lifted limit every
#      request is answered again; all 5 converged again afterwards. Should host 4 rejoin
#      while still starved, the same holds from the end of that join.
source "$(dirname "$0")/lib.sh"
faults_init starved

WATCH_PID=""
# The limit and the watcher go first; then the harness's own cleanup, with the exit status
# (errexit off: under it, `(exit $st)` of a failed run would end the trap before the cleanup).
trap 'st=$?; set +e; [ -z "$WATCH_PID" ] || kill "$WATCH_PID" 2>/dev/null; cg_cleanup; (exit $st); fault_cleanup; topo_cleanup' EXIT

faults_setup 1 2 3 4 5
for i in 1 2 3 4 5; do fault_config "$i"; done
for i in 1 2 3 4; do start_agent "$i"; done
require_converged 1 2 3 4
stream_start
sleep 1.5

# The limit first: a scan of the full tables comes within 2 s of the fill (quiet scans of
# empty tables are 2 s apart), and the next one a minute later (spaced by its cost).
# The watchdog's word, watched from outside the agent: between its expiry and the host's
# next convergence nothing may revive it.
python3 "$TOOLS/nlb_watch_alive.py" "$TOPO_DIR/bpffs/h4" "$TOPO_DIR/alive.stop" 100 \
  "$(((TOLERANCE - 1) * HEARTBEAT_MS * 1000000))" >"$TOPO_DIR/alive4" &
WATCH_PID=$!
sleep 0.2
starved=$(now)
before=$(convergences 1 2 3 4)
cg_limit "$AGENT_PID_4" 5
"$BUILD/tests/tools/nlb-fill-conns" "$TOPO_DIR/bpffs/h4" >"$TOPO_DIR/fill4.json"
echo "host 4's opening tables filled: $(cat "$TOPO_DIR/fill4.json")"

# 1: until a quiet scan saw the full tables (bounded: 30 s).
scanned=0
for _ in $(seq 1 60); do
  scanned=$(query_field 4 'd["connection_tables"]["opening"]' stats)
  [ "$scanned" = none ] || ((scanned < 500000)) || break
  sleep 0.5
done
quiet_end=$(now)
fault_span quiet-scan "$starved" strict
background=$(query_field 4 'd["connection_tables"]["background_scans"]' stats)
echo "host 4's background scans: $background, records seen: $scanned, after $(calc "$quiet_end - $starved") s"
fcheck "host 4: a quiet scan saw the full tables within 30 s" test "$scanned" != none -a "$scanned" -ge 500000
fcheck "host 4: its scans ran in the background" test "$background" != none -a "$background" -gt 0
fcheck "host 4: no refresh held up by its quiet scan" test "$(count_log 4 'held up for' "$starved")" = 0
fcheck "host 4: no stall during its quiet scan" test "$(count_events 4 stalled "$starved")" = 0
fcheck "1-4 stayed converged, with no convergence since the limit" \
  test "$(convergences 1 2 3 4)" = "$before"
dropped=$(python3 -c 'import sys
s = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
print(sum(1 for t, v in s if float(sys.argv[2]) <= t <= float(sys.argv[3]) and v == 0))' \
  "$TOPO_DIR/alive4" "$starved" "$quiet_end")
fcheck "host 4: its dataplane kept accepting through the quiet scan" test "$dropped" = 0

# 2: host 5 joins; host 4's release scans the full tables on its loop.
joined=$(now)
start_agent 5
fault_agents_started join "$joined" -- 5
expired=0
stalled=0
for _ in $(seq 1 60); do
  expired=$(count_events 4 watchdog_expired "$joined")
  stalled=$(count_events 4 stalled "$joined")
  ((expired == 0 || stalled == 0)) || break
  sleep 0.5
done
fault_span starve "$joined"
grep '"watchdog_expired"' "$TOPO_DIR/h4.log" | head -n 1 || true
echo "host 4: $(count_log 4 'held up for' "$joined") refreshes refused as held up"
fcheck "host 4: its watchdog expired while its release's scan held it up" test "$expired" -gt 0
fcheck "host 4: it found the stall and let its buckets go" test "$stalled" -gt 0
# The records go before the limit does: in buckets host 4 gave up at the stall, they would keep
# it scanning all of them every period until it owns those buckets again.
"$BUILD/tests/tools/nlb-fill-conns" --clear "$TOPO_DIR/bpffs/h4" >/dev/null
# Host 4, its stall found, may be heard again and rejoin while still starved (the clear takes
# up to 2 s on a loaded machine): at a twentieth of a core it installs the new map tens of
# milliseconds after its peers, and requests to the buckets it takes back are lost meanwhile,
# as at any join of a host that slow. That join is an event of its own, from when host 1
# heard host 4 again; losses between the take-over's window and it still fail the test.
stall_at=$(log_ts 4 stalled "$joined")
heard=$(log_ts 1 host_joined "${stall_at:-$(now)}")
[ -z "$heard" ] || fault_span rejoin-starved "$heard"
fault_do feed -- cg_unlimit
# Read from the log once fed: every moment still starved delays host 4's rejoin, whose
# hand-over must come before the fault's bound runs out.
read -r over ran waited <<<"$(stall_cause 4 "$joined")"
fcheck "host 4's stall: starved, waiting for a CPU through most of it" \
  test -n "$over" -a -n "$waited" -a "${waited:-0}" -gt "$((${over:-0} / 2))"
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 1")"
fcheck "fed: 5 converged members again within 20 s" wait_converged_as 1,2,3,4,5 20 1 2 3 4 5
touch "$TOPO_DIR/alive.stop"
wait "$WATCH_PID" || true
# The first expiry after the limit, and host 4's first convergence after it: no 1 between.
revived=$(python3 - "$TOPO_DIR/alive4" "$joined" "$stall_at" "$TOPO_DIR/h4.log" <<'PY'
import json, sys
samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
starved, stalled = float(sys.argv[2]), float(sys.argv[3] or 0)
expired = next((t for t, v in samples if t >= starved and v == 0), None)
if expired is None or not stalled:
    print("no expiry")
    sys.exit()
back = min((e["ts"] for e in map(json.loads, (l for l in open(sys.argv[4]) if l.startswith("{")))
            if e.get("event") == "converged" and e["ts"] > stalled), default=float("inf"))
print(sum(1 for t, v in samples if expired < t < back and v == 1))
PY
)
echo "alive on host 4 between the expiry and its convergence after the stall: $revived times"
fcheck "host 4: its dataplane was not revived before it converged again" test "$revived" = 0
stream_stop
faults_report
