#!/usr/bin/env bash
# E2E 6 and 7: multicast and igmp modes (unicast is every other test) serve TCP and UDP with
# no duplicate answer, and `nlbadm ip2mac` names the MAC the cluster answers ARP with; an IPv6
# VIP beside the IPv4 cluster IP is reachable (neighbour solicitation answered by the
# dataplane) and serves TCP and UDP. Only the dataplane answers for a VIP: ARP and ND about a
# VIP that it does not answer never reach a host's kernel (which would answer with its own
# MAC). The ND egress filter is on a host exactly while its config has an IPv6 VIP, also after
# a restarted agent adopts its predecessor's dataplane with other VIPs; the clsact qdisc goes
# with it where nlb made it, and stays where the operator did.
source "$(dirname "$0")/common.sh"

RULES='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'

# egress_filter I: nlb's TC egress filter on host I's eth0, if any.
egress_filter() {
  tc -n "$TOPO-h$1" filter show dev eth0 egress 2>/dev/null | grep nlb_nd_egress || true
}

# clsact_qdisc I: the clsact qdisc on host I's eth0, if any.
clsact_qdisc() {
  tc -n "$TOPO-h$1" qdisc show dev eth0 2>/dev/null | grep clsact || true
}

probe() {
  ip netns exec "$TOPO-client" python3 "$NLB_ROOT/tests/tools/nlb_neigh_probe.py" "$@"
}

