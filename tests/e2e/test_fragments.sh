#!/usr/bin/env bash
# Fragmented datagrams on the wire (issue 11, item 4; docs/dataplane.md "Fragments"): the
# client's own kernel fragments UDP datagrams of 4,000 bytes for the segment's MTU of 1,500
# (three fragments each), and every host's dataplane sees every fragment. The host that the
# first fragment (its ports) selects takes all three and answers once; the others drop all
# three; each later fragment finds its first fragment's record. Rules as in the issue's
# cases: a disabled 0-1023 beside the ports served, affinity none (the source port counts)
# and a single-host rule; and IPv6 (its fragment header an extension header: the general
# path). The BPF tests (tests/bpf/test_fragments.cpp) cover the orders a
# segment rarely makes (a later fragment first, an expired record, a reused ID).
source "$(dirname "$0")/common.sh"
topo_init "nlbfr-$$"
for i in 1 2 3; do topo_add_host "$i" v6; done
topo_add_client 100
for i in 1 2 3; do
  hp=$((4 - i)) # host 3 has the best handling priority
  host_config "$i" "[
    {\"vip\": \"all\", \"ports\": [0, 1023], \"protocol\": \"both\", \"mode\": \"disabled\"},
    {\"vip\": \"all\", \"ports\": [1024, 6999], \"protocol\": \"both\", \"mode\": \"multiple\", \"affinity\": \"single\"},
    {\"vip\": \"all\", \"ports\": [7000, 7000], \"protocol\": \"udp\", \"mode\": \"multiple\", \"affinity\": \"none\"},
    {\"vip\": \"all\", \"ports\": [7001, 7001], \"protocol\": \"udp\", \"mode\": \"single\", \"handling_priority\": $hp},
    {\"vip\": \"all\", \"ports\": [7002, 65535], \"protocol\": \"both\", \"mode\": \"multiple\", \"affinity\": \"single\"}
  ]" unicast '["fd00::100"]'
  topo_start_server "$i" 7000 7001 7002 --vip "$CLUSTER_IP" --vip fd00::100
  topo_start_agent "$i"
done
wait_converged 3 20 1 2 3

# counters HOST: accepted, dropped_not_owner and dropped_disabled over every rule, then the
# dataplane's fragments_recorded, fragments_unmatched and malformed.
counters() {
  nlbadm_h "$1" --json stats | json '" ".join(str(x) for x in (
    sum(r["accepted"] for r in d["rules"]), sum(r["dropped_not_owner"] for r in d["rules"]),
    sum(r["dropped_disabled"] for r in d["rules"]), d["dataplane"]["fragments_recorded"],
    d["dataplane"]["fragments_unmatched"], d["dataplane"]["malformed"]))'
}
# delta BEFORE... AFTER...: the field-wise sums of the three hosts' differences.
snapshot() { echo "$(counters 1) $(counters 2) $(counters 3)"; }
delta() {
  python3 - "$1" "$2" <<'PY'
import sys
a, b = (list(map(int, s.split())) for s in sys.argv[1:])
print(" ".join(str(sum(b[h * 6 + f] - a[h * 6 + f] for h in range(3))) for f in range(6)))
PY
}
answered() { json 'sum(len(v) for v in d["per_source"].values())' <<<"$1"; }

# Affinity single (7002): the host of each client address, whole datagrams and fragmented.
small=$(client burst --proto udp --vip "$CLUSTER_IP" --port 7002 --sources 10.10.1.1+100)
before=$(snapshot)
large=$(client burst --proto udp --size 4000 --vip "$CLUSTER_IP" --port 7002 --sources 10.10.1.1+100)
d=($(delta "$before" "$(snapshot)"))
echo "7002, 100 datagrams of 4,000 bytes: $(json '{k: d[k] for k in ("answers", "duplicates")}' <<<"$large"), accepted ${d[0]}, dropped ${d[1]}, recorded ${d[3]}, unmatched ${d[4]}"
check "single: every fragmented datagram answered" test "$(answered "$large")" = 100
check "single: none answered twice" test "$(json 'd["duplicates"]' <<<"$large")" = 0
check "single: spread over the hosts" test "$(json 'len(d["answers"])' <<<"$large")" = 3
check "single: each client's host the same as for its whole datagrams" \
  test "$(json 'sorted(d["per_source"].items())' <<<"$large")" = "$(json 'sorted(d["per_source"].items())' <<<"$small")"
# Three fragments a datagram: one host takes the three, two drop them.
check "single: 3 fragments accepted a datagram (${d[0]})" test "${d[0]}" = 300
check "single: 6 dropped a datagram, by the other two hosts (${d[1]})" test "${d[1]}" = 600
check "single: every host recorded every first fragment (${d[3]})" test "${d[3]}" = 300
# A later fragment without a record goes to every host (counted unmatched): kept in order
# on this segment, none should; a dataplane that lost the records would count 600.
check "single: later fragments found their records (${d[4]} unmatched)" test "${d[4]}" -le 6
check "single: nothing malformed" test "${d[5]}" = 0

# Affinity none (7000): the source port counts, so each client's datagrams, from one port,
# whole and fragmented, go to one host, and the addresses spread.
small=$(client burst --proto udp --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --first-port 40000)
large=$(client burst --proto udp --size 4000 --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --first-port 40000)
check "none: every fragmented datagram answered, none twice" \
  test "$(answered "$large") $(json 'd["duplicates"]' <<<"$large")" = "100 0"
check "none: each client port's host the same as for its whole datagrams" \
  test "$(json 'sorted(d["per_source"].items())' <<<"$large")" = "$(json 'sorted(d["per_source"].items())' <<<"$small")"
other=$(client burst --proto udp --size 4000 --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.7 \
  --per-source 60)
check "none: one client's fragmented datagrams from 60 ports reach all 3 hosts" \
  test "$(json 'len(d["answers"])' <<<"$other")" = 3

# A single-host rule (7001): host 3, the best handling priority, takes every fragment.
before=$(snapshot)
large=$(client burst --proto udp --size 4000 --vip "$CLUSTER_IP" --port 7001 --sources 10.10.1.1+50)
d=($(delta "$before" "$(snapshot)"))
check "single-host rule: host 3 answers every fragmented datagram" \
  test "$(json 'd["answers"]' <<<"$large")" = "{'3': 50}"
check "single-host rule: 3 fragments accepted, 6 dropped a datagram (${d[0]}, ${d[1]})" \
  test "${d[0]} ${d[1]}" = "150 300"

# IPv6: 16 client addresses, 4 datagrams each (affinity single: one host per address).
sources6=$(seq -f 'fd00::1:%g' -s, 1 16)
small=$(client burst --proto udp --vip fd00::100 --port 7002 --sources "$sources6" --per-source 4)
before=$(snapshot)
large=$(client burst --proto udp --size 4000 --vip fd00::100 --port 7002 --sources "$sources6" \
  --per-source 4)
d=($(delta "$before" "$(snapshot)"))
echo "IPv6, 64 datagrams of 4,000 bytes: $(json 'd["answers"]' <<<"$large"), accepted ${d[0]}, dropped ${d[1]}, recorded ${d[3]}, unmatched ${d[4]}"
check "IPv6: every fragmented datagram answered, none twice" \
  test "$(answered "$large") $(json 'd["duplicates"]' <<<"$large")" = "64 0"
check "IPv6: each client's host the same as for its whole datagrams" \
  test "$(json 'sorted(d["per_source"].items())' <<<"$large")" = "$(json 'sorted(d["per_source"].items())' <<<"$small")"
check "IPv6: 3 fragments accepted and 6 dropped a datagram (${d[0]}, ${d[1]})" \
  test "${d[0]} ${d[1]}" = "192 384"
check "IPv6: every first fragment recorded, later ones found their records (${d[3]}, ${d[4]})" \
  bash -c "((${d[3]} == 192 && ${d[4]} <= 4 && ${d[5]} == 0))"

# The disabled rule (0-1023) drops its own ports' fragments, on every host, and nothing more.
before=$(snapshot)
r=$(client burst --proto udp --size 4000 --vip "$CLUSTER_IP" --port 1000 --sources 10.10.1.1+10 \
  --timeout 0.5)
d=($(delta "$before" "$(snapshot)"))
check "disabled: nothing answers" test "$(json 'len(d["failures"])' <<<"$r")" = 10
check "disabled: every fragment dropped as disabled on every host (${d[2]})" test "${d[2]}" = 90
e2e_finish
