#!/usr/bin/env bash
# Fault "other_cluster_ip": host 4 joins the segment with a mistyped cluster IP (10.10.0.99)
# but the cluster's service address among its VIPs (cluster.vips ["10.10.0.100"]), as a
# configuration copied from another cluster and half edited. It is another cluster to its
# peers (frames of other clusters are skipped), hears nobody, and serves every bucket alone,
# with its own cluster MAC, which it also answers ARP for the shared VIP with. On a segment
# that delivers every frame to every port (a bridge of veths, containers, a promiscuous
# vSwitch), its dataplane sees the cluster's client frames too.
#   zero answered twice (the build before: the dataplanes judged a frame to a VIP by its
#   bucket whatever MAC it was sent to, so host 4 answered every request hosts 1-3 answered:
#   3,767 of 6,731); hosts 1-3 converged [1, 2, 3]; both sides log the other cluster's claim
#   on the VIP, naming its cluster IP. The clients that believe host 4's MAC (the two
#   clusters' ARP answers take turns) are served by host 4 alone, once.
source "$(dirname "$0")/lib.sh"
faults_init other_cluster_ip
faults_setup 1 2 3 4
for i in 1 2 3; do fault_config "$i"; done
start_cluster 1 2 3
stream_start
sleep 1.5

topo_host_config 4 "{
  \"cluster\": {\"ip\": \"10.10.0.99\", \"vips\": [\"$CLUSTER_IP\"], \"mode\": \"unicast\",
                \"heartbeat_ms\": $HEARTBEAT_MS, \"heartbeat_tolerance\": $TOLERANCE,
                \"cleanup_delay_s\": 30},
  \"host\": {\"priority\": 4, \"dedicated_ip\": \"10.10.0.14\", \"interface\": \"eth0\"},
  \"port_rules\": $FAULT_RULES
}"
t=$(now)
start_agent 4
fault_agents_started other_cluster_ip "$t" -- 4
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 3")"
fextra states "$(nlbq summary 1 2 3 4)"
fcheck "hosts 1-3 converged [1, 2, 3]" converged_as 1,2,3 1 2 3
fcheck "host 4 names the other cluster claiming its VIP" \
  test "$(count_log 4 "claimed on the segment by 02:bf:0a:0a:00:64 .*another nlb cluster \\(cluster IP $CLUSTER_IP\\)" "$t")" -ge 1
named=0
for i in 1 2 3; do
  named=$((named + $(count_log "$i" "by 02:bf:0a:0a:00:63 .*another nlb cluster \\(cluster IP 10.10.0.99\\)" "$t")))
done
fcheck "hosts 1-3 name the other cluster claiming their VIP ($named)" test "$named" -ge 1
stream_stop
faults_report
