#!/usr/bin/env bash
# Remote control (docs/remote.md): from the client namespace (the admin box), nlbadm --cluster
# queries a 3-host cluster (3 answers), also when a host's first answer is lost, and drainstops
# one host; attach/detach are refused remotely; a wrong key, a replayed (past the two copies a
# lost answer's resends get their answer again), a stale and an oversized request are dropped
# and counted, never answered; a flood of junk datagrams delays neither heartbeats (no host lost, no
# convergence) nor local commands; a host with remote_control false never answers and its
# stack never sees the datagrams.
source "$(dirname "$0")/common.sh"
topo_init "nlbrc-$$"
for i in 1 2 3 4; do topo_add_host "$i"; done
topo_add_client 1
HEARTBEAT_MS=100

KEY=$TOPO_DIR/cluster.key
WRONG=$TOPO_DIR/wrong.key
"$NLBADM" keygen >"$KEY"
"$NLBADM" keygen >"$WRONG"
chmod 0600 "$KEY" "$WRONG"

# host_config plus the cluster key and remote_control (true|false).
remote_config() {
  host_config "$1"
  python3 - "$TOPO_DIR/h$1.json" "$KEY" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["cluster"]["key_file"] = sys.argv[2]
c["cluster"]["remote_control"] = sys.argv[3] == "true"
json.dump(c, open(sys.argv[1], "w"))
PY
}

# nlbadm on the admin box: sets rc and out (stdout); stderr in $TOPO_DIR/admin.err.
admin() {
  set +e
  ip netns exec "$TOPO-client" "$NLBADM" "$@" >"$TOPO_DIR/admin.out" 2>"$TOPO_DIR/admin.err"
  rc=$?
  set -e
  out=$(cat "$TOPO_DIR/admin.out")
}

tool() {
  ip netns exec "$TOPO-client" python3 "$NLB_ROOT/tests/tools/nlb_remote.py" "$@"
}

# Host I's remote-control counter NAME (from nlbadm stats --json on the host).
counter() {
  nlbadm_h "$1" --json stats | json "d['remote_control'].get('$2', -1)"
}

# Prints "c1 c2 c3" for counter NAME of hosts 1-3.
counters() {
  echo "$(counter 1 "$1") $(counter 2 "$1") $(counter 3 "$1")"
}

# Every element of the list "after" is exactly "before" + N.
rose_by() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
before, after, n = sys.argv[1].split(), sys.argv[2].split(), int(sys.argv[3])
sys.exit(0 if len(before) == len(after) and all(int(a) - int(b) == n for b, a in zip(before, after)) else 1)
PY
}

for i in 1 2 3; do remote_config "$i" true; done
remote_config 4 false
for i in 1 2 3; do topo_start_agent "$i"; done
wait_converged 3 20 1 2 3

# --- query of the 3-host cluster: 3 answers --------------------------------------------------
admin --json --cluster "$CLUSTER_IP" --key-file "$KEY" query
check "query: exit 0 (rc=$rc, $(cat "$TOPO_DIR/admin.err"))" test "$rc" = 0
check "query: three answers" test "$(json 'sorted(d["hosts"])' <<<"$out")" = "['1', '2', '3']"
check "query: each host answers for itself" test \
  "$(json '[d["hosts"][p]["host"]["priority"] for p in sorted(d["hosts"])]' <<<"$out")" = "[1, 2, 3]"
check "query: every host converged with 3 members" test \
  "$(json 'sorted({(h["host"]["state"], len(h["cluster"]["members"])) for h in d["hosts"].values()})' <<<"$out")" = "[('converged', 3)]"
check "query: nothing missing, no error" test "$(json '(d["missing"], d["errors"])' <<<"$out")" = "([], {})"
admin --cluster "$CLUSTER_IP" --key-file "$KEY" status
check "status (text): a heading per host" test \
  "$(grep -c '^host [123] (10\.10\.0\.1[123])$' <<<"$out")" = 3
check "remote queries are counted as answered" test "$(counters answered)" = "2 2 2"

# --- a lost answer: the bridge drops host 2's answers for 0.6 s --------------------------------
# nlbadm resends the request at a quarter of its timeout; host 2, which ran it, sends its answer
# again (before 2026-12-07: the copy was a replay and nothing more, host 2 missing, exit 3).
ip netns exec "$TOPO-br" nft -f - <<'EOF'
table bridge nlbrc_lost {
  chain forwarding { type filter hook forward priority 0; policy accept;
    iifname "h2" udp sport 2504 counter drop; }
}
EOF
again=$(counters answered_again)
( sleep 0.6; ip netns exec "$TOPO-br" nft delete table bridge nlbrc_lost ) &
heal=$!
admin --json --cluster "$CLUSTER_IP" --key-file "$KEY" --timeout 4000 query
wait "$heal"
check "lost answer: exit 0 ($(cat "$TOPO_DIR/admin.err"))" test "$rc" = 0
check "lost answer: three answers" test "$(json 'sorted(d["hosts"])' <<<"$out")" = "['1', '2', '3']"
check "lost answer: host 2 answered the copy ($again -> $(counters answered_again))" \
  test "$(counter 2 answered_again)" -gt "$(cut -d' ' -f2 <<<"$again")"
