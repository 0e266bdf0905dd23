#!/usr/bin/env bash
# E2E 10 and the agent's edges: a bad config, a missing interface or missing privileges give
# one clear line and a non-zero exit with the interface untouched; nlbadm attach / detach add
# and remove everything (XDP, VIPs, pins) and attach twice changes nothing;
# suspend / resume / stop / start show in `query --json`; SIGTERM makes the others converge
# at once; nlbadm without an agent exits 3; nlb-agent --release-dataplane takes down what a
# killed agent left pinned.
source "$(dirname "$0")/common.sh"
topo_init "nlbe10-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 20
HEARTBEAT_MS=200

# agent_once ARGS...: host 1's agent on h1.json, with a socket and pin directory of its own,
# run until it exits: what it printed in $out, its exit status in $rc.
agent_once() {
  set +e
  out=$(ip netns exec "$TOPO-h1" "$NLB_AGENT" --config "$TOPO_DIR/h1.json" --socket "$TOPO_DIR/x.sock" \
    --pin-dir "$TOPO_DIR/bpffs/x" "$@" 2>&1)
  rc=$?
  set -e
}

# Bad config: exit 2, one line naming the key, nothing changed on the interface.
topo_host_config 1 '{"cluster": {"ip": "10.10.0.100", "heartbeat_ms": 5},
  "host": {"priority": 1, "dedicated_ip": "10.10.0.11", "interface": "eth0"}}'
agent_once --state-dir "$TOPO_DIR/state"
check "bad config: exit 2" test "$rc" = 2
check "bad config: one line naming the key ($out)" python3 -c 'import sys; s=sys.argv[1]; sys.exit(0 if s.count("\n") == 0 and "cluster.heartbeat_ms" in s else 1)' "$out"
check "bad config: interface untouched" test -z "$(ip -n "$TOPO-h1" link show eth0 | grep xdp || true)"

# A key file that cannot be used is a bad config too: exit 2, named, before the attach (it
# was found by the attach, with the XDP program on the interface already, and exited 1).
topo_host_config 1 '{"cluster": {"ip": "10.10.0.100", "key_file": "'"$TOPO_DIR"'/missing.key"},
  "host": {"priority": 1, "dedicated_ip": "10.10.0.11", "interface": "eth0"}}'
set +e
out=$(ip netns exec "$TOPO-h1" strace -f -e trace=bpf -o "$TOPO_DIR/badkey.strace" "$NLB_AGENT" \
  --config "$TOPO_DIR/h1.json" --socket "$TOPO_DIR/x.sock" --pin-dir "$TOPO_DIR/bpffs/x" \
  --state-dir "$TOPO_DIR/state" 2>&1)
rc=$?
set -e
check "missing key file: exit 2" test "$rc" = 2
check "missing key file: one line naming the key ($out)" python3 -c 'import sys; s=sys.argv[1]; sys.exit(0 if s.count("\n") == 0 and "cluster.key_file" in s else 1)' "$out"
check "missing key file: nothing loaded, nothing attached" test "$(grep -c 'BPF_PROG_LOAD\|BPF_LINK_CREATE' "$TOPO_DIR/badkey.strace")" = 0

# A pushed configuration that is there but cannot be read: exit 2, says so (it ran the file's
# rules and timing instead, where the cluster runs the pushed ones).
host_config 1 "" unicast "[]"
mkdir -p "$TOPO_DIR/state-unreadable"
ln -s pushed.json "$TOPO_DIR/state-unreadable/pushed.json" # a loop: ELOOP
agent_once --state-dir "$TOPO_DIR/state-unreadable"
check "unreadable pushed.json: exit 2" test "$rc" = 2
check "unreadable pushed.json: says so ($out)" \
  python3 -c 'import sys; sys.exit(0 if "pushed.json: cannot read it" in sys.argv[1] else 1)' "$out"

# One that is no JSON (a damaged disk, a hand edit): exit 2, one line of valid UTF-8 that
# names both files, as for one that cannot be read.
mkdir -p "$TOPO_DIR/state-damaged"
printf '{"vips": "",\n "rules": \xe9 }' >"$TOPO_DIR/state-damaged/pushed.json"
agent_once --state-dir "$TOPO_DIR/state-damaged"
check "damaged pushed.json: exit 2" test "$rc" = 2
check "damaged pushed.json: one line naming both files, the place ($out)" python3 - "$out" "$TOPO_DIR" <<'PY'
import sys
s, d = sys.argv[1], sys.argv[2]
s.encode("utf-8", "strict")  # surrogateescape'd bytes (the file's \xe9) would raise here
sys.exit(0 if s.count("\n") == 0 and s.startswith(f"nlb-agent: {d}/state-damaged/pushed.json: line 2, column")
         and f"{d}/h1.json" in s else 1)