run_mode() {
  local mode=$1 v6=${2:-}
  topo_init "nlbe6-$mode-$$"
  for i in 1 2 3; do topo_add_host "$i" "$v6"; done
  topo_add_client 100
  local vips='[]'
  [ -z "$v6" ] || vips='["fd00::100"]'
  for i in 1 2 3; do
    host_config "$i" "$RULES" "$mode" "$vips"
    if [ -n "$v6" ]; then
      topo_start_server "$i" 7000 --vip "$CLUSTER_IP" --vip fd00::100
    else
      topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
    fi
    topo_start_agent "$i"
  done
  wait_converged 3 20 1 2 3
  for i in 1 2 3; do
    if [ -n "$v6" ]; then
      check "$mode: host $i has the ND egress filter (IPv6 VIP)" test -n "$(egress_filter "$i")"
    else
      check "$mode: host $i has no ND egress filter (no IPv6 VIP)" test -z "$(egress_filter "$i")"
    fi
  done
  local r
  r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 3)
  check "$mode: 300 TCP connections answered" test "$(json 'sum(d["answers"].values())' <<<"$r")" = 300
  check "$mode: every host served" test "$(json 'len(d["answers"])' <<<"$r")" = 3
  r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 3 --proto udp)
  check "$mode: 300 UDP requests answered once each" test "$(json 'sum(d["answers"].values()), d["duplicates"]' <<<"$r")" = "(300, 0)"
  local want got
  want=$("$NLBADM" ip2mac "$CLUSTER_IP" --mode "$mode" | awk '{print $1}')
  got=$(ip -n "$TOPO-client" neigh show "$CLUSTER_IP" | awk '{print $5}')
  check "$mode: ip2mac ($want) is the MAC the cluster answers ARP with ($got)" test "$want" = "$got"
  if [ -n "$v6" ]; then
    r=$(client burst --vip fd00::100 --port 7000 --sources "$(printf 'fd00::1:%d,' $(seq 1 16) | sed 's/,$//')" --per-source 10)
    check "IPv6: 160 TCP connections answered" test "$(json 'sum(d["answers"].values()), len(d["failures"])' <<<"$r")" = "(160, 0)"
    check "IPv6: spread over the hosts" test "$(json 'len(d["answers"]) > 1' <<<"$r")" = True
    r=$(client burst --vip fd00::100 --port 7000 --sources "$(printf 'fd00::1:%d,' $(seq 1 16) | sed 's/,$//')" --per-source 10 --proto udp)
    check "IPv6: 160 UDP requests answered once each" test "$(json 'sum(d["answers"].values()), d["duplicates"]' <<<"$r")" = "(160, 0)"
    got=$(ip -n "$TOPO-client" -6 neigh show fd00::100 | awk '{print $5}')
    check "IPv6: the solicitation was answered with the cluster MAC ($got)" test "$want" = "$got"
    q=$(nlbadm_h 1 --json stats)
    check "IPv6: the dataplane answered neighbour solicitations" test "$(json 'sum(1 for _ in [0]) if d["dataplane"]["nd_replied"] > 0 else 0' <<<"$q")" = 1

    # An interface set down and up loses its IPv6 addresses (keep_addr_on_down 0), the VIP
    # too; the network configuration puts the host's own back, and the agent puts it back as the link comes up, and the host serves its share again
    # (before, the VIP stayed gone and the stack dropped the host's share for good).
    ip -n "$TOPO-h2" link set eth0 down
    ip -n "$TOPO-h2" link set eth0 up
    ip -n "$TOPO-h2" addr add fd00::12/64 dev eth0 nodad # the host's own, as its network config does
    local deadline=$((SECONDS + 5))
    until ip -n "$TOPO-h2" -6 addr show dev eth0 | grep -q 'fd00::100/128' || ((SECONDS >= deadline)); do sleep 0.1; done
    check "IPv6: host 2's VIP back on its interface after a link down and up" \
      sh -c "ip -n '$TOPO-h2' -6 addr show dev eth0 | grep -q 'fd00::100/128'"
    check "IPv6: host 2 said it put the VIP back" grep -q 'VIP fd00::100 had gone from the interface' "$TOPO_DIR/h2.log"
    r=$(client burst --vip fd00::100 --port 7000 --sources "$(printf 'fd00::1:%d,' $(seq 1 16) | sed 's/,$//')" --per-source 10 --proto udp)
    check "IPv6: 160 UDP requests answered once each after it" test "$(json 'sum(d["answers"].values()), d["duplicates"]' <<<"$r")" = "(160, 0)"

    # Another machine claiming the cluster IP (a gratuitous ARP from the client's MAC): every
    # host counts it, names the claimant in its log and announces the VIPs again.
    local intruder
    intruder=$(ip -n "$TOPO-client" -br link show eth0 | awk '{print $3}')
    probe arp --ifname eth0 --sender "$CLUSTER_IP" --target "$CLUSTER_IP" >/dev/null
    sleep 1.5
    for i in 1 2 3; do
      check "claim: host $i counted it" test "$(nlbadm_h "$i" --json stats | json 'd["dataplane"]["vip_claims"] >= 1')" = True
      check "claim: host $i named $intruder" grep -q "VIP $CLUSTER_IP is claimed on the segment by $intruder (ARP)" "$TOPO_DIR/h$i.log"
    done

    # Requests the dataplane does not answer: no host's kernel answers them either.
    r=$(probe arp --ifname eth0 --sender 10.10.1.1 --target "$CLUSTER_IP")
    check "ARP: every host answered with the cluster MAC" test "$(json 'sorted({a["lladdr"] for a in d["answers"]}), len(d["answers"])' <<<"$r")" = "(['$want'], 3)"
    r=$(probe arp --ifname eth0 --sender 10.10.1.1 --target "$CLUSTER_IP" --htype 6)
    check "ARP of hardware type 6 for the cluster IP: no answer ($r)" test "$(json 'len(d["answers"])' <<<"$r")" = 0
    r=$(probe ns --ifname eth0 --sender fd00::1:1 --target fd00::100)
    check "ND: every host answered with the cluster MAC" test "$(json 'sorted({a["lladdr"] for a in d["answers"]}), len(d["answers"])' <<<"$r")" = "(['$want'], 3)"
    r=$(probe ns --ifname eth0 --sender fd00::1:1 --target fd00::100 --hop-by-hop)
    check "ND behind a hop-by-hop header for the VIP: no answer ($r)" test "$(json 'len(d["answers"])' <<<"$r")" = 0
    r=$(probe ns --ifname eth0 --sender fd00::1:1 --target fd00::11 --hop-by-hop)
    check "ND behind a hop-by-hop header for a dedicated IP: its kernel answers ($r)" test "$(json 'len(d["answers"])' <<<"$r")" = 1
    q=$(nlbadm_h 1 --json stats)
    check "the dropped requests were counted" test "$(json 'd["dataplane"]["neigh_dropped"] >= 2' <<<"$q")" = True
  fi

  # A restarted agent adopts the pinned dataplane under a config with the other VIPs: the
  # filter follows the config (the cluster refuses host 3 then; nothing here looks at that).
  { kill -9 "$AGENT_PID_3" && wait "$AGENT_PID_3"; } 2>/dev/null || true
  local other='["fd00::100"]'
  [ -z "$v6" ] || other='[]'
  host_config 3 "$RULES" "$mode" "$other"
  local killed
  killed=$(log_lines 3)
  # igmp: the operator's clsact qdisc, there before nlb's filter; the multicast run's is
  # nlb's own.
  [ "$mode" != igmp ] || tc -n "$TOPO-h3" qdisc add dev eth0 clsact
  topo_start_agent 3
  local deadline=$((SECONDS + 15))
  until nlbadm_h 3 --json query >/dev/null 2>&1 || ((SECONDS >= deadline)); do sleep 0.2; done
  check "$mode: the restarted agent adopted the dataplane" adopted_since 3 "$killed"
  if [ -n "$v6" ]; then
    check "$mode: adopted without IPv6 VIPs, the ND egress filter is gone" test -z "$(egress_filter 3)"
    check "$mode: ... and the clsact qdisc an earlier agent made for it" test -z "$(clsact_qdisc 3)"
  else
    check "$mode: adopted with an IPv6 VIP, the ND egress filter is there" test -n "$(egress_filter 3)"
    # SIGTERM detaches: the filter goes, and the qdisc if nlb made it.
    { kill -TERM "$AGENT_PID_3" && wait "$AGENT_PID_3"; } 2>/dev/null || true
    check "$mode: detached, the ND egress filter is gone" test -z "$(egress_filter 3)"
    if [ "$mode" = igmp ]; then
      check "$mode: detached, the operator's clsact qdisc stays" test -n "$(clsact_qdisc 3)"
    else
      check "$mode: detached, the clsact qdisc nlb made is gone" test -z "$(clsact_qdisc 3)"
    fi
  fi
  topo_cleanup
  trap - EXIT
}

run_mode multicast
run_mode igmp
run_mode unicast v6
e2e_finish
