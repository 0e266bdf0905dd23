#!/usr/bin/env bash
# Fault "rx_dead": host 4's switch port stops delivering to it while its own frames still
# leave (nft bridge forward: every frame out of port h4 dropped), as a port, a NIC's receive
# path or a fibre failing one way does; 4 s later it delivers again.
#   zero answered twice; hosts 1-3 never yield their buckets to host 4 and take its share;
#   host 4 says it receives nothing (link_down) and rejoins after the heal. Host 4's peers
#   cannot learn faster than its silence tells them: they take its share once they count it
#   dead (1.5 s after the fault here, 7.4 periods; up to 10.5 periods in the simulator, where
#   what its last frames named lapses first). So the event runs until host 4 let go of its
#   buckets (its log's `stalled`), and the bound counts from there. The build before: host 4 formed an epoch alone over every bucket and
#   its peers let go of theirs for it: 3,444 requests lost, 1-3 owning no bucket (with the
#   port dark for 8 s, 7,517 of the 7,517 sent meanwhile).
source "$(dirname "$0")/lib.sh"
faults_init rx_dead
faults_setup 1 2 3 4
start_cluster 1 2 3 4
stream_start
sleep 1.5

t=$(now)
nft_fault oifname '"h4"'
sleep 4
let_go=$(log_ts 4 stalled "$t")
[ -n "$let_go" ] || let_go=$(now)
fault_span rx_dead "$t" - "$let_go"
fextra let_go_after_s "$(calc "$let_go - $t")"
fcheck "hosts 1-3 converged [1, 2, 3] while host 4 receives nothing" converged_as 1,2,3 1 2 3
owned=0
for i in 1 2 3; do owned=$((owned + $(query_field "$i" 'd["rules"][0]["buckets_owned"]'))); done
fcheck "hosts 1-3 own every bucket ($owned)" test "$owned" = 4096
yields=0
for i in 1 2 3; do yields=$((yields + $(count_events "$i" partition_yield "$t"))); done
fcheck "no host yielded its buckets to host 4 ($yields)" test "$yields" = 0
fcheck "host 4 said it receives nothing" \
  test "$(count_log 4 'nothing received.*"event":"link_down"' "$t")" = 1
fextra dropped_to_h4 "$(nft_dropped)"

fault_do heal -- nft_clear
fcheck "healed: 4 converged members within 10 s" wait_converged_as 1,2,3,4 10 1 2 3 4
stream_stop
faults_report
