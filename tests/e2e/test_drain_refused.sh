#!/usr/bin/env bash
# A drainstop stands through a fault: host 3 drains long-lived connections, then goes deaf on
# the segment (the bridge drops every 0x886F frame to its port: nft, bridge family) and is
# refused, letting go of what it drained. When the segment heals it stops, as the drainstop
# asked, instead of rejoining and taking new connections (it did until 2026-12-06), and the
# others serve every request once.
source "$(dirname "$0")/common.sh"
topo_init "nlbdr-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 160
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
start_hosts "$rules" 1 2 3
wait_converged 3 20 1 2 3

# Connections that keep host 3 draining (its share of 60), held past the end of the test.
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+60 --count 60 --duration 60 \
  --interval 0.2 --timeout 2 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
sleep 1
check "drainstop accepted" nlbadm_h 3 drainstop
check "host 3 drains" wait_host_state 3 draining 5

ip netns exec "$TOPO-br" nft -f - <<EOF
table bridge nlbdr {
  chain forwarding { type filter hook forward priority 0; policy accept; }
}
EOF
ip netns exec "$TOPO-br" nft add rule bridge nlbdr forwarding oifname '"h3"' ether type 0x886f drop
check "deaf, host 3 is refused" wait_host_state 3 refused 10
ip netns exec "$TOPO-br" nft delete table bridge nlbdr

# The refusal ends a tolerance after the last conflict; a rejoin would follow within moments.
check "healed, host 3 stops" wait_host_state 3 stopped 15
sleep 2
check "... and stays stopped" test "$(host_state 3)" = stopped
check "the others serve as [1, 2]" wait_converged 2 10 1 2
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.61+100 --per-source 2 --proto udp)
echo "burst: $(json '(d["answers"], len(d["failures"]), d["duplicates"])' <<<"$r")"
check "every request answered, once, by hosts 1 and 2 only" \
  test "$(json 'len(d["failures"]) == 0 and d["duplicates"] == 0 and sorted(d["answers"]) == ["1", "2"]' <<<"$r")" = True
check "its log says the drain is over" grep -q 'drain_complete.*let go when refused' "$TOPO_DIR/h3.log"
touch "$TOPO_DIR/stop"
wait "$hold" || true
e2e_finish
