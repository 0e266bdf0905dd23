#!/usr/bin/env bash
# One place to configure a cluster (docs/staged-config.md, "Pushing"): from the admin box,
# `nlbadm --cluster ... diff FILE` shows per host what a push would change, and `push FILE`
# stages the file's port rules and timing on every host. A host without remote_config refuses
# and is named; the others wait for it. Once it takes the push too, the cluster switches in
# one convergence, every host keeps its own weights, logs what changed and from where, and
# keeps the pushed set across a restart of its agent.
source "$(dirname "$0")/common.sh"
topo_init "nlbpu-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=100
KEY=$TOPO_DIR/cluster.key
"$NLBADM" keygen >"$KEY"
chmod 0600 "$KEY"

rules_a='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "affinity": "none"}]'
# host I's file: rules_a, the key, remote control, remote_config as $2, and host 2 its own
# weight on the rule.
write_config() {
  host_config "$1" "$rules_a"
  python3 - "$TOPO_DIR/h$1.json" "$KEY" "$2" "$1" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["cluster"].update(key_file=sys.argv[2], remote_control=True, remote_config=sys.argv[3] == "true")
if sys.argv[4] == "2":
    c["port_rules"][0]["load_weight"] = 80
json.dump(c, open(sys.argv[1], "w"))
PY
}
start() { topo_start_agent "$1" --state-dir "$TOPO_DIR/state$1"; }
admin() { # nlbadm on the admin box: sets rc and out; stderr in $TOPO_DIR/admin.err
  set +e
  out=$(ip netns exec "$TOPO-client" "$NLBADM" --cluster "$CLUSTER_IP" --key-file "$KEY" \
    --timeout 3000 "$@" 2>"$TOPO_DIR/admin.err")
  rc=$?
  set -e
}
q() { nlbadm_h "$1" --json query | json "$2"; }

write_config 1 true
write_config 2 true
write_config 3 false
for i in 1 2 3; do
  topo_start_server "$i" 7000 7001 --vip "$CLUSTER_IP"
  start "$i"
done
wait_converged 3 20 1 2 3
before=$(q 1 'd["cluster"]["configuration"]["active"]')

# The new file, as the admin box has it: rule 0 grows to 7000-7001, the period doubles.
cat >"$TOPO_DIR/new.json" <<EOF
{"cluster": {"ip": "$CLUSTER_IP", "heartbeat_ms": 200, "heartbeat_tolerance": 5,
             "cleanup_delay_s": 30},
 "host": {"priority": 1, "dedicated_ip": "10.10.0.11"},
 "port_rules": [{"vip": "all", "ports": [7000, 7001], "protocol": "tcp", "affinity": "none",
                 "load_weight": 10}]}
EOF

admin --json diff "$TOPO_DIR/new.json"
echo "diff: $out"
check "diff: every host answers (read-only, remote_config or not)" test "$rc" = 0
check "diff: each host would stage the ports and the period" \
  test "$(json '[d["hosts"][h]["staged"] for h in sorted(d["hosts"])]' <<<"$out")" = \
  "[['cluster.heartbeat_ms', 'port_rules[0].ports'], ['cluster.heartbeat_ms', 'port_rules[0].ports'], ['cluster.heartbeat_ms', 'port_rules[0].ports']]"
check "diff changed nothing" test "$(q 1 'd["cluster"]["configuration"]["staged"]')" = None

# Host 1's agent traced through the push: pushed.json is read at every start and a damaged
# one stops the agent, so its bytes must be on disk before the rename makes it the file.
strace -f -qq -e trace=openat,fsync,rename,renameat,renameat2 -p "$AGENT_PID_1" \
  -o "$TOPO_DIR/push.strace" &
tracer=$!
sleep 0.5
admin --json push "$TOPO_DIR/new.json"
sleep 0.3
kill "$tracer" 2>/dev/null || true
wait "$tracer" 2>/dev/null || true
echo "push: $out ($(cat "$TOPO_DIR/admin.err"))"
check "push: pushed.json synced before its rename, then its directory" python3 - "$TOPO_DIR/push.strace" <<'PY'
import re, sys
fds, synced, order = {}, set(), []
for line in open(sys.argv[1]):
    m = re.search(r'openat\(.*"([^"]*)".*\) = (\d+)', line)
    if m:
        fds[m.group(2)] = m.group(1)
    m = re.search(r'fsync\((\d+)\)\s*= 0', line)
    if m:
        order.append(("fsync", fds.get(m.group(1), "")))
    m = re.search(r'rename(?:at2?)?\(.*"([^"]*pushed\.json\.new)".*"([^"]*pushed\.json)"', line)
    if m:
        order.append(("rename", m.group(2)))
names = [(k, v.rsplit("/", 1)[-1] or v) for k, v in order]
print(names)
if ("rename", "pushed.json") not in names:
    print(open(sys.argv[1]).read()[-3000:])
i = names.index(("rename", "pushed.json"))
ok = ("fsync", "pushed.json.new") in names[:i] and any(
    k == "fsync" and not v.startswith("pushed") for k, v in names[i + 1:])
sys.exit(0 if ok else 1)
PY
check "push: exit 1, host 3 refused" test "$rc" = 1
check "push: host 3 is named with the reason" \
  test "$(json 'd["errors"]["3"]' <<<"$out")" = "push: cluster.remote_config is off on host 3 (nothing changed)"
