#!/usr/bin/env bash
# Staged configuration (docs/staged-config.md) on a live cluster under traffic: the port rules
# and the heartbeat period change by editing each host's file and reloading it, one host after
# another. Nothing switches until the last host holds the new set; then every host switches
# in one convergence. Meanwhile TCP connections churn on an unchanged rule and on the rule that
# changes (its ports grow), 60 long-lived connections sit on the latter, and a UDP stream of
# numbered requests runs on another unchanged rule: none fails, none is answered twice or lost.
source "$(dirname "$0")/common.sh"
topo_init "nlbsc-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 200
HEARTBEAT_MS=100
rules_a='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "affinity": "none"},
          {"vip": "all", "ports": [7100, 7100], "protocol": "tcp", "affinity": "single"},
          {"vip": "all", "ports": [7200, 7200], "protocol": "udp", "affinity": "none"}]'
# Rule 1 grows by port 7101 (until now the default host's), rule 3 is new, the period doubles.
rules_b='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "affinity": "none"},
          {"vip": "all", "ports": [7100, 7101], "protocol": "tcp", "affinity": "single"},
          {"vip": "all", "ports": [7200, 7200], "protocol": "udp", "affinity": "none"},
          {"vip": "all", "ports": [7300, 7300], "protocol": "tcp", "affinity": "none"}]'
for i in 1 2 3; do
  host_config "$i" "$rules_a"
  topo_start_server "$i" 7000 7100 7101 7200 7300 --vip "$CLUSTER_IP"
  topo_start_agent "$i"
done
wait_converged 3 20 1 2 3

q() { nlbadm_h "$1" --json query | json "$2"; }
answers() { # answers PORT: the hosts that answered a burst to PORT, and its failures
  client burst --vip "$CLUSTER_IP" --port "$1" --sources 10.10.1.101+90 --per-source 2 --timeout 2 |
    json 'sorted(d["answers"]), len(d["failures"])'
}
before=$(q 1 'd["cluster"]["configuration"]["active"]')
check "before: port 7101 is the default host's (host 1)" test "$(answers 7101)" = "(['1'], 0)"

client churn --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --rate 100 --lifetime 0.3 \
  --interval 0.1 --timeout 3 --duration 120 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/churn.json" &
churn=$!
# New connections to the rule that changes too: its slot waits for every host at the switch
# (a SYN then may need its retransmission, inside the 3 s allowed), none may fail.
client churn --vip "$CLUSTER_IP" --port 7100 --sources 10.10.1.61+40 --rate 50 --lifetime 0.3 \
  --interval 0.1 --timeout 3 --duration 120 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/churn2.json" &
churn2=$!
client hold --vip "$CLUSTER_IP" --port 7100 --sources 10.10.1.1+60 --count 60 --duration 120 \
  --interval 0.2 --timeout 3 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
client stream --vip "$CLUSTER_IP" --port 7200 --sources 10.10.1.150+40 --rate 100 --duration 120 \
  --drain 2 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/stream.json" &
stream=$!
sleep 2

# Host 1, then host 2: staged, nothing switches.
host_config 1 "$rules_b"
sed -i 's/"heartbeat_ms": 100/"heartbeat_ms": 200/' "$TOPO_DIR/h1.json"
r=$(nlbadm_h 1 --json reload)
echo "host 1 reload: $r"
check "reload names what it staged" test "$(json 'd["staged"]' <<<"$r")" = \
  "['cluster.heartbeat_ms', 'port_rules', 'port_rules[1].ports']"
staged=$(q 1 'd["cluster"]["configuration"]["staged"]')
check "query: host 1 stages a new fingerprint ($staged), still runs the old" \
  test "$staged" != None -a "$staged" != "$before" -a "$(q 1 'd["cluster"]["configuration"]["active"]')" = "$before"
check "query: host 1 waits for hosts 2 and 3" test "$(q 1 'd["cluster"]["configuration"]["waiting_for"]')" = "[2, 3]"
sleep 1
cp "$TOPO_DIR/h1.json" "$TOPO_DIR/h2.json"
sed -i 's/"priority": 1/"priority": 2/; s/10\.10\.0\.11/10.10.0.12/' "$TOPO_DIR/h2.json"
nlbadm_h 2 reload >/dev/null
sleep 2
check "two of three hold it: nothing switched" test "$(q 2 'd["cluster"]["configuration"]["active"]')" = "$before"
check "host 2 waits for host 3" test "$(q 2 'd["cluster"]["configuration"]["waiting_for"]')" = "[3]"
check "meanwhile port 7101 is still the default host's" test "$(answers 7101)" = "(['1'], 0)"

