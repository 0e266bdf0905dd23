#!/usr/bin/env bash
# Metrics (docs/metrics.md): two hosts serve /metrics on 127.0.0.1:9650 in their namespaces.
# The page passes `promtool check metrics` before attach and when converged; it says 2 members,
# at least one convergence, the build version; its packet counters rise with real traffic
# and agree with `nlbadm stats --json`; /other is 404, POST 405; an oversized request head
# is closed at once and a silent client at the 5 s deadline; a taken port stops the agent
# with one line and exit 1, the interface untouched.
source "$(dirname "$0")/common.sh"
topo_init "nlbmet-$$"
for i in 1 2; do topo_add_host "$i"; done
topo_add_client 20
LISTEN=127.0.0.1:9650
PROMTOOL=${PROMTOOL:-/usr/bin/promtool}
[ -x "$PROMTOOL" ] || { echo "FAIL: $PROMTOOL missing (scripts/install-deps.sh installs prometheus)" >&2; exit 1; }

rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none"}]'
for i in 1 2; do
  host_config "$i" "$rules"
  # Host 1 starts detached (nlbadm attach later): its page must work before attach too.
  python3 - "$TOPO_DIR/h$i.json" "$LISTEN" "$i" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["metrics"] = {"listen": sys.argv[2]}
if sys.argv[3] == "1":
    del c["host"]["interface"]
json.dump(c, open(sys.argv[1], "w"))
PY
done

scrape() { # scrape I [PATH]: the page of host I
  ip netns exec "$TOPO-h$1" curl -sS --max-time 3 "http://$LISTEN${2:-/metrics}"
}
# sample PAGE NAME{LABELS}: the value of one sample (empty when absent).
sample() { awk -v k="$2" '$1 == k {print $2}' <<<"$1"; }
promtool_ok() { "$PROMTOOL" check metrics <<<"$1" >"$TOPO_DIR/promtool.out" 2>&1; }
version=$("$NLB_AGENT" --version | awk '{print $2}')

# A taken port: exit 1, one line with the address and the reason, the interface untouched.
ip netns exec "$TOPO-h2" python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 9650)); s.listen(); print("up", flush=True); time.sleep(20)' \
  >"$TOPO_DIR/squatter.out" &
squatter=$!
TOPO_PIDS+=("$squatter")
for _ in $(seq 50); do grep -qs up "$TOPO_DIR/squatter.out" && break; sleep 0.1; done
set +e
out=$(ip netns exec "$TOPO-h2" "$NLB_AGENT" --config "$TOPO_DIR/h2.json" --socket "$TOPO_DIR/x.sock" \
  --pin-dir "$TOPO_DIR/bpffs/x" --state-dir "$TOPO_DIR/state" --xdp-mode generic 2>&1 |
  grep -v '^info')
rc=${PIPESTATUS[0]}
set -e
kill "$squatter"
wait "$squatter" 2>/dev/null || true
check "port taken: exit 1" test "$rc" = 1
check "port taken: says so ($out)" test "$out" = "nlb-agent: metrics: listen $LISTEN: Address already in use"
check "port taken: interface untouched" test -z "$(ip -n "$TOPO-h2" link show eth0 | grep xdp || true)"

for i in 1 2; do topo_start_server "$i" 7000 --vip "$CLUSTER_IP"; done
topo_start_agent 1
topo_start_agent 2

# Before attach: build info, state and zeros.
page=""
for _ in $(seq 50); do page=$(scrape 1 2>/dev/null) && break; sleep 0.1; done
check "detached: promtool check metrics passes" promtool_ok "$page"
check "detached: build info $version" test "$(sample "$page" "nlb_build_info{version=\"$version\"}")" = 1
check "detached: state stopped" test "$(sample "$page" 'nlb_host_state{state="stopped"}')" = 1
check "detached: no packets yet" test "$(sample "$page" 'nlb_packets_accepted_total{rule="0"}')" = 0
check "detached: watchdog not alive" test "$(sample "$page" nlb_watchdog_alive)" = 0