PY

# Missing interface: exit 1, says which.
host_config 1 "" unicast "[]"
sed -i 's/"interface": "eth0"/"interface": "eth9"/' "$TOPO_DIR/h1.json"
agent_once --state-dir "$TOPO_DIR/state"
out=$(grep -v '^info' <<<"$out" || true)
check "no such interface: exit 1" test "$rc" = 1
check "no such interface: says so ($out)" python3 -c 'import sys; sys.exit(0 if "attach eth9: no such interface" in sys.argv[1] else 1)' "$out"

# Another XDP program on the interface: exit 1, says so, and leaves the pin directory as it
# found it (no maps pinned, no directory: their memory, and their sizes, which a later attach
# would have taken over the configured ones).
sed -i 's/"interface": "eth9"/"interface": "eth0"/' "$TOPO_DIR/h1.json"
ip -n "$TOPO-h1" link set eth0 xdpgeneric obj "$BUILD/bpf/bare.bpf.o" sec xdp
agent_once --state-dir "$TOPO_DIR/state" --xdp-mode generic
out=$(grep -v '^info' <<<"$out" || true)
ip -n "$TOPO-h1" link set eth0 xdpgeneric off
check "another XDP program: exit 1" test "$rc" = 1
check "another XDP program: says so ($out)" python3 -c 'import sys; sys.exit(0 if "attach eth0: another XDP program" in sys.argv[1] else 1)' "$out"
check "another XDP program: nothing pinned ($(ls "$TOPO_DIR/bpffs/x" 2>&1 | tr '\n' ' '))" \
  test ! -e "$TOPO_DIR/bpffs/x"

# An MTU below what a map transfer's frames need (1,288 bytes): exit 1, says so, and leaves
# the interface as it found it (no program, nothing pinned).
ip -n "$TOPO-h1" link set eth0 mtu 1200
agent_once --state-dir "$TOPO_DIR/state" --xdp-mode generic
out=$(grep -v '^info' <<<"$out" || true)
xdp_left=$(ip -n "$TOPO-h1" link show eth0 | grep -c xdp || true)
ip -n "$TOPO-h1" link set eth0 mtu 1500
check "MTU 1200: exit 1" test "$rc" = 1
check "MTU 1200: says so ($out)" python3 -c 'import sys; sys.exit(0 if "attach eth0: eth0'"'"'s MTU is 1200, below the 1288 nlb'"'"'s frames need" in sys.argv[1] else 1)' "$out"
check "MTU 1200: no program left on eth0" test "$xdp_left" = 0
check "MTU 1200: nothing pinned ($(ls "$TOPO_DIR/bpffs/x" 2>&1 | tr '\n' ' '))" \
  test ! -e "$TOPO_DIR/bpffs/x"
sed -i 's/"interface": "eth0"/"interface": "eth9"/' "$TOPO_DIR/h1.json"

# Not root: exit 1, says why.
set +e
public=$(mktemp /tmp/nlb-public-config.XXXXXX)
cp "$TOPO_DIR/h1.json" "$public" && chmod 0644 "$public"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$NLB_AGENT" --config "$public" \
  --state-dir "$TOPO_DIR/state" 2>&1)
rc=$?
set -e
rm -f "$public"
check "not root: exit 1" test "$rc" = 1
check "not root: says why ($out)" python3 -c 'import sys; sys.exit(0 if "root" in sys.argv[1] else 1)' "$out"

# nlbadm without an agent.
set +e
"$NLBADM" --socket "$TOPO_DIR/none.sock" query >/dev/null 2>&1
rc=$?
set -e
check "nlbadm without an agent: exit 3" test "$rc" = 3

