#!/usr/bin/env bash
# E2E 3: under steady load, (a) kill -9 one host's agent and take its link down, (b) take
# another host's link down alone: the time until every client address is served again is
# measured and must be ≤ (tolerance + 2) × period; no client of a surviving host notices.
source "$(dirname "$0")/common.sh"
topo_init "nlbe3-$$"
for i in 1 2 3 4; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=200 # the bound scales with the period; the probe's resolution (~40 ms) does not
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "single"}]'
for i in 1 2 3 4; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
  topo_start_agent "$i"
done
wait_converged 4 20 1 2 3 4
bound=$(python3 -c "print((5 + 2) * $HEARTBEAT_MS / 1000)")

# Long-lived TCP connections of the survivors must not notice either failure.
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --proto udp)
survivors=$(json '",".join(s for s, v in d["per_source"].items() if v[0] in (1, 2))' <<<"$r")
client hold --vip "$CLUSTER_IP" --port 7000 --sources "$survivors" --count 40 --duration 60 \
  --interval 0.1 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!

failover() { # name, action...: runs the action under a probe, prints the recovery time
  local name=$1
  shift
  rm -f "$TOPO_DIR/mark"
  client probe --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --duration 5 \
    --interval 0.01 --timeout 0.03 --mark-file "$TOPO_DIR/mark" >"$TOPO_DIR/probe-$name.json" &
  local probe=$!
  sleep 1
  date +%s.%N >"$TOPO_DIR/mark.new" && mv "$TOPO_DIR/mark.new" "$TOPO_DIR/mark"
  "$@"
  wait "$probe"
  local rec
  rec=$(json 'd["recovery_s"]' <"$TOPO_DIR/probe-$name.json")
  echo "$name: recovery ${rec}s (bound ${bound}s), $(json 'd["affected_sources"]' <"$TOPO_DIR/probe-$name.json") sources affected," \
    "$(json 'd["isolated_failures"]' <"$TOPO_DIR/probe-$name.json") isolated timeouts"
  check "$name: a client lost its host" test "$(json 'd["affected_sources"] > 0' <"$TOPO_DIR/probe-$name.json")" = True
  check "$name: every client served again within the bound" \
    python3 -c "import sys; sys.exit(0 if $rec != None and $rec <= $bound else 1)"
}

kill_host4() {
  { kill -9 "$AGENT_PID_4" && wait "$AGENT_PID_4"; } 2>/dev/null || true
  ip -n "$TOPO-h4" link set eth0 down
}
failover kill9 kill_host4
wait_converged 3 20 1 2 3
failover linkdown ip -n "$TOPO-h3" link set eth0 down
wait_converged 2 20 1 2
q=$(nlbadm_h 1 --json query)
check "host 1 sees members [1, 2]" test "$(json 'sorted(d["cluster"]["members"])' <<<"$q")" = "[1, 2]"

touch "$TOPO_DIR/stop"
wait "$hold"
check "survivors' long-lived connections all completed" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold.json")" = 0
check "40 long-lived connections" test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 40
e2e_finish