check "nlbadm attach eth0" nlbadm_h 1 attach eth0
wait_converged 2 20 1 2

declare -A before
for i in 1 2; do
  page=$(scrape "$i")
  check "h$i: promtool check metrics passes" promtool_ok "$page"
  [ "$E2E_FAILED" = 0 ] || cat "$TOPO_DIR/promtool.out" >&2
  check "h$i: members 2" test "$(sample "$page" nlb_cluster_members)" = 2
  check "h$i: state converged" test "$(sample "$page" 'nlb_host_state{state="converged"}')" = 1
  check "h$i: convergences >= 1" test "$(sample "$page" nlb_convergences_total)" -ge 1
  check "h$i: last convergence took some time" python3 -c "import sys; sys.exit(0 if 0 < $(sample "$page" nlb_last_convergence_seconds) < 10 else 1)"
  check "h$i: build info $version" test "$(sample "$page" "nlb_build_info{version=\"$version\"}")" = 1
  check "h$i: watchdog alive" test "$(sample "$page" nlb_watchdog_alive)" = 1
  check "h$i: owns about half of rule 0" python3 -c "import sys; sys.exit(0 if 1000 < $(sample "$page" 'nlb_buckets_owned{rule="0"}') < 3100 else 1)"
  before[$i]=$page
done

# A silent client, measured in the background while traffic flows: closed at the deadline.
ip netns exec "$TOPO-h1" python3 - >"$TOPO_DIR/silent.out" 2>&1 <<'PY' &
import socket, time
s = socket.create_connection(("127.0.0.1", 9650)); s.settimeout(10)
t = time.monotonic()
try:
    data = s.recv(100)
except OSError:
    data = b""
print(round(time.monotonic() - t, 2), len(data))
PY
silent=$!
TOPO_PIDS+=("$silent")

# Real traffic: 100 TCP connections to the VIP, spread over both hosts.
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+20 --per-source 5)
check "traffic: 100 requests answered by both hosts" test "$(json 'sum(d["answers"].values()), len(d["answers"])' <<<"$r")" = "(100, 2)"
# A connection scan has seen them closed: a settled host scans every 2-3 s with tables this
# empty (1,000 times a scan's cost: docs/agent.md), and closed records stay 10 s.
closing_of() { json 'd["connection_tables"]["closing"]' <<<"$(nlbadm_h "$1" --json stats)"; }
for i in 1 2; do
  served=$(json "d['answers'].get('$i', 0)" <<<"$r")
  for _ in $(seq 1 16); do (($(closing_of "$i") >= served)) && break; sleep 0.5; done