# Attach and detach through nlbadm: everything in, everything out.
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "single"}]'
for i in 1 2 3; do host_config "$i" "$rules"; done
python3 - "$TOPO_DIR/h1.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); del c["host"]["interface"]; json.dump(c, open(sys.argv[1], "w"))
PY
for i in 1 2 3; do topo_start_server "$i" 7000 --vip "$CLUSTER_IP"; done
topo_start_agent 1
topo_start_agent 2 --log-format json # its event times measure the SIGTERM case below
topo_start_agent 3
wait_converged 2 20 2 3
sleep 0.5
check "nlbadm attach eth0" nlbadm_h 1 attach eth0
check "attach again changes nothing" nlbadm_h 1 attach eth0
wait_converged 3 20 1 2 3
check "attached: XDP on eth0" test -n "$(ip -n "$TOPO-h1" link show eth0 | grep -o 'prog/xdp')"
check "attached: VIP on eth0" test -n "$(ip -n "$TOPO-h1" addr show eth0 | grep "$CLUSTER_IP/32")"
# IPv4 VIPs only: the ND egress filter has nothing to do (docs/agent.md)
check "attached: no TC egress filter without an IPv6 VIP" test -z "$(ip netns exec "$TOPO-h1" tc filter show dev eth0 egress)"
check "attached: pins" test -e "$TOPO_DIR/bpffs/h1/link"
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+20 --per-source 3)
check "served by three hosts" test "$(json 'len(d["answers"])' <<<"$r")" = 3
check "nlbadm detach eth0" nlbadm_h 1 detach eth0
check "detached: no XDP" test -z "$(ip -n "$TOPO-h1" link show eth0 | grep -o 'prog/xdp' || true)"
check "detached: no VIP" test -z "$(ip -n "$TOPO-h1" addr show eth0 | grep "$CLUSTER_IP" || true)"
check "detached: no TC filter" test -z "$(ip netns exec "$TOPO-h1" tc filter show dev eth0 egress)"
check "detached: no pins" test ! -e "$TOPO_DIR/bpffs/h1"
check "detached: query says so" test "$(nlbadm_h 1 --json query | json 'd["host"]["attached"]')" = False
# Detached, a reload applies whole: query lists the file's rules, not the last attach's.
cp "$TOPO_DIR/h1.json" "$TOPO_DIR/h1.attached.json"
python3 - "$TOPO_DIR/h1.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["port_rules"] = []; json.dump(c, open(sys.argv[1], "w"))
PY
check "detached: a reload that drops the rule applies" nlbadm_h 1 reload
check "detached: query lists the file's rules (none)" \
  test "$(nlbadm_h 1 --json query | json 'len(d["rules"])')" = 0
cp "$TOPO_DIR/h1.attached.json" "$TOPO_DIR/h1.json"
check "detached: the rule back" nlbadm_h 1 reload
check "detached: query lists it" test "$(nlbadm_h 1 --json query | json 'len(d["rules"])')" = 1
wait_converged 2 20 2 3

# Commands and states.
check "suspend" nlbadm_h 3 suspend
check "suspended" test "$(nlbadm_h 3 --json query | json 'd["host"]["state"]')" = suspended
set +e
nlbadm_h 3 start >/dev/null 2>&1
rc=$?
set -e
check "a suspended host refuses start (exit 1)" test "$rc" = 1
check "resume" nlbadm_h 3 resume
check "resumed hosts are stopped" test "$(nlbadm_h 3 --json query | json 'd["host"]["state"]')" = stopped
check "start" nlbadm_h 3 start
wait_converged 2 20 2 3

# A stalled agent: its dataplane stops accepting once tolerance − 1 periods pass unrefreshed.
kill -STOP "$AGENT_PID_2"
sleep 1.2
alive=$(bpftool map dump pinned "$TOPO_DIR/bpffs/h2/nlb_state" 2>/dev/null | grep -o '"alive": [0-9]*' | head -1)
kill -CONT "$AGENT_PID_2"
check "stalled agent: the watchdog stopped its dataplane ($alive)" test "$alive" = '"alive": 0'
sleep 0.5
check "stalled agent: says so when it wakes up" grep -q watchdog_expired "$TOPO_DIR/h2.log"
wait_converged 2 20 2 3

