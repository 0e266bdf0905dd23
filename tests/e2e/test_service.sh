#!/usr/bin/env bash
# What systemd relies on: READY=1 only once the configured interface is attached (never when
# attach fails), RELOADING=1 / READY=1 around a reload, STOPPING=1 on SIGTERM; a reload applies
# load_weight and enabled live without resetting established connections, and refuses (one
# log line, nothing changed) a change that needs a restart or a file that does not parse.
source "$(dirname "$0")/common.sh"
topo_init "nlbsvc-$$"
for i in 1 2; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=100

rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple",
         "affinity": "none", "load_weight": 50},
        {"vip": "all", "ports": [7999, 7999], "protocol": "tcp", "mode": "multiple",
         "affinity": "none"}]'
for i in 1 2; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
done
# Host 1, which runs with the unit's capabilities below, probes its service by commands run as
# nobody (the agent changes user: CAP_SETUID, CAP_SETGID): "ok" guards the rule, so host 1
# takes no share unless it passes; "hang" guards a rule of its own (port 7999, no service)
# and never finishes, so each of its checks is killed at its timeout, in a group of another
# user's (CAP_KILL).
python3 - "$TOPO_DIR/h1.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["health"] = {"probes": [
    {"name": "ok", "type": "exec", "command": ["/bin/true"], "user": "nobody",
     "interval_ms": 200, "timeout_ms": 200, "rise": 1, "fall": 1, "ports": [7000]},
    {"name": "hang", "type": "exec", "command": ["/bin/sleep", "37.25"], "user": "nobody",
     "interval_ms": 200, "timeout_ms": 100, "rise": 1, "fall": 1, "ports": [7999]}]}
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
notify=$TOPO_DIR/notify.sock
# exec: $! is the listener itself, so the cleanup's kill reaches it (a subshell left behind
# would keep the test's output open for the listener's whole --duration).
(exec python3 "$NLB_ROOT/tests/tools/nlb_notify_listener.py" "$notify" "$TOPO_DIR/notify.log" \
  --duration 120) &
TOPO_PIDS+=($!)
for _ in $(seq 50); do [ -S "$notify" ] && break; sleep 0.1; done

# An interface that does not exist: the agent exits 1 and never says READY.
cp "$TOPO_DIR/h1.json" "$TOPO_DIR/good1.json"
sed -i 's/"interface": "eth0"/"interface": "eth9"/' "$TOPO_DIR/h1.json"
set +e
NOTIFY_SOCKET=$notify ip netns exec "$TOPO-h1" "$NLB_AGENT" --config "$TOPO_DIR/h1.json" \
  --socket "$TOPO_DIR/x.sock" --pin-dir "$TOPO_DIR/bpffs/x" --state-dir "$TOPO_DIR/state1" \
  --xdp-mode generic >/dev/null 2>&1
rc=$?
set -e
sleep 0.2
check "attach fails: exit 1" test "$rc" = 1
check "attach fails: no READY=1" test -z "$(grep READY=1 "$TOPO_DIR/notify.log" || true)"
cp "$TOPO_DIR/good1.json" "$TOPO_DIR/h1.json"

# Host 1 runs with exactly the capabilities deploy/nlb-agent.service leaves it, and no new
# privileges: proof that the unit's CapabilityBoundingSet is enough. It logs JSON, whose events
# carry the time they happened (CLOCK_REALTIME), as the listener's lines carry the time each
# message arrived: that orders READY=1 after `attached`.
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$NLB_ROOT/deploy/nlb-agent.service" | tr 'A-Z' 'a-z' |
  sed 's/cap_/+/g; s/ /,/g')
check "the unit names its capabilities ($caps)" test -n "$caps"
NOTIFY_SOCKET=$notify ip netns exec "$TOPO-h1" setpriv --no-new-privs --bounding-set="-all,$caps" \
  -- "$NLB_AGENT" --config "$TOPO_DIR/h1.json" --socket "$TOPO_DIR/h1.sock" \
  --pin-dir "$TOPO_DIR/bpffs/h1" --state-dir "$TOPO_DIR/state1" --xdp-mode generic \
  --log-format json >>"$TOPO_DIR/h1.log" 2>&1 &
