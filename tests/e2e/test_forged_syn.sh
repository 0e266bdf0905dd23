#!/usr/bin/env bash
# E2E: after a join moved their buckets, 100 long-lived connections each get a SYN forged with
# their exact 4-tuple (a valid SYN with a random sequence number, what an off-path sender who
# knows the addresses and ports can send). The new owner of a moved bucket takes the SYN (a
# new connection is its own) and its stack answers with a SYN-ACK; the client, established
# with the old owner, answers that with a challenge ACK from its own sequence space. Taken by
# the new owner, that ACK made its stack send a reset whose sequence number is exactly the one
# the client accepts: every moved connection died. The new owner now takes only the packets
# that continue the SYN it recorded (docs/dataplane.md, "Connection tracking"): no reset, no
# connection answered by a second host. A blind reset and a blind FIN for each connection,
# before the join and after it, change nothing either.
source "$(dirname "$0")/common.sh"
topo_init "nlbfs-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=100
CLEANUP_DELAY_S=300 # the moved buckets stay dirty for the old owners' connections throughout
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple",
         "affinity": "none"}]'
for i in 1 2 3; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
done
topo_start_agent 1
topo_start_agent 2
wait_converged 2 20 1 2

client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 100 --duration 60 \
  --interval 0.2 --timeout 3 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
sleep 2 # every connection established (and recorded by its host's socket program)

# The tuples as the client's stack has them.
mapfile -t tuples < <(ip netns exec "$TOPO-client" ss -Htn state established "( dport = :7000 )" |
  awk '{print $3}')
check "the client holds 100 connections (${#tuples[@]})" test "${#tuples[@]}" = 100
spoof() { # FLAGS SEED: one segment forged with FLAGS for each tuple
  ip netns exec "$TOPO-client" python3 "$NLB_ROOT/tests/tools/nlb_spoof_syn.py" \
    --dst "$CLUSTER_IP" --port 7000 --seed "$2" --flags "$1" "${tuples[@]}"
}
# A blind reset and a blind FIN for each (issue 11, item 3), before the join (every bucket
# steady, the fast path) and after it (the moved buckets tracked on their old owners: the
# tables decide): the stacks that hold the connections discard them, and so must the
# tracking, or the moved connections go to host 3.
blind() { # SEED
  local f sent
  for f in rst fin; do
    sent=$(spoof "$f" "$1")
    check "a $f forged for each ($sent)" test "$(json 'd["sent"]' <<<"$sent")" = 100
  done
  sleep 1
}
blind 5

topo_start_agent 3 # the join moves a third of the buckets to host 3, dirty with the connections
wait_converged 3 20 1 2 3
sleep 1
stat3() { nlbadm_h 3 --json stats | json "d['rules'][0]['$1']"; }
tracked_before=$(stat3 tracked)
check "host 3's moved buckets are dirty with the others' connections" \
  test "$(stat3 dirty_elsewhere)" -gt 0
blind 6

# Then one forged SYN each.
sent=$(spoof syn 7)
check "a SYN forged for each ($sent)" test "$(json 'd["sent"]' <<<"$sent")" = 100
sleep 3 # the SYN-ACKs, the challenge ACKs they draw, and the answers to those

tracked=$(($(stat3 tracked) - tracked_before))
check "host 3 took the forged SYNs of the connections in its buckets ($tracked)" test "$tracked" -gt 0

touch "$TOPO_DIR/stop"
wait "$hold"
check "100 long-lived connections completed" test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 100
check "none reset or answered by a second host" \
  test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold.json")" = 0
json 'd["failures"][:5]' <"$TOPO_DIR/hold.json"
e2e_finish
