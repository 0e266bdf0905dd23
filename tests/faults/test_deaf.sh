#!/usr/bin/env bash
# Fault "deaf": the bridge stops delivering 0x886F frames to host 4's port while host 4 still
# sends (nft bridge family, forward hook). Then the segment heals, and then it turns lossy:
# 30 % of the 0x886F frames to every port are dropped (numgen random) for 5 s.
#   zero requests answered twice over the run; after each event every request sent later than
#   (tolerance + 2) periods + slack is answered; the lossy segment loses no request (strict),
#   no host completes a convergence while it lasts, and all 4 stay converged members.
source "$(dirname "$0")/lib.sh"
faults_init deaf
faults_setup 1 2 3 4
start_cluster 1 2 3 4
stream_start
sleep 1.5

fault_do deaf -- nft_fault oifname '"h4"' ether type 0x886f
sleep "$(calc "$FAULT_BOUND_S + $FAULT_SLACK_S + 2.5")"
fextra deaf_dropped "$(nft_dropped)"
fextra deaf_states "$(nlbq summary 1 2 3 4)"

fault_do heal -- nft_clear
fcheck "healed: 4 converged members again within 10 s" wait_converged_as 1,2,3,4 10 1 2 3 4
# The lossy phase starts from a settled cluster: converged, no convergence for 2 s (bounded).
fcheck "healed: settled (no convergence for 2 s) within 10 s" wait_stable 1,2,3,4 2 10 1 2 3 4

before=$(convergences 1 2 3 4)
left0=$(now)
fault_do lossy strict -- nft_fault ether type 0x886f numgen random mod 10 '<' 3
sleep 5
fextra lossy_dropped "$(nft_dropped)"
nft_clear
d=$(deltas "$before" "$(convergences 1 2 3 4)")
lefts=0
for i in 1 2 3 4; do lefts=$((lefts + $(count_events "$i" host_left "$left0"))); done
fextra lossy_convergences "[$d]"
fextra lossy_host_left "$lefts"
fcheck "lossy: no convergence completed on any host ($d)" deltas_within "$d" 0
fcheck "lossy: no host_left event ($lefts)" test "$lefts" = 0
fcheck "lossy: all 4 converged members after it" converged_as 1,2,3,4 1 2 3 4
stream_stop
faults_report
