#!/usr/bin/env bash
# Fault "filtered_restart" (found by the chaos test, tests/engine/test_chaos.cpp): host 3's
# agent crashes (kill -9), and its switch port starts dropping the heartbeat EtherType both
# ways (nft bridge family: 0x886F from and to h3) while client frames still pass. The agent
# starts again three tolerances later, when its peers have long forgotten where its agent
# answers. It hears nobody on the segment and nobody hears it; alone it would serve every
# bucket beside the cluster after a tolerance. cluster.peers lists the hosts' dedicated IPs:
# it reaches its peers by the second path, learns that they live and own every bucket, and
# takes none. Then the filter goes and it joins.
#   zero requests answered twice; within (tolerance + 2) periods + slack of each event every
#   request is answered again; host 3 serves nothing while filtered and heard its peers by
#   the second path; all three converged members after the filter goes.
source "$(dirname "$0")/lib.sh"
faults_init filtered_restart
faults_setup 1 2 3
# FAULT_PEERS= (empty) runs it without the list: the fault as it was.
FAULT_PEERS=${FAULT_PEERS-1 2 3}
start_cluster 1 2 3
stream_start
sleep 1.5

crash() { { kill -9 "$AGENT_PID_3" && wait "$AGENT_PID_3"; } 2>/dev/null || true; }
fault_do crash -- crash
filter() {
  nft_fault iifname '"h3"' ether type 0x886f
  nft_fault oifname '"h3"' ether type 0x886f
}
fault_do filter -- filter
fcheck "crashed: hosts 1 and 2 converged without host 3 within 10 s" wait_converged_as 1,2 10 1 2
sleep_periods "$((3 * TOLERANCE))"

restarted=$(now)
start_agent 3
fault_agents_started restart "$restarted" -- 3
# Two tolerances: alone it would have served after one.
sleep_periods "$((2 * TOLERANCE))"
state=$(state_of 3)
owned=$(query_field 3 'sum(r["buckets_owned"] for r in d["rules"])')
contact=$(query_field 3 'd["heartbeats"]["contact_received"]' stats)
fextra filtered_state "\"$state\""
fextra filtered_buckets_owned "$owned"
fextra filtered_contact_received "$contact"
fextra filter_dropped "$(nft_dropped)"
fcheck "filtered: host 3 owns no bucket ($owned, state $state)" test "$owned" = 0
fcheck "filtered: host 3 heard its peers by the second path ($contact frames)" \
  test "${contact:-0}" != none -a "${contact:-0}" -gt 0
fcheck "filtered: hosts 1 and 2 still converged as 1,2" converged_as 1,2 1 2

fault_do heal -- nft_clear
fcheck "healed: 3 converged members again within 10 s" wait_converged_as 1,2,3 10 1 2 3
stream_stop
faults_report
