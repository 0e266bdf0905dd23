#!/usr/bin/env bash
# E2E: health probes (docs/health.md). Three hosts, each with a real service (port 7000, TCP
# and UDP) and a separate health endpoint (port 8080) that an http probe checks; host 3 also
# has an exec probe (run as nobody) that fails while a flag file exists.
#  - host 2's servers die -> its share moves to hosts 1 and 3 within fall x (interval +
#    timeout) + 2 heartbeat periods (plus the polling's own slack); clients from 100 sources
#    are all answered, none twice, none by host 2; the servers come back -> so does its share;
#  - the exec probe fails -> host 3 drains; passes -> it comes back;
#  - an operator's drain stays while the probe is up;
#  - every health endpoint dies (the service stays) -> panic mode: all three serve, query
#    says panic, the log says panic_started; endpoints back -> panic ends.
source "$(dirname "$0")/common.sh"
topo_init "nlbhp-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=100
INTERVAL_MS=200 TIMEOUT_MS=100 RISE=2 FALL=2
BOUND_MS=$((FALL * (INTERVAL_MS + TIMEOUT_MS) + 2 * HEARTBEAT_MS))
# nlbadm and python on a 2-core machine shared with builds: what the polling itself may add.
SLACK_MS=1500
FLAGS=$TOPO_DIR/flags
mkdir -m 755 "$FLAGS"
chmod 711 "$TOPO_DIR" # nobody (the exec probe) reaches $FLAGS, nothing else

rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
probe_http="{\"name\": \"web\", \"type\": \"http\", \"url\": \"http://127.0.0.1:8080/healthz\",
  \"interval_ms\": $INTERVAL_MS, \"timeout_ms\": $TIMEOUT_MS, \"rise\": $RISE, \"fall\": $FALL, \"ports\": [7000]}"
probe_exec="{\"name\": \"flag\", \"type\": \"exec\", \"command\": [\"/bin/sh\", \"-c\", \"! test -e $FLAGS/h3-down\"],
  \"user\": \"nobody\", \"interval_ms\": $INTERVAL_MS, \"timeout_ms\": $TIMEOUT_MS, \"rise\": $RISE, \"fall\": $FALL}"
for i in 1 2 3; do
  host_config "$i" "$rules"
  probes=$probe_http
  [ "$i" != 3 ] || probes="$probe_http, $probe_exec"
  # host_config's document plus the health key.
  python3 - "$TOPO_DIR/h$i.json" "{\"probes\": [$probes]}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["health"] = json.loads(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
done

declare -A SERVICE HEALTH
start_service() { topo_start_server "$1" 7000 --vip "$CLUSTER_IP"; SERVICE[$1]=$!; }
start_health() { topo_start_server "$1" 8080; HEALTH[$1]=$!; }
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

for i in 1 2 3; do start_service "$i"; start_health "$i"; done
for i in 1 2 3; do topo_start_agent "$i"; done
wait_converged 3 20 1 2 3

owned() { nlbadm_h "$1" --json query | json 'd["rules"][0]["buckets_owned"]'; }
# Waits until host I owns a number of buckets of rule 0 for which EXPR (over n) holds; prints
# the milliseconds it took.
wait_owned() {
  local i=$1 expr=$2 timeout=${3:-20} start=$EPOCHREALTIME n
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    n=$(owned "$i" 2>/dev/null || echo -1)
    if python3 -c "import sys; n=int(sys.argv[1]); sys.exit(0 if ($expr) else 1)" "$n"; then
      python3 -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" \
        "$start" "$EPOCHREALTIME"
      return 0
    fi
    sleep 0.05
  done
  echo "host $i: buckets_owned $n, not ($expr) within ${timeout}s" >&2
  echo 999999
  return 1
}
burst_ok() { # burst_ok NAME EXCLUDED_HOST|-: every request answered, none twice, none by EXCLUDED
  local name=$1 excluded=$2 r u
  r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 2)
  u=$(client burst --vip "$CLUSTER_IP" --port 7000 --proto udp --sources 10.10.1.1+100 \
      --per-source 2 --dup-wait 0.2)
  echo "$name: tcp $(json 'd["answers"]' <<<"$r") udp $(json 'd["answers"]' <<<"$u")"
  check "$name: every TCP request answered" test "$(json 'len(d["failures"])' <<<"$r")" = 0
  check "$name: every UDP request answered" test "$(json 'len(d["failures"])' <<<"$u")" = 0
  check "$name: no request answered twice" test "$(json 'd["duplicates"]' <<<"$u")" = 0
  if [ "$excluded" != - ]; then
    check "$name: nothing reaches host $excluded" \
      test "$(json "d['answers'].get('$excluded', 0)" <<<"$r")$(json "d['answers'].get('$excluded', 0)" <<<"$u")" = 00
  fi
}