check "lost answer: ran once on each host" test "$(counters answered)" = "3 3 3"

# --- drainstop of one host through the cluster path -------------------------------------------
admin --json --cluster "$CLUSTER_IP" --key-file "$KEY" --host 2 drainstop
check "--host 2 drainstop: exit 0 ($(cat "$TOPO_DIR/admin.err"))" test "$rc" = 0
check "--host 2 drainstop: only host 2 answers" test "$(json 'sorted(d["hosts"])' <<<"$out")" = "['2']"
state=$(nlbadm_h 2 --json query | json 'd["host"]["state"]')
check "host 2 says draining or stopped ($state)" python3 -c "import sys; sys.exit(0 if '$state' in ('draining', 'stopped') else 1)"
check "hosts 1 and 3 still serve" test "$(nlbadm_h 1 --json query | json 'd["host"]["state"]')" != stopped
check "host 2 logged the remote command" grep -q 'remote_command.*drainstop' "$TOPO_DIR/h2.log"
wait_converged 2 20 1 3
admin --cluster "$CLUSTER_IP" --key-file "$KEY" --host 2 start
check "--host 2 start: exit 0" test "$rc" = 0
wait_converged 3 20 1 2 3

# --- attach / detach are local only ------------------------------------------------------------
admin --cluster "$CLUSTER_IP" --key-file "$KEY" detach eth0
check "nlbadm refuses --cluster detach (usage, exit 2)" test "$rc" = 2
r=$(tool request --cluster "$CLUSTER_IP" --key-file "$KEY" --payload '{"command": "detach", "interface": "eth0"}')
check "a signed remote detach is refused by every host" test \
  "$(json 'sorted((p, a["ok"], "local only" in a["error"]) for p, a in d["payloads"].items())' <<<"$r")" = \
  "[('1', False, True), ('2', False, True), ('3', False, True)]"
check "and every host is still attached" test \
  "$(for i in 1 2 3; do nlbadm_h "$i" --json query | json 'd["host"]["attached"]'; done | sort -u)" = True

# --- wrong key: no answer, dropped_bad_mac rises -----------------------------------------------
before=$(counters dropped_bad_mac)
answered=$(counters answered)
admin --json --cluster "$CLUSTER_IP" --key-file "$WRONG" --timeout 400 query
check "wrong key: exit 3" test "$rc" = 3
check "wrong key: no answer" test "$(json 'len(d["hosts"]) + len(d["errors"])' <<<"$out")" = 0
check "wrong key: says nobody answered" grep -q "no host of cluster $CLUSTER_IP answered" "$TOPO_DIR/admin.err"
# nlbadm sent the request three times (two resends while nobody answered).
check "wrong key: dropped_bad_mac +3 on every host ($before -> $(counters dropped_bad_mac))" \
  rose_by "$before" "$(counters dropped_bad_mac)" 3
check "wrong key: nothing answered" test "$(counters answered)" = "$answered"

# --- replay, stale, oversize (datagrams built by an independent Python implementation) ------
# A copy of a request answered gets its answer again, twice at most (a lost answer's resends);
# the fourth copy is a replay and gets nothing.
before=$(counters dropped_replay)
again=$(counters answered_again)
answered=$(counters answered)
r=$(tool request --cluster "$CLUSTER_IP" --key-file "$KEY" --copies 4)
check "replay: three answers per host for four copies" test "$(json 'sorted(d["answers"].items())' <<<"$r")" = \
  "[('1', 3), ('2', 3), ('3', 3)]"
check "replay: answered_again +2 on every host" rose_by "$again" "$(counters answered_again)" 2
check "replay: answered +1 on every host (run once)" rose_by "$answered" "$(counters answered)" 1
check "replay: dropped_replay +1 on every host" rose_by "$before" "$(counters dropped_replay)" 1
before=$(counters dropped_stale)
r=$(tool request --cluster "$CLUSTER_IP" --key-file "$KEY" --age-ms 31000 --wait 0.5)
check "stale (31 s old): no answer" test "$(json 'len(d["answers"])' <<<"$r")" = 0
r=$(tool request --cluster "$CLUSTER_IP" --key-file "$KEY" --age-ms -31000 --wait 0.5)
check "stale (31 s ahead): no answer" test "$(json 'len(d["answers"])' <<<"$r")" = 0
check "stale: dropped_stale +2 on every host" rose_by "$before" "$(counters dropped_stale)" 2
# Its sender sees only a timeout: each host says why, once (at most a line a minute).
for i in 1 2 3; do
  check "stale: host $i logged the refusal once, naming the clocks" \
    test "$(grep -c 'was refused: stamped 3[01] s .* this host.s clock' "$TOPO_DIR/h$i.log")" = 1