done
# The settled scans run in the kernel, or copy where the kernel refuses map iterators to root.
ITER_SCAN=copy
kernel_allows_iterators && ITER_SCAN=kernel
for i in 1 2; do
  other=$((3 - i))
  served=$(json "d['answers'].get('$i', 0)" <<<"$r")
  other_served=$(json "d['answers'].get('$other', 0)" <<<"$r")
  after=$(scrape "$i")
  stats=$(nlbadm_h "$i" --json stats)
  later=$(scrape "$i")
  acc0=$(sample "${before[$i]}" 'nlb_packets_accepted_total{rule="0"}')
  acc1=$(sample "$after" 'nlb_packets_accepted_total{rule="0"}')
  acc2=$(sample "$later" 'nlb_packets_accepted_total{rule="0"}')
  accj=$(json 'd["rules"][0]["accepted"]' <<<"$stats")
  # Each connection it served is at least SYN, request and ACKs: 3 packets or more.
  check "h$i: accepted rose by >= 3 x $served connections ($acc0 -> $acc1)" test $((acc1 - acc0)) -ge $((3 * served))
  check "h$i: accepted agrees with nlbadm stats ($acc1 <= $accj <= $acc2)" test "$acc1" -le "$accj" -a "$accj" -le "$acc2"
  d0=$(sample "${before[$i]}" 'nlb_packets_dropped_total{rule="0",reason="not_owner"}')
  d1=$(sample "$after" 'nlb_packets_dropped_total{rule="0",reason="not_owner"}')
  dj=$(json 'd["rules"][0]["dropped_not_owner"]' <<<"$stats")
  check "h$i: dropped not_owner rose by >= $other_served ($d0 -> $d1)" test $((d1 - d0)) -ge "$other_served"
  check "h$i: dropped agrees with nlbadm stats" test "$d1" -le "$dj"
  rec=$(( $(sample "$after" 'nlb_connections_recorded_total{rule="0"}') - $(sample "${before[$i]}" 'nlb_connections_recorded_total{rule="0"}') ))
  check "h$i: connections recorded rose by >= $served ($rec)" test "$rec" -ge "$served"
  tracked=$(sample "$after" nlb_tracked_connections)
  # the burst's connections are closed: recorded through their 10 s grace, tracked (live) no more
  check "h$i: its settled scans run as the kernel allows ($ITER_SCAN)" \
    test "$(json 'd["connection_tables"]["scan"]' <<<"$stats")" = "$ITER_SCAN"
  closing=$(json 'd["connection_tables"]["closing"]' <<<"$stats")
  check "h$i: its $served closed connections are still recorded ($closing)" test "$closing" -ge "$served"
  age=$(json 'd["connection_tables"]["counts_age_s"]' <<<"$stats")
  check "h$i: its counts are a scan of the last seconds old ($age s)" \
    python3 -c 'import sys; assert 0 < float(sys.argv[1]) < 10' "$age"
  check "h$i: tracked connections agree with nlbadm stats ($tracked)" \
    test "$(json 'd["tracked_connections"]' <<<"$stats")" = "$tracked"
  hb0=$(sample "${before[$i]}" nlb_heartbeats_sent_total)
  hb1=$(sample "$after" nlb_heartbeats_sent_total)
  check "h$i: heartbeats sent rose ($hb0 -> $hb1)" test "$hb1" -gt "$hb0"
  check "h$i: heartbeats received rose" test "$(sample "$after" nlb_heartbeats_received_total)" -gt "$(sample "${before[$i]}" nlb_heartbeats_received_total)"
  check "h$i: members in nlbadm stats" test "$(json 'd["members"]' <<<"$stats")" = 2
  check "h$i: promtool still passes" promtool_ok "$after"
done

# HTTP edges.
check "/other is 404" test "$(ip netns exec "$TOPO-h1" curl -s -o /dev/null -w '%{http_code}' "http://$LISTEN/other")" = 404
check "POST is 405" test "$(ip netns exec "$TOPO-h1" curl -s -o /dev/null -w '%{http_code}' -X POST "http://$LISTEN/metrics")" = 405
check "content type" test "$(ip netns exec "$TOPO-h1" curl -s -o /dev/null -w '%{content_type}' "http://$LISTEN/metrics")" = "text/plain; version=0.0.4; charset=utf-8"
big=$(ip netns exec "$TOPO-h1" python3 - <<'PY'
import socket, time
s = socket.create_connection(("127.0.0.1", 9650)); s.settimeout(4)
t = time.monotonic()
try:
    s.sendall(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 16384 + b"\r\n\r\n")
except OSError:
    pass
try:
    data = s.recv(100)
except OSError:
    data = b""
print(round(time.monotonic() - t, 2), len(data))
PY
)
check "a 16 KiB request head is closed at once, unanswered ($big)" python3 -c "import sys; t, n = map(float, '$big'.split()); sys.exit(0 if t < 2 and n == 0 else 1)"
wait "$silent" || true
check "a silent client is closed at the 5 s deadline ($(cat "$TOPO_DIR/silent.out"))" python3 -c "import sys; t, n = map(float, open('$TOPO_DIR/silent.out').read().split()); sys.exit(0 if 4.5 < t < 7 and n == 0 else 1)"
check "still serving after all that" test "$(sample "$(scrape 1)" nlb_cluster_members)" = 2
e2e_finish