TOPO_PIDS+=($!)
AGENT_PID_1=$!
topo_start_agent 2
for _ in $(seq 50); do grep -q READY=1 "$TOPO_DIR/notify.log" 2>/dev/null && break; sleep 0.1; done
check "READY=1 sent" grep -q '^READY=1' "$TOPO_DIR/notify.log"
check "host 1 runs with the unit's bounding set only" python3 - "$AGENT_PID_1" <<'PY'
import sys
# AGENT_PID_1 is `ip netns exec`, which execs setpriv, which execs the agent: one process.
status = dict(l.split(":\t", 1) for l in open(f"/proc/{sys.argv[1]}/status").read().splitlines() if ":\t" in l)
# bpf, perfmon, net_admin, net_raw; setuid, setgid, kill (exec probes as another user)
want = (1 << 39) | (1 << 38) | (1 << 12) | (1 << 13) | (1 << 7) | (1 << 6) | (1 << 5)
sys.exit(0 if int(status["CapBnd"], 16) == want and int(status["CapEff"], 16) == want else 1)
PY
check "READY=1 only after the interface was attached" \
  python3 - "$TOPO_DIR/notify.log" "$TOPO_DIR/h1.log" <<'PY'
import json, sys
ready = [float(l.rsplit("\t", 1)[1]) for l in open(sys.argv[1]) if l.startswith("READY=1")]
attached = []
for line in open(sys.argv[2]):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("event") == "attached":
        attached.append(event["ts"])
if not ready or not attached:
    sys.exit(f"READY=1 at {ready}, attached at {attached}")
print(f"attached at {attached[0]:.6f}, READY=1 arrived {ready[0] - attached[0]:.3f} s later")
sys.exit(0 if attached[0] < ready[0] else 1)
PY
check "the agent answers attached" test "$(nlbadm_h 1 --json query | json 'd["host"]["attached"]')" = True
wait_converged 2 20 1 2
owned() { nlbadm_h "$1" --json query | json 'd["rules"][0]["buckets_owned"]'; }
probe() { nlbadm_h 1 --json query | json "[(p['verdict'], p['last_result']) for p in d['health']['probes'] if p['name'] == '$1'][0]"; }
check "the unit's capabilities run a probe as nobody: ok passes ($(probe ok))" \
  test "$(probe ok)" = "('up', 'passed')"
check "... and kill a hung one at its timeout: hang times out ($(probe hang))" \
  test "$(probe hang)" = "('down', 'timeout')"
hung() { pgrep -f -c '^/bin/sleep 37.25$' || true; }
sleep 1 # five more of its checks started, each killed 100 ms later
check "... and is gone: at most one hung check alive ($(hung))" test "$(hung)" -le 1
check "equal weights: 2048 buckets each" test "$(owned 1)" = 2048

# Long-lived connections across every live change below.
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+60 --count 60 --duration 60 \
  --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
sleep 1

reload() { # reload I: SIGHUP host I's agent and wait for its answer in the log
  local before
  before=$(grep -c 'reload' "$TOPO_DIR/h$1.log" || true)
  eval "kill -HUP \$AGENT_PID_$1"
  for _ in $(seq 50); do
    [ "$(grep -c 'reload' "$TOPO_DIR/h$1.log" || true)" -gt "$before" ] && return 0
    sleep 0.1
  done
  return 1
}
set_rule() { # set_rule I KEY VALUE: port_rules[0].KEY = VALUE (JSON) in host I's config
  python3 - "$TOPO_DIR/h$1.json" "$2" "$3" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["port_rules"][0][sys.argv[2]] = json.loads(sys.argv[3])
json.dump(c, open(sys.argv[1], "w"))
PY
}
wait_owned() { # wait_owned I LO [HI]: host I owns LO..HI buckets of rule 0 within 10 s
  local n
  for _ in $(seq 100); do
    n=$(owned "$1")
    ((n >= $2 && n <= ${3:-$2})) && return 0
    sleep 0.1
  done
  return 1
}

