#!/usr/bin/env bash
# Fault "blind": the bridge stops delivering frames addressed to the cluster MAC (clients'
# requests; heartbeats too once they go to the cluster MAC, as the design says) to host 4's
# port; everything else (broadcast, host 4's own MAC) still reaches it, and it still sends.
# Then the segment heals.
#   zero requests answered twice; after each event every request sent later than
#   (tolerance + 2) periods + slack is answered: host 4's buckets must move to hosts that
#   receive their requests.
source "$(dirname "$0")/lib.sh"
faults_init blind
faults_setup 1 2 3 4
start_cluster 1 2 3 4
mac=$("$NLBADM" ip2mac "$CLUSTER_IP")
fextra cluster_mac "\"$mac\""
stream_start
sleep 1.5

fault_do blind -- nft_fault oifname '"h4"' ether daddr "$mac"
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 3")"
fextra blind_states "$(nlbq summary 1 2 3 4)"
fextra blind_dropped "$(nft_dropped)"

fault_do heal -- nft_clear
fcheck "healed: 4 converged members again within 10 s" wait_converged_as 1,2,3,4 10 1 2 3 4
stream_stop
faults_report