check "push: hosts 1 and 2 staged it" test "$(json 'sorted(d["hosts"])' <<<"$out")" = "['1', '2']"
sleep 1
check "hosts 1 and 2 wait for host 3" \
  test "$(q 1 'd["cluster"]["configuration"]["waiting_for"]') $(q 2 'd["cluster"]["configuration"]["waiting_for"]')" = "[3] [3]"
check "nothing switched while host 3 lacks it" test "$(q 1 'd["cluster"]["configuration"]["active"]')" = "$before"
check "host 1 logs the push and where it came from" grep -q 'pushed.*from=10\.10\.1\.1' "$TOPO_DIR/h1.log"
check "host 1 keeps it in its state directory" test -s "$TOPO_DIR/state1/pushed.json"

# Host 3 gets remote_config (a restart). Gone, it is no member: hosts 1 and 2, which both hold
# the set, switch without it; back with its file's (old) rules it is refused, until the push
# reaches it too and it follows them.
kill "$AGENT_PID_3"
wait "$AGENT_PID_3" 2>/dev/null || true
write_config 3 true
start 3
deadline=$((SECONDS + 10))
until [ "$(q 3 'd["host"]["state"]' 2>/dev/null)" = refused ] || ((SECONDS > deadline)); do sleep 0.2; done
detail=$(q 3 'd["host"].get("reason_detail")')
check "back with the old rules, host 3 is refused, and told why: $detail" \
  test "$(q 3 'd["host"]["state"]')" = refused -a "${detail#*switched from this host}" != "$detail"
admin --json push "$TOPO_DIR/new.json"
check "second push: every host took it" test "$rc $(json 'sorted(d["hosts"])' <<<"$out")" = "0 ['1', '2', '3']"
wait_switched "$before" 15 1 2 3
check "every host runs the pushed set, settled" switched "$before" 1 2 3
check "each host keeps its own weight (host 2: 80, host 1: equal, not the file's 10)" \
  test "$(q 2 'd["rules"][0]["load_weight"]') $(q 1 'd["rules"][0]["load_weight"]')" = "80 equal"
r=$(client burst --vip "$CLUSTER_IP" --port 7001 --sources 10.10.1.1+60 --per-source 2 --timeout 2)
check "port 7001 is served by the rule on every host" \
  test "$(json 'sorted(d["answers"]), len(d["failures"])' <<<"$r")" = "(['1', '2', '3'], 0)"
admin --json diff "$TOPO_DIR/new.json"
check "diff after the switch: the same everywhere" \
  test "$(json '[d["hosts"][h]["same"] for h in sorted(d["hosts"])]' <<<"$out")" = "[True, True, True]"

# The pushed set outlives the agent: a restarted host 1 runs it, not its file's.
kill "$AGENT_PID_1"
wait "$AGENT_PID_1" 2>/dev/null || true
start 1
wait_converged 3 20 1 2 3
check "restarted, host 1 still runs the pushed set" test "$(q 1 'd["rules"][0]["ports"]')" = "[7000, 7001]"

# A file with another VIP: every host stages it, the cluster switches, the VIP is served.
sed 's/"heartbeat_tolerance": 5/"vips": ["10.10.0.101"], "heartbeat_tolerance": 5/' \
  "$TOPO_DIR/new.json" >"$TOPO_DIR/vips.json"
before=$(q 1 'd["cluster"]["configuration"]["active"]')
admin --json push "$TOPO_DIR/vips.json"
check "a push with another VIP is staged by each host" \
  test "$rc $(json '[d["hosts"][h]["staged"] for h in sorted(d["hosts"])]' <<<"$out")" = \
  "0 [['cluster.vips'], ['cluster.vips'], ['cluster.vips']]"
wait_switched "$before" 15 1 2 3
check "every host switched to it, settled" switched "$before" 1 2 3
check "every host runs the pushed VIP list" test "$(q 3 'd["cluster"]["vips"]')" = "['10.10.0.101']"
r=$(client burst --vip 10.10.0.101 --port 7001 --sources 10.10.1.1+60 --per-source 2 --timeout 2)
check "the pushed VIP is served by every host" \
  test "$(json 'sorted(d["answers"]), len(d["failures"])' <<<"$r")" = "(['1', '2', '3'], 0)"

# A host's own values come from its file's rules, at a push as at a reload: a push that
# narrows the rule to 7001 gives host 2 the default weight (its file's 7000 rule does not
# overlap), not the 80 its running 7000-7001 rule had, which the next reload would drop.
sed 's/"ports": \[7000, 7001\]/"ports": [7001, 7001]/' "$TOPO_DIR/vips.json" >"$TOPO_DIR/narrow.json"
before=$(q 1 'd["cluster"]["configuration"]["active"]')
admin --json push "$TOPO_DIR/narrow.json"
wait_switched "$before" 15 1 2 3
check "narrowed: host 2's rule is 7001 alone" test "$(q 2 'd["rules"][0]["ports"]')" = "[7001, 7001]"
check "narrowed: host 2's weight is its file's for 7001 (the default)" \
  test "$(q 2 'd["rules"][0]["load_weight"]')" = equal
nlbadm_h 2 reload >/dev/null
check "an unchanged reload keeps host 2's weight" test "$(q 2 'd["rules"][0]["load_weight"]')" = equal
e2e_finish
