#!/usr/bin/env bash
# Issue 12, load feedback (docs/load-feedback.md): 3 hosts, real TCP servers, clients opening
# 200 connections a second; each connection lives until the server answers its one request.
#   connections: host 2's server is made slow (its connections live 3 times as long): its
#     effective weight falls until the hosts' active connections (counted by `ss` in each
#     host, not by nlb) are within 15 % of each other; steady, the allocation changes at most
#     twice a minute; the cause goes, host 2 takes all of its share back within 50 s.
#   exec: a second rule whose metric is a command printing a number (run as nobody): the host
#     whose command reports three times the others' falls to about a third of its weight.
source "$(dirname "$0")/common.sh"
topo_init "nlbe-lf-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=100
metrics=$(mktemp -d /tmp/nlb-lf-metrics.XXXXXX)
chmod 755 "$metrics"
trap 'rm -rf "$metrics"; topo_cleanup' EXIT
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none",
         "load_feedback": {"metric": "connections", "interval_ms": 1000, "sensitivity": 0.1}},
        {"vip": "all", "ports": [7001, 7001], "protocol": "tcp", "mode": "multiple", "affinity": "none",
         "load_feedback": {"metric": "exec", "command": ["/bin/cat", "METRIC"], "interval_ms": 500}}]'
for i in 1 2 3; do
  echo 0.3 >"$TOPO_DIR/delay$i"
  echo 100 >"$metrics/load$i"
  chmod 644 "$metrics/load$i"
  host_config "$i" "${rules//METRIC/$metrics/load$i}"
  topo_start_server "$i" 7000 7001 --delay-file "$TOPO_DIR/delay$i"
  topo_start_agent "$i"
done
wait_converged 3 20 1 2 3

weight() { # weight HOST RULE: the effective weight host HOST publishes for RULE
  nlbadm_h "$1" --json query | json "[r['effective_weight'] for r in d['load_feedback'] if r['rule'] == $2][0]"
}
changes() { cat "$TOPO_DIR"/h[123].log | grep -c 'load_weight_changed.*rule=0 ' || true; }
active() { connections_balanced "$1" 7000 1 2 3; } # within 15 % over $1 seconds

client churn --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --rate 200 --lifetime 0.01 \
  --interval 0.01 --timeout 5 --duration 260 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/churn.json" &
churn=$!
sleep 15
w="$(weight 1 0) $(weight 2 0) $(weight 3 0)"
echo "equal servers, after 15 s: effective weights $w, $(changes) change(s)"
check "equal servers: every weight within the sensitivity of 50" \
  python3 -c 'import sys; sys.exit(0 if all(int(w) >= 45 for w in sys.argv[1:]) else 1)' $w
check "equal servers: at most one move and its return in 15 s" test "$(changes)" -le 2

# A staged change (docs/staged-config.md) begins on host 2 while its weights are 50; the
# others stage it once feedback has moved them (below).
stage() { # stage HOST: a cluster-wide key changed in its file, reloaded
  sed -i 's/"cleanup_delay_s": 30/"cleanup_delay_s": 31/' "$TOPO_DIR/h$1.json"
  nlbadm_h "$1" reload >/dev/null
}
active_before=$(nlbadm_h 1 --json query | json 'd["cluster"]["configuration"]["active"]')
stage 2

# Both rules' causes at once (rule 1 moves only on its own metric, rule 0's checks count only
# its own moves): host 2's server becomes three times as slow, and on rule 1 host 2's command
# says three times the others' load.
echo 0.9 >"$TOPO_DIR/delay2"
cause=$SECONDS
echo 300 >"$metrics/load2"
sleep 20 # exec: a coarse move within a few intervals, the fine one 28 intervals (14 s) later
w1=$(weight 1 1) w2=$(weight 2 1) w3=$(weight 3 1)
echo "exec metric: effective weights of rule 1: $w1 $w2 $w3"
# A third is 17: coarse moves stop within 5 of it, a fine one comes within 10 % of it.
check "exec: host 2's weight fell to about a third (a level, compared as it is)" \
  bash -c "((w = $w2, w >= 12 && w <= 22))"
