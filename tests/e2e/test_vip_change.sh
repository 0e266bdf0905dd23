#!/usr/bin/env bash
# A live VIP change (docs/staged-config.md): cluster.vips edited on each host and reloaded,
# one host after another. Until the last host holds the new list, the old VIP is served by
# every host and the new one by none; then every host switches in one convergence: the old
# VIP leaves every host's interface and dataplane (no host answers it, none of them its
# kernel), the new IPv4 and IPv6 VIPs are on every host and balanced over all three. The
# cluster IP is kept: connections churning on it and 40 held ones see nothing, also when an
# agent is then restarted (upgraded) over its pinned dataplane. Last, an agent restarted over
# its dataplane with a VIP fewer takes that VIP's address off its interface.
source "$(dirname "$0")/common.sh"
topo_init "nlbvc-$$"
for i in 1 2 3; do topo_add_host "$i" v6; done
topo_add_client 200
HEARTBEAT_MS=100
TOLERANCE=20 # 2 s: an agent restarting over its dataplane (below) is back within it
OLD=10.10.0.101
NEW=10.10.0.102
NEW6=fd00::102
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "affinity": "none"}]'
for i in 1 2 3; do
  host_config "$i" "$rules" unicast "[\"$OLD\"]"
  topo_start_server "$i" 7000
  topo_start_agent "$i" --log-format json
done
wait_converged 3 20 1 2 3

q() { nlbadm_h "$1" --json query | json "$2"; }
answers() { # answers VIP [SOURCES]: the hosts that answered a burst to VIP, and its failures
  client burst --vip "$1" --port 7000 --sources "${2:-10.10.1.101+60}" --per-source 2 --timeout 1 |
    json 'sorted(d["answers"]), len(d["failures"])'
}
has() { [[ "$(ip -n "$TOPO-h$1" -o addr show dev eth0)" == *" $2/"* ]]; } # (grep -q: SIGPIPE)
before=$(q 1 'd["cluster"]["configuration"]["active"]')
check "before: $OLD served by every host" test "$(answers $OLD)" = "(['1', '2', '3'], 0)"
check "before: $NEW served by none" test "$(answers $NEW)" = "([], 120)"

client churn --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --rate 100 --lifetime 0.3 \
  --interval 0.1 --timeout 3 --duration 120 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/churn.json" &
churn=$!
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.161+40 --count 40 --duration 120 \
  --interval 0.2 --timeout 3 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
sleep 2

# Hosts 1 and 2 stage the new list: nothing changes anywhere.
for i in 1 2; do
  host_config "$i" "$rules" unicast "[\"$NEW\", \"$NEW6\"]"
  r=$(nlbadm_h "$i" --json reload)
  check "host $i: reload stages cluster.vips" test "$(json 'd["staged"]' <<<"$r")" = "['cluster.vips']"
done
sleep 1
check "two of three hold it: nothing switched" test "$(q 2 'd["cluster"]["configuration"]["active"]')" = "$before"
check "meanwhile $OLD is still served by every host" test "$(answers $OLD)" = "(['1', '2', '3'], 0)"
check "meanwhile $NEW is served by none" test "$(answers $NEW)" = "([], 120)"
check "meanwhile host 1 has $OLD on eth0, not $NEW" eval "has 1 $OLD && ! has 1 $NEW"

# Host 3, the last one: every host switches.
host_config 3 "$rules" unicast "[\"$NEW\", \"$NEW6\"]"
t0=$(date +%s.%N)
nlbadm_h 3 reload >/dev/null
wait_switched "$before" 15 1 2 3
took=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
echo "every host switched and settled ${took}s after the last reload"
check "every host switched and settled" switched "$before" 1 2 3
# The switch instants, from each agent's log: one convergence, not one host after another.
spread=$(cat "$TOPO_DIR"/h[123].log | python3 -c '
import json, sys
ts = [json.loads(l)["ts"] for l in sys.stdin if l.startswith("{") and "\"config_switched\"" in l]
print(len(ts), round(max(ts) - min(ts), 3) if ts else -1)')
echo "config_switched: count, spread s = $spread"
check "one switch per host, within 2 periods of each other" \
  python3 -c "n, s = '$spread'.split(); exit(not (n == '3' and 0 <= float(s) <= 0.2))"
for i in 1 2 3; do
  check "host $i: $NEW and $NEW6 on eth0, $OLD gone" eval "has $i $NEW && has $i $NEW6 && ! has $i $OLD"
done
check "$OLD: answered by no host" test "$(answers $OLD)" = "([], 120)"
check "$NEW: balanced over every host" test "$(answers $NEW)" = "(['1', '2', '3'], 0)"
check "$NEW6: balanced over every host" \
  test "$(answers $NEW6 "$(printf 'fd00::1:%d,' $(seq 1 16) | sed 's/,$//')")" = "(['1', '2', '3'], 0)"
# An agent restarted after the change (prepare-restart and SIGTERM, as a package upgrade
# does) adopts a dataplane whose VIPs sit where the change put them: it keeps them there, and
# nothing is lost.
nlbadm_h 2 prepare-restart >/dev/null
kill -TERM "$AGENT_PID_2"
wait "$AGENT_PID_2" 2>/dev/null || true
sleep 0.3
topo_start_agent 2 --log-format json
wait_converged 3 20 1 2 3 || fail "host 2: no convergence after its restart"
check "host 2 adopted its dataplane" grep -q '"adopted":true' "$TOPO_DIR/h2.log"
check "after the restart, $NEW is still balanced over every host" \
  test "$(answers $NEW)" = "(['1', '2', '3'], 0)"
sleep 1
touch "$TOPO_DIR/stop"
wait "$churn" "$hold"
echo "churn: $(cat "$TOPO_DIR/churn.json")"
echo "hold: $(cat "$TOPO_DIR/hold.json")"
check "kept VIP: every churned connection completed" \
  test "$(json 'd["failure_count"], d["opened"] == d["completed"]' <"$TOPO_DIR/churn.json")" = "(0, True)"
check "kept VIP: the 40 held connections lived through the switch" \
  test "$(json 'd["connections"], len(d["failures"])' <"$TOPO_DIR/hold.json")" = "(40, 0)"

# Host 3 restarted over its pinned dataplane with a file that lacks fd00::102 (kill -9: no
# chance to tidy up): the address its earlier agent added goes with the VIP's entry, so its
# stack answers nothing the dataplane passes it. (It is refused: its VIPs differ.)
host_config 3 "$rules" unicast "[\"$NEW\"]"
{ kill -9 "$AGENT_PID_3" && wait "$AGENT_PID_3"; } 2>/dev/null || true
topo_start_agent 3 --log-format json
wait_converged 2 20 1 2 || fail "hosts 1 and 2: no convergence without host 3"
check "host 3 took $NEW6 off eth0 at adoption" eval "! has 3 $NEW6 && has 3 $NEW"
check "host 3 logged it" grep -q '"event":"vips_removed"' "$TOPO_DIR/h3.log"
check "$NEW6: answered by hosts 1 and 2 alone, none twice" \
  test "$(answers $NEW6 "$(printf 'fd00::1:%d,' $(seq 1 16) | sed 's/,$//')")" = "(['1', '2'], 0)"
e2e_finish