# SIGTERM: the others converge at once, well before the tolerance would expire. Not within a
# tolerance of host 2's stall: a host back from a stall gives everyone a tolerance to be heard
# before it serves alone, as a starting one does.
sleep 1.1
start=$(date +%s.%N)
kill -TERM "$AGENT_PID_3"
wait_converged 1 10 2
wait "$AGENT_PID_3" || true
took=$(python3 - "$TOPO_DIR/h2.log" "$start" <<'PY'
import json, sys
start = float(sys.argv[2])
times = [e["ts"] for e in map(json.loads, open(sys.argv[1])) if e["event"] == "converged" and e["ts"] > start]
print(round(min(times) - start, 3))
PY
)
check "SIGTERM: host 2 converged alone ${took}s after host 3 left (tolerance: 1.0 s)" python3 -c "import sys; sys.exit(0 if $took < 0.6 else 1)"
check "SIGTERM: host 3 detached" test -z "$(ip -n "$TOPO-h3" link show eth0 | grep -o 'prog/xdp' || true)"

# A dataplane left pinned by an agent that will not come back (killed, then the package
# removed): --release-dataplane takes it down, from what the pins say. Refused while an agent
# answers on the socket.
release_h2() {
  ip netns exec "$TOPO-h2" "$NLB_AGENT" --release-dataplane --socket "$TOPO_DIR/h2.sock" \
    --pin-dir "$TOPO_DIR/bpffs/h2" 2>&1
}
set +e
out=$(release_h2)
rc=$?
set -e
check "release beside a running agent: exit 1 ($out)" test "$rc" = 1
check "release beside a running agent: says why" grep -q "an agent answers on" <<<"$out"
check "release beside a running agent: XDP kept" test -n "$(ip -n "$TOPO-h2" link show eth0 | grep -o 'prog/xdp')"
cmac=$(bridge -n "$TOPO-h2" fdb show dev eth0 self permanent | grep -io '^02:bf[0-9a-f:]*' || true)
check "release: the cluster MAC was in eth0's filter ($cmac)" test -n "$cmac"
kill -9 "$AGENT_PID_2"
wait "$AGENT_PID_2" 2>/dev/null || true
check "killed agent: arp_announce is still 2" \
  test "$(ip netns exec "$TOPO-h2" cat /proc/sys/net/ipv4/conf/eth0/arp_announce)" = 2
set +e
out=$(release_h2)
rc=$?
set -e
check "release after kill -9: exit 0 ($out)" test "$rc" = 0
check "release after kill -9: says what it released" grep -q "released the dataplane pinned in .* (on eth0)" <<<"$out"
check "released: no XDP" test -z "$(ip -n "$TOPO-h2" link show eth0 | grep -o 'prog/xdp' || true)"
check "released: no VIP" test -z "$(ip -n "$TOPO-h2" addr show eth0 | grep "$CLUSTER_IP" || true)"
check "released: no cluster MAC in the filter" \
  test -z "$(bridge -n "$TOPO-h2" fdb show dev eth0 self permanent | grep -i "^$cmac" || true)"
check "released: arp_announce back to the operator's 0" \
  test "$(ip netns exec "$TOPO-h2" cat /proc/sys/net/ipv4/conf/eth0/arp_announce)" = 0
check "released: no pins" test ! -e "$TOPO_DIR/bpffs/h2"
check "released: the kept arp_announce is gone" test ! -e "$TOPO_DIR/h2.sock.arp_announce"
out=$(release_h2)
check "release with nothing pinned: exit 0, says so ($out)" grep -q "no dataplane pinned" <<<"$out"
# Its interface deleted too (a NIC unplugged): the link the pins hold is defunct, no program
# can take it over, and the pins go all the same.
topo_start_agent 3
deadline=$((SECONDS + 10))
until [ -e "$TOPO_DIR/bpffs/h3/link" ] || ((SECONDS > deadline)); do sleep 0.2; done
sleep 0.5
kill -9 "$AGENT_PID_3"
wait "$AGENT_PID_3" 2>/dev/null || true
ip -n "$TOPO-h3" link del eth0
set +e
out=$(ip netns exec "$TOPO-h3" "$NLB_AGENT" --release-dataplane --socket "$TOPO_DIR/h3.sock" \
  --pin-dir "$TOPO_DIR/bpffs/h3" 2>&1)
rc=$?
set -e
check "release, its interface deleted: exit 0 ($out)" test "$rc" = 0
check "release, its interface deleted: says so" grep -q "(on a deleted interface)" <<<"$out"
check "release, its interface deleted: no pins" test ! -e "$TOPO_DIR/bpffs/h3"
e2e_finish