check "exec: hosts 1 and 3 keep theirs" test "$w1 $w3" = "50 50"
# The switch to the set staged on host 2 before its weight fell: the engine must run the
# weight feedback set since (about a third: 4096 x 17/117 buckets), not the one the staged
# set carried (50: a third of them, 1365).
stage 1
stage 3
wait_switched "$active_before" 10 1 2 3
check "the staged set switched on every host" switched "$active_before" 1 2 3
owned=$(nlbadm_h 2 --json query | json 'd["rules"][1]["buckets_owned"]')
check "after the switch host 2 keeps the weight feedback set ($owned buckets of rule 1)" \
  test "$owned" -lt 1000
echo 100 >"$metrics/load2"
# Rule 0 (an interval of 1 s): coarse moves within a few seconds of its cause (the last of
# them up to 15 s after it, as the filter and the connections it counts catch up), the fine
# one 28 intervals after the last of them: settled once 25 s pass without a move, which must
# come within 75 s of the cause. The steady count below starts there.
quiet=$SECONDS seen=$(changes)
while ((SECONDS - quiet < 25 && SECONDS - cause < 75)); do
  sleep 1
  n=$(changes)
  ((n == seen)) || seen=$n quiet=$SECONDS
done
w2=$(weight 2 0)
echo "host 2's effective weight with a slow server: $w2 (1 and 3: $(weight 1 0), $(weight 3 0))," \
  "no move for $((SECONDS - quiet)) s, $((SECONDS - cause)) s after the cause"
check "settled: 25 s without a move within 75 s of the cause" test $((SECONDS - quiet)) -ge 25
# A third (17) if connections lived exactly 0.3 s and 0.9 s; each also spends the same few
# milliseconds connecting, which the slow host's third does not divide: 20-22 here.
check "host 2's weight fell (to about a third)" test "$w2" -le 25
# Counted over 30 s: over 10 s, ~20 connections a host living 0.3-0.9 s are ±7 % noise per
# host, which alone puts 3 hosts' max/min beyond 1.15 in one window of five or so.
before=$(changes) t0=$SECONDS
check "the hosts' active connections are within 15 % of each other" active 30
after=$(changes) took=$((SECONDS - t0))
echo "weight changes of rule 0 over $took steady seconds: $((after - before)); host 2 at $(weight 2 0)"
check "steady: at most twice a minute" test $((after - before)) -le $(((took * 2 + 59) / 60))
w2=$(weight 2 1) # over 30 s since its command said 100 again
echo "exec metric back to 100: host 2's weight $w2"
check "exec: host 2 back to its weight" test "$w2" -ge 45

echo 0.3 >"$TOPO_DIR/delay2" # the cause goes
# Coarse moves up as the filter lets the slow spell go; what they leave within the
# sensitivity (45 of 50) goes once host 2 is the cheapest three updates running: all of it
# within 50 s (10-18 s in three runs).
t0=$SECONDS
while w2=$(weight 2 0) && ((w2 < 50 && SECONDS - t0 < 50)); do sleep 1; done
echo "host 2's effective weight once fast again: $w2, after $((SECONDS - t0)) s"
echo "host 2's moves of rule 0:"
grep 'load_weight_changed.*rule=0 ' "$TOPO_DIR/h2.log" | sed 's/^/  /' || true
check "host 2 took its share back" test "$w2" -eq 50
check "balanced again within 15 %" active 20
touch "$TOPO_DIR/stop"
wait "$churn"
check "every connection was answered" test "$(json 'd["failure_count"]' <"$TOPO_DIR/churn.json")" = 0
echo "churn: $(cat "$TOPO_DIR/churn.json" | head -c 300)"

errors=$(nlbadm_h 2 --json query | json "[r.get('error') for r in d['load_feedback'] if r.get('error')]")
check "exec: the command ran as nobody and reported (no error: $errors)" test "$errors" = "[]"
((E2E_FAILED == 0)) || grep -h 'load_weight_changed.*rule=0 ' "$TOPO_DIR"/h[123].log >&2
e2e_finish
