#!/usr/bin/env bash
# Fault "rx_dead_pair": rx_dead in a cluster of two, the most common size. Host 2's switch port
# stops delivering to it while its own frames still leave; 4 s later it delivers again. Then,
# the stream stopped (a quiet segment), host 1's agent crashes: the other fault this host's
# silence looks like, which its survivor must take over from.
#   Each host's default route goes through the client's address (10.10.1.1), which stands for
#   the segment's router: the watch for a link that fails one way asks it (an ARP request)
#   when every peer falls silent and no client's frame comes. With one peer nothing else can
#   tell the two faults apart: the build before (and a host without a gateway now) applied
#   the watch only with two peers or more, so host 2 formed an epoch alone, host 1 let go of
#   every bucket for it, and nobody served until the port delivered again.
#   zero answered twice; host 1 owns every bucket and yields none; host 2 says it receives
#   nothing and the gateway did not answer; both converged after the heal; at host 1's crash
#   host 2 never goes down and owns every bucket within a tolerance and three periods.
#   RX_DEAD_FAMILY=6 (fault_rx_dead_pair_v6): the hosts' dedicated IPs are IPv6 and so is the
#   default route, through fd00::1:1: the watch asks with a neighbour solicitation. The build
#   before asked only IPv4 gateways, and such a host lost every request as above.
source "$(dirname "$0")/lib.sh"
if [ "${RX_DEAD_FAMILY:-4}" = 6 ]; then
  faults_init rx_dead_pair_v6
  gateway=fd00::1:1
  export FAULT_DEDICATED_V6=1
else
  faults_init rx_dead_pair
  gateway=10.10.1.1
fi
faults_setup 1 2
if [ -n "${FAULT_DEDICATED_V6:-}" ]; then
  ip -n "$TOPO-client" addr add "$gateway/64" dev eth0 nodad
  for i in 1 2; do ip -n "$TOPO-h$i" addr add "fd00::$((10 + i))/64" dev eth0 nodad; done
fi
[ -n "${RX_DEAD_NO_ROUTE:-}" ] || for i in 1 2; do
  ip -n "$TOPO-h$i" route add default via "$gateway" dev eth0
done
start_cluster 1 2
stream_start
sleep 1.5
fcheck "host 2 asks the gateway" \
  test "$(query_field 2 'd["host"]["receive_probe"]["gateways"]')" = "['$gateway']"

t=$(now)
nft_fault oifname '"h2"'
sleep 4
let_go=$(log_ts 2 stalled "$t")
[ -n "$let_go" ] || let_go=$(now)
fault_span rx_dead "$t" - "$let_go"
fextra let_go_after_s "$(calc "$let_go - $t")"
fcheck "host 1 converged [1] while host 2 receives nothing" converged_as 1 1
owned=$(query_field 1 'd["rules"][0]["buckets_owned"]')
fcheck "host 1 owns every bucket ($owned)" test "$owned" = 4096
fcheck "host 1 did not yield its buckets to host 2" test "$(count_events 1 partition_yield "$t")" = 0
fcheck "host 2 said it receives nothing, the gateway silent" \
  test "$(count_log 2 "no answer from the gateway $gateway: nothing received.*\"event\":\"link_down\"" "$t")" = 1
fextra dropped_to_h2 "$(nft_dropped)"
fault_do heal -- nft_clear
fcheck "healed: 1-2 converged [1, 2] within 10 s" wait_converged_as 1,2 10 1 2
stream_stop

# The quiet segment: no client's frame comes, only the gateway's answers prove host 2's port.
sleep 1
t=$(now)
{ kill -9 "$AGENT_PID_1" && wait "$AGENT_PID_1"; } 2>/dev/null || true
took=
for _ in $(seq 1 100); do
  if [ "$(query_field 2 'd["rules"][0]["buckets_owned"]')" = 4096 ]; then took=$(now); break; fi
  sleep 0.1
done
fcheck "quiet crash: host 2 owns every bucket" test -n "$took"
[ -z "$took" ] || fextra quiet_takeover_s "$(calc "$took - $t")"
fcheck "quiet crash: within a tolerance and three periods" \
  awk -v d="$(calc "${took:-1e9} - $t")" -v b="$(calc "($TOLERANCE + 3) * $HEARTBEAT_MS / 1000")" \
  'BEGIN { exit !(d <= b) }'
fcheck "quiet crash: host 2 never went down" test "$(count_events 2 link_down "$t")" = 0
faults_report
