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

# affinity_single LABEL VIP SOURCES PER_SOURCE DATAGRAMS (rule 7002): each client address's
# datagrams go to one host, whole and fragmented alike; a fragmented one is three fragments,
# which one host accepts and two drop. Leaves the fragmented burst's result in $large.
affinity_single() {
  local label=$1 vip=$2 sources=$3 per=$4 n=$5 small before d
  small=$(client burst --proto udp --vip "$vip" --port 7002 --sources "$sources" --per-source "$per")
  before=$(snapshot)
  large=$(client burst --proto udp --size 4000 --vip "$vip" --port 7002 --sources "$sources" \
    --per-source "$per")
  d=($(delta "$before" "$(snapshot)"))
  echo "$label, $n datagrams of 4,000 bytes: $(json '{k: d[k] for k in ("answers", "duplicates")}' <<<"$large"), accepted ${d[0]}, dropped ${d[1]}, recorded ${d[3]}, unmatched ${d[4]}"
  check "$label: every fragmented datagram answered, none twice" \
    test "$(answered "$large") $(json 'd["duplicates"]' <<<"$large")" = "$n 0"
  check "$label: each client's host the same as for its whole datagrams" \
    test "$(json 'sorted(d["per_source"].items())' <<<"$large")" = "$(json 'sorted(d["per_source"].items())' <<<"$small")"
  check "$label: 3 fragments accepted a datagram (${d[0]})" test "${d[0]}" = $((3 * n))
  check "$label: 6 dropped a datagram, by the other two hosts (${d[1]})" test "${d[1]}" = $((6 * n))
  check "$label: every host recorded every first fragment (${d[3]})" test "${d[3]}" = $((3 * n))
  # A later fragment without a record goes to every host (counted unmatched): kept in order
  # on this segment, hardly any should; a dataplane that lost the records would count 6 a
  # datagram.
  check "$label: later fragments found their records (${d[4]} unmatched)" test "${d[4]}" -le $((n / 16))
  check "$label: nothing malformed" test "${d[5]}" = 0
}

# Affinity single over IPv4 (the short path for later fragments): 100 client addresses.
affinity_single single "$CLUSTER_IP" 10.10.1.1+100 1 100
check "single: spread over the hosts" test "$(json 'len(d["answers"])' <<<"$large")" = 3

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

# IPv6 (its fragment header an extension header: the general path): 16 client addresses,
# 4 datagrams each.
affinity_single IPv6 fd00::100 "$(seq -f 'fd00::1:%g' -s, 1 16)" 4 64

# The disabled rule (0-1023) drops its own ports' fragments, on every host, and nothing more.
before=$(snapshot)
r=$(client burst --proto udp --size 4000 --vip "$CLUSTER_IP" --port 1000 --sources 10.10.1.1+10 \
  --timeout 0.5)
d=($(delta "$before" "$(snapshot)"))
check "disabled: nothing answers" test "$(json 'len(d["failures"])' <<<"$r")" = 10
check "disabled: every fragment dropped as disabled on every host (${d[2]})" test "${d[2]}" = 90
e2e_finish