# Host 3: the last one. Every host switches.
cp "$TOPO_DIR/h1.json" "$TOPO_DIR/h3.json"
sed -i 's/"priority": 1/"priority": 3/; s/10\.10\.0\.11/10.10.0.13/' "$TOPO_DIR/h3.json"
t0=$(date +%s.%N)
nlbadm_h 3 reload >/dev/null
wait_switched "$before" 15 1 2 3
took=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
echo "every host runs $staged and is settled ${took}s after the last reload"
check "every host switched and settled" switched "$before" 1 2 3
check "to the set host 1 staged" test "$(q 3 'd["cluster"]["configuration"]["active"]')" = "$staged"
check "one switch per host, logged" test "$(cat "$TOPO_DIR"/h*.log | grep -c 'config_switched')" = 3
check "the new period is in force" grep -q '"heartbeat_ms":200\|heartbeat_ms=200' "$TOPO_DIR/h3.log"
check "port 7101 now shared by every host" test "$(answers 7101)" = "(['1', '2', '3'], 0)"
check "the new rule's port 7300 is shared by every host" test "$(answers 7300)" = "(['1', '2', '3'], 0)"
sleep 2
touch "$TOPO_DIR/stop"
wait "$churn" "$churn2" "$hold" "$stream"
echo "churn: $(cat "$TOPO_DIR/churn.json")"
echo "churn on the changed rule: $(cat "$TOPO_DIR/churn2.json")"
echo "hold: $(cat "$TOPO_DIR/hold.json")"
echo "stream: $(cat "$TOPO_DIR/stream.json")"
check "unchanged rule: every churned connection completed" \
  test "$(json 'd["failure_count"], d["opened"] == d["completed"]' <"$TOPO_DIR/churn.json")" = "(0, True)"
check "changed rule: every churned connection completed" \
  test "$(json 'd["failure_count"], d["opened"] == d["completed"]' <"$TOPO_DIR/churn2.json")" = "(0, True)"
check "changed rule: the 60 held connections lived through the switch" \
  test "$(json 'd["connections"], len(d["failures"])' <"$TOPO_DIR/hold.json")" = "(60, 0)"
check "unchanged UDP rule: every request answered once" \
  test "$(json 'd["sent"] == d["answered"], d["duplicates"]' <"$TOPO_DIR/stream.json")" = "(True, 0)"

# The file back to what runs: a staged set goes away again.
host_config 1 "$rules_a"
nlbadm_h 1 reload >/dev/null
check "a file that stages something new is staged" test "$(q 1 'd["cluster"]["configuration"]["staged"]')" != None
# A detach and an attach keep it staged: the host runs the active set, the others wait for it.
staged=$(q 1 'd["cluster"]["configuration"]["staged"]')
active=$(q 1 'd["cluster"]["configuration"]["active"]')
check "detach host 1" nlbadm_h 1 detach eth0
check "attach host 1" nlbadm_h 1 attach eth0
wait_converged 3 20 1 2 3
check "after the attach: the same set staged ($staged)" \
  test "$(q 1 'd["cluster"]["configuration"]["staged"]')" = "$staged"
check "after the attach: the same set active" test "$(q 1 'd["cluster"]["configuration"]["active"]')" = "$active"
# Detached, a reload applies the file whole: the set staged before is no more, and the
# attach stages nothing over it.
check "detach host 1 again" nlbadm_h 1 detach eth0
cp "$TOPO_DIR/h2.json" "$TOPO_DIR/h1.json"
sed -i 's/"priority": 2/"priority": 1/; s/10\.10\.0\.12/10.10.0.11/' "$TOPO_DIR/h1.json"
check "detached: the running set reloaded" nlbadm_h 1 reload
check "attach host 1 again" nlbadm_h 1 attach eth0
wait_converged 3 20 1 2 3
check "after the attach: nothing staged" test "$(q 1 'd["cluster"]["configuration"]["staged"]')" = None
check "after the attach: the same set active as the others" \
  test "$(q 1 'd["cluster"]["configuration"]["active"]')" = "$(q 2 'd["cluster"]["configuration"]["active"]')"
host_config 1 "$rules_a"
nlbadm_h 1 reload >/dev/null
check "a file that stages something new is staged again" test "$(q 1 'd["cluster"]["configuration"]["staged"]')" != None
cp "$TOPO_DIR/h2.json" "$TOPO_DIR/h1.json"
sed -i 's/"priority": 2/"priority": 1/; s/10\.10\.0\.12/10.10.0.11/' "$TOPO_DIR/h1.json"
nlbadm_h 1 reload >/dev/null
check "the running set reloaded again unstages it" test "$(q 1 'd["cluster"]["configuration"]["staged"]')" = None
e2e_finish