done
before=$(counters dropped_oversize)
r=$(tool request --cluster "$CLUSTER_IP" --key-file "$KEY" --pad 1100 --wait 0.5)
check "oversize ($(json 'd["size"]' <<<"$r") bytes): no answer" test "$(json 'len(d["answers"])' <<<"$r")" = 0
check "oversize: dropped_oversize +1 on every host" rose_by "$before" "$(counters dropped_oversize)" 1

# --- junk flood: heartbeats and local commands unaffected ----------------------------------------
received=$(counters received)
answered=$(counters answered)
lines=$(cat "$TOPO_DIR"/h[123].log | wc -l)
tool flood --cluster "$CLUSTER_IP" --count 200000 --seconds 15 >"$TOPO_DIR/flood.json" &
flood_pid=$!
TOPO_PIDS+=("$flood_pid")
sleep 0.3
slowest_ms=0
samples=0
while kill -0 "$flood_pid" 2>/dev/null && ((samples < 100)); do
  for i in 1 2 3; do
    t0=$(date +%s%N)
    q=$(nlbadm_h "$i" --json query)
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    ((ms <= slowest_ms)) || slowest_ms=$ms
    m=$(json '(d["host"]["state"], sorted(d["cluster"]["members"]))' <<<"$q")
    [ "$m" = "('converged', [1, 2, 3])" ] || fail "during the flood host $i says $m"
  done
  samples=$((samples + 1))
done
wait "$flood_pid" || true
flood=$(cat "$TOPO_DIR/flood.json")
echo "flood: $flood; $samples rounds of local queries, slowest $slowest_ms ms"
check "the flood sent its datagrams ($(json 'd["sent"]' <<<"$flood"))" test "$(json 'd["sent"] >= 50000' <<<"$flood")" = True
check "local queries were sampled during the flood" test "$samples" -ge 3
check "local nlbadm query answered within 0.5 s during the flood (slowest $slowest_ms ms)" \
  test "$slowest_ms" -lt 500
new=$(cat "$TOPO_DIR"/h[123].log | tail -n +$((lines + 1)) | grep -E 'host_left|convergence_started' || true)
check "no host lost, no convergence during the flood ($new)" test -z "$new"
got=$(counters received)
check "the flood reached every host's server ($received -> $got)" python3 - "$received" "$got" <<'PY'
import sys
sys.exit(0 if all(int(a) - int(b) >= 1000 for a, b in zip(sys.argv[2].split(), sys.argv[1].split())) else 1)
PY
check "the flood was never answered" test "$(counters answered)" = "$answered"
echo "host 1 remote_control counters: $(nlbadm_h 1 --json stats | json 'd["remote_control"]')"
admin --json --cluster "$CLUSTER_IP" --key-file "$KEY" query
check "after the flood: remote query answered by 3 hosts (rc=$rc)" test "$(json 'sorted(d["hosts"])' <<<"$out")" = "['1', '2', '3']"

# --- remote_control false: never answers, its stack never sees the datagrams ------------------
topo_start_agent 4
wait_converged 4 20 1 2 3 4
# Udp NoPorts: a datagram to 2504 that reached host 4's stack would land there (nothing
# listens). InDatagrams also counts the agents' second path (UDP 2505), which carries frames
# whenever a segment frame is late or the cluster is not settled.
udp_in() { ip netns exec "$TOPO-h4" awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $3}' /proc/net/snmp; }
stack_before=$(udp_in)
dropped_before=$(counter 4 dataplane_dropped)
admin --json --cluster "$CLUSTER_IP" --key-file "$KEY" --timeout 500 query
check "host 4 off: exit 3 (a member did not answer)" test "$rc" = 3
check "host 4 off: hosts 1-3 answer, host 4 missing" test \
  "$(json '(sorted(d["hosts"]), d["missing"])' <<<"$out")" = "(['1', '2', '3'], [4])"
check "host 4 off: named on stderr" grep -q "no answer from host 4 within 500 ms" "$TOPO_DIR/admin.err"
check "host 4 off: its server does not exist" test "$(counter 4 enabled)" = False
check "host 4 off: its dataplane dropped all 3 copies ($dropped_before -> $(counter 4 dataplane_dropped))" \
  test "$(counter 4 dataplane_dropped)" = "$((dropped_before + 3))"
check "host 4 off: its stack saw none of them (UDP to no port: $stack_before -> $(udp_in))" \
  test "$(udp_in)" = "$stack_before"
e2e_finish
