#!/usr/bin/env bash
# E2E: hand-over stress. Clients open 500 TCP connections a second (each lives 0.6 s and
# talks every 0.1 s) while two hosts join and leave 20 times in all (`start`, then `drainstop`:
# what an operator does). Every bucket moves several times, connections open at every instant
# of a hand-over, including during the releasing host's last scan: each must be served by
# exactly one host from its first packet to its last (the client checks every answer comes
# from the same host; a second host's stack would reset it), and none may be reset.
source "$(dirname "$0")/common.sh"
topo_init "nlbho-$$"
for i in 1 2 3 4 5; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=100
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none"}]'
for i in 1 2 3 4 5; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
  topo_start_agent "$i" --log-format json
done
wait_converged 5 20 1 2 3 4 5

client churn --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --rate 500 --duration 120 \
  --lifetime 0.6 --interval 0.1 --timeout 3 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/churn.json" &
churn=$!
sleep 2

events=0
failed_moves=0
mark() { echo "$(date +%s.%N) $*" >>"$TOPO_DIR/events"; }
for ((round = 1; round <= ${ROUNDS:-5}; round++)); do
  for h in 4 5; do # leave: drainstop, the host stops once its connections are done
    mark "drainstop $h"
    nlbadm_h "$h" drainstop >/dev/null
    wait_host_state "$h" stopped 20 || { failed_moves=$((failed_moves + 1)) && mark "NOT stopped $h"; }
    mark "stopped $h"
    events=$((events + 1))
    sleep 0.5
  done
  members=(1 2 3)
  for h in 4 5; do # join
    members+=("$h")
    mark "start $h"
    nlbadm_h "$h" start >/dev/null
    wait_converged "${#members[@]}" 20 "${members[@]}" || { failed_moves=$((failed_moves + 1)) && mark "NOT converged with $h"; }
    mark "converged with $h"
    events=$((events + 1))
    sleep 0.5
  done
done
sleep 1
touch "$TOPO_DIR/stop"
wait "$churn"
r=$(cat "$TOPO_DIR/churn.json")
echo "churn: $(json '{k: d[k] for k in ("opened", "completed", "failure_count", "seconds", "hosts")}' <<<"$r")"
check "$events joins and leaves, each done in time" test "$events:$failed_moves" = "$((4 * ${ROUNDS:-5})):0"
grep NOT "$TOPO_DIR/events" || true
check "connections opened at about 500/s ($(json 'd["opened"]' <<<"$r") in $(json 'd["seconds"]' <<<"$r") s)" \
  test "$(json 'd["opened"] >= 350 * d["seconds"] - 500' <<<"$r")" = True
check "every host served some" test "$(json 'len(d["hosts"])' <<<"$r")" = 5
check "every connection served by one host, none reset or stalled" \
  test "$(json 'd["failure_count"]' <<<"$r")" = 0
check "every opened connection completed" test "$(json 'd["completed"] == d["opened"]' <<<"$r")" = True
if [ "$(json 'd["failure_count"]' <<<"$r")" != 0 ]; then # when, against the moves
  python3 - "$TOPO_DIR" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
lines = [(f["at"], f"client: {f['source']} {f['error']}")
         for f in json.load(open(os.path.join(d, "churn.json")))["failures"]]
lines += [(float(l.split()[0]), "test: " + l.split(None, 1)[1].strip())
          for l in open(os.path.join(d, "events"))]
for path in glob.glob(os.path.join(d, "h*.log")):
    for l in open(path):
        try:
            e = json.loads(l)
        except ValueError:
            continue
        if not e["event"].startswith("host_") and e["event"] != "map_received":
            lines.append((e["ts"], f"{os.path.basename(path)}: {e['event']} {e.get('detail', '')}"))
first = min(t for t, w in lines if w.startswith("client"))
for t, what in sorted(lines):
    if first - 3 <= t <= first + 3:
        print(f"{t:.3f} {what}")
PY
fi
e2e_finish