probe() { nlbadm_h "$1" --json query | json 'd["rules"][0]["probe"]'; }

# Up: every probe passed rise times, every host holds its share. (The servers are Python,
# started beside the agents: on a busy machine a probe's first tries find nothing listening,
# and with every probe down the cluster serves in panic, shares and all. Wait for up first.)
for i in 1 2 3; do
  deadline=$((SECONDS + 20))
  until [ "$(probe "$i" 2>/dev/null)" = up ] || ((SECONDS > deadline)); do sleep 0.1; done
  wait_owned "$i" "n >= 1300" 20 >/dev/null || fail "host $i never took its share"
  check "host $i: probe up in query" test "$(probe "$i")" = up
done
check "query shows the probe's verdict and last result" test "$(nlbadm_h 1 --json query |
  json '[d["health"]["probes"][0][k] for k in ("name", "verdict", "last_result")]')" = "['web', 'up', 'passed']"
burst_ok "all healthy" -

# Host 2's service dies (its health endpoint with it).
stop_pid "${SERVICE[2]}"
stop_pid "${HEALTH[2]}"
ms=$(wait_owned 2 "n == 0" 20) || true
echo "host 2 drained in $ms ms (bound $BOUND_MS ms + slack $SLACK_MS ms)"
check "host 2's share left within the bound" test "$ms" -le $((BOUND_MS + SLACK_MS))
wait_owned 1 "n >= 2000" 10 >/dev/null || fail "host 1 did not take half"
wait_owned 3 "n >= 2000" 10 >/dev/null || fail "host 3 did not take half"
check "host 2: probe down in query" test "$(probe 2)" = down
check "host 2 logged probe_down" grep -q "probe_down" "$TOPO_DIR/h2.log"
burst_ok "host 2's service dead" 2

start_service 2
start_health 2
ms=$(wait_owned 2 "n >= 1300" 20) || true
echo "host 2 took its share back in $ms ms"
check "host 2's share came back" test "$ms" -lt 999999
burst_ok "host 2 back" -

# The exec probe (as nobody) on host 3.
touch "$FLAGS/h3-down"
ms=$(wait_owned 3 "n == 0" 20) || true
check "the exec probe drained host 3 within the bound" test "$ms" -le $((BOUND_MS + SLACK_MS))
check "host 3's exec probe is down" test "$(nlbadm_h 3 --json query |
  json '[p["verdict"] for p in d["health"]["probes"] if p["name"] == "flag"][0]')" = down
burst_ok "host 3's exec probe failing" 3
rm "$FLAGS/h3-down"
wait_owned 3 "n >= 1300" 20 >/dev/null || fail "host 3 did not come back after its exec probe"

# An operator's drain wins over a probe's up.
check "drain host 1's rule" nlbadm_h 1 drain 7000
wait_owned 1 "n == 0" 20 >/dev/null || fail "host 1 did not drain"
sleep 1
check "host 1 stays drained while its probe is up" test "$(owned 1)" = 0
check "host 1's probe is up meanwhile" test "$(probe 1)" = up
check "enable host 1's rule" nlbadm_h 1 enable 7000
wait_owned 1 "n >= 1300" 20 >/dev/null || fail "host 1 did not come back after enable"

# Every health endpoint dies, the service stays: panic, not a black hole.
for i in 1 2 3; do stop_pid "${HEALTH[$i]}"; done
deadline=$((SECONDS + 20))
until [ "$(nlbadm_h 1 --json query | json 'd["health"]["panic"]')" = True ] || ((SECONDS > deadline)); do
  sleep 0.1
done
for i in 1 2 3; do
  check "host $i: query says panic" test "$(nlbadm_h "$i" --json query | json 'd["rules"][0]["panic"]')" = True
  wait_owned "$i" "n >= 1300" 20 >/dev/null || fail "host $i does not serve its share in panic mode"
  check "host $i logged panic_started" grep -q "panic_started" "$TOPO_DIR/h$i.log"
done
burst_ok "panic mode" -
check "stats: the probe's checks counted" test "$(nlbadm_h 1 --json stats |
  json 'd["probes"][0]["checks"]["failed"] > 0 and not d["probes"][0]["up"]')" = True

for i in 1 2 3; do start_health "$i"; done
deadline=$((SECONDS + 20))
until [ "$(nlbadm_h 1 --json query | json 'd["health"]["panic"]')" = False ] || ((SECONDS > deadline)); do
  sleep 0.1
done
check "panic ended once the endpoints answer" test "$(nlbadm_h 1 --json query | json 'd["health"]["panic"]')" = False
check "host 1 logged panic_ended" grep -q "panic_ended" "$TOPO_DIR/h1.log"
for i in 1 2 3; do
  wait_owned "$i" "n >= 1300" 20 >/dev/null || fail "host $i lost its share after panic"
done
burst_ok "after panic" -
e2e_finish
