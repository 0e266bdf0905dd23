#!/usr/bin/env bash
# Fault "heal_one_way": a partition heals, but one member of the losing group still cannot
# hear the winners. Host 3's port and hosts 1-2's are cut apart both ways, and the clients
# reach host 3 only (so that both sides serve with no request answered twice, and host 3's
# side accepts every connection: it wins the heal). Then the cut heals but for host 3's frames
# to host 2: host 1 meets host 3, compares the groups' scores and yields; host 2 never hears
# host 3 and can only learn it from host 1 (its frames flagged "yielded",
# docs/convergence.md section 3, "Partition heal"). Then the clients reach hosts 1 and 2
# again, and last the one-way cut heals too.
#   zero requests answered twice over the run (the build before: host 2 served its half of
#   the buckets beside host 3 once the clients reached it); hosts 1 and 2 both yield, host 2
#   because host 1 did, host 3 never; after each event every request sent later than
#   (tolerance + 2) periods + slack is answered; all 3 converged members at the end.
source "$(dirname "$0")/lib.sh"
faults_init heal_one_way
faults_setup 1 2 3
start_cluster 1 2 3
stream_start
sleep 1.5

# The cuts change in one nft transaction each (nft_faults): a client's request reaching
# hosts 1-2 between two rules while their group still serves is answered twice.
clients_to_1_2='iifname "client" oifname { "h1", "h2" }'

# wait_yielded I SINCE: until host I logged a partition_yield at or after SINCE (bounded: 3 s).
wait_yielded() {
  local k
  for ((k = 0; k < 30; k++)); do
    [ "$(count_events "$1" partition_yield "$2")" = 0 ] || return 0
    sleep 0.1
  done
  return 1
}

fault_do partition -- nft_faults 'iifname "h3" oifname { "h1", "h2" }' \
  'iifname { "h1", "h2" } oifname "h3"' "$clients_to_1_2"
fcheck "partition: host 3 converged alone within 5 s" wait_converged_as 3 5 3
fcheck "partition: hosts 1 and 2 converged as [1, 2] within 5 s" wait_converged_as 1,2 5 1 2
sleep 2 # host 3's side accepts every connection meanwhile

t=$(now)
fault_do heal -- nft_faults 'iifname "h3" oifname "h2"' "$clients_to_1_2"
for i in 1 2; do fcheck "heal: host $i yields within 3 s" wait_yielded "$i" "$t"; done
fcheck "heal: host 2 yields because host 1 did" \
  test "$(count_log 2 'of our epoch let go of it at a partition heal' "$t")" -ge 1
fcheck "heal: host 3 does not yield" test "$(count_events 3 partition_yield "$t")" = 0
fextra owned_after_heal "$(nlbq summary 1 2 3)"

fault_do clients_back -- nft_faults 'iifname "h3" oifname "h2"'
sleep 2
fault_do heal_all -- nft_clear
fcheck "healed: 3 converged members within 10 s" wait_converged_as 1,2,3 10 1 2 3
stream_stop
faults_report