set_rule 1 load_weight 100
check "reload of load_weight applied" reload 1
check "reload: RELOADING=1 then READY=1" python3 - "$TOPO_DIR/notify.log" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
i = next(k for k, l in enumerate(lines) if l.startswith("RELOADING=1"))
sys.exit(0 if "MONOTONIC_USEC=" in lines[i] and any(l.startswith("READY=1") for l in lines[i + 1:]) else 1)
PY
# Weighted share 4096 × 100/150 = 2730.7: ±1 bucket (the new map moves the fewest buckets
# within that band, so which of the two it is depends on the map before).
check "weight 100 vs 50: host 1 owns 2730..2731 buckets" wait_owned 1 2730 2731
check "and host 2 the rest" test "$(($(owned 1) + $(owned 2)))" = 4096
check "the reload is logged with what changed" grep -q 'port_rules\[0\].load_weight' "$TOPO_DIR/h1.log"

set_rule 1 enabled false
check "reload of enabled applied" reload 1
check "enabled false: host 1 owns nothing" wait_owned 1 0
check "enabled false: host 2 owns everything" wait_owned 2 4096
set_rule 1 enabled true
# The same by nlbadm reload, which answers what changed.
check "nlbadm reload names what it applied" \
  test "$(nlbadm_h 1 --json reload | json 'd["changed"]')" = "['port_rules[0].enabled']"
check "enabled true again: back to 2730..2731" wait_owned 1 2730 2731
check "nlbadm reload of an unchanged file applies nothing" \
  test "$(nlbadm_h 1 --json reload | json 'd["changed"]')" = "[]"
share1=$(owned 1)

# Changes that need a restart: refused by name, nothing applied.
python3 - "$TOPO_DIR/h1.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["cluster"]["mode"] = "multicast"; c["port_rules"][0]["load_weight"] = 10
json.dump(c, open(sys.argv[1], "w"))
PY
reload 1
check "a mode change is refused by name" grep -q 'reload: cluster.mode changed: restart nlb-agent' "$TOPO_DIR/h1.log"
out=$(nlbadm_h 1 reload 2>&1) && rc=0 || rc=$?
check "nlbadm reload: refused with exit 1 and the reason ($out)" \
  test "$rc $out" = "1 nlbadm: reload: cluster.mode changed: restart nlb-agent to apply it (nothing changed)"
check "nothing of it applied: still unicast" test "$(nlbadm_h 1 --json params | json 'd["cluster"]["mode"]')" = unicast
check "nothing of it applied: weight unchanged" test "$(nlbadm_h 1 --json params | json 'd["port_rules"][0]["load_weight"]')" = 100
echo '{"cluster": ' >"$TOPO_DIR/h1.json"
reload 1
check "a file that does not parse is refused" grep -q 'reload: .*h1.json: .*(nothing changed)' "$TOPO_DIR/h1.log"
# A file saved as Latin-1: the parser's message quotes the bytes, which the answer (JSON)
# cannot carry as they are; the agent once died sending it.
cp "$TOPO_DIR/good1.json" "$TOPO_DIR/h1.json"
sed -i 's/"interface": "eth0"/"interface": "eth0", "name": "caf\xe9"/' "$TOPO_DIR/h1.json"
out=$(nlbadm_h 1 reload 2>&1) && rc=0 || rc=$?
check "a file in Latin-1: refused with exit 1 and the reason ($out)" \
  eval 'test "$rc" = 1 && [[ "$out" == "nlbadm: reload: "*"h1.json: line "*"(nothing changed)" ]]'
check "a file in Latin-1: the agent still answers" nlbadm_h 1 query
check "the agent still serves" test "$(owned 1)" = "$share1"

touch "$TOPO_DIR/stop"
wait "$hold"
check "60 connections held across the weight changes" test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 60
check "no connection reset by a reload" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold.json")" = 0

# systemctl stop = SIGTERM: STOPPING=1, the other host converges alone at once.
kill -TERM "$AGENT_PID_1"
wait "$AGENT_PID_1" || true
check "STOPPING=1 sent" grep -q '^STOPPING=1' "$TOPO_DIR/notify.log"
check "the other host converges alone at once" wait_converged 1 2 2
e2e_finish
