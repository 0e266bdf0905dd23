#!/usr/bin/env bash
# Scans of empty tables walk nothing (docs/dataplane.md, "Scans of empty tables"): one host,
# no TCP connection yet: its quiet scans (2 s apart) are answered by the connection filter
# (`empty_scans` grows). A TCP connection is then held for 5 s: a scan sees its record. Once
# it has ended and its record is gone (10 s of grace after the close), a scan finds the tables
# empty under a filter that still has the record's bits, rebuilds the filter, and the scans
# after it walk nothing again.
source "$(dirname "$0")/common.sh"
topo_init "nlbes-$$"
topo_add_host 1
topo_add_client 1
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none"}]'
# Small tables: a scan that walks them is cheap, and the next quiet scan comes a thousand times
# a scan's CPU later (at least 2 s). Where the kernel refuses map iterators, scans copy the
# tables out, and a copy of the default tables (262,144 entries a family, empty or not) put
# the scan after the rebuild 8-30 s away, past this test's wait (it failed so in CI).
host_config 1 "$rules" unicast '[]' ', "opening_connections": 1024, "established_connections": 1024'
topo_start_server 1 7000 --vip "$CLUSTER_IP"
topo_start_agent 1
wait_converged 1 20 1
tables() { nlbadm_h 1 --json stats | json "d['connection_tables']['$1']"; }

e0=$(tables empty_scans)
sleep 5
e1=$(tables empty_scans)
echo "empty scans: $e0, 5 s later $e1"
check "scans of the empty tables walk nothing" test "$e1" -gt "$e0"

rebuilds=$(tables filter_rebuilds)
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+1 --count 1 \
  --duration 5 --interval 0.5 --timeout 2 >"$TOPO_DIR/hold.json" &
hold=$!
seen=0
for _ in $(seq 1 40); do # a quiet scan within 2 s sees the record (bounded: 4 s)
  seen=$(nlbadm_h 1 --json stats | json "d['connection_tables']['established'] + d['connection_tables']['opening']")
  ((seen == 0)) || break
  sleep 0.1
done
wait "$hold"
check "the held connection lasted" test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 1
check "a scan saw the connection's record" test "$seen" -gt 0

# Its record ends 10 s after the close; the scan after that rebuilds (bounded: 30 s).
for _ in $(seq 1 60); do
  (($(tables filter_rebuilds) > rebuilds)) && break
  sleep 0.5
done
check "the filter was rebuilt once the tables were empty" test "$(tables filter_rebuilds)" -gt "$rebuilds"
# The scan that found the tables empty walked them; the next comes its CPU x 1000 later.
# Bounded: 30 s.
e2=$(tables empty_scans) t2=$SECONDS b2=$(tables background_scans)
e3=$e2
while ((e3 <= e2 && SECONDS - t2 < 30)); do
  sleep 0.5
  e3=$(tables empty_scans)
done
echo "empty scans after the rebuild: $e2, $((SECONDS - t2)) s later $e3; walks meanwhile:" \
  "$(($(tables background_scans) - b2)) ($(tables scan))"
check "scans walk nothing again" test "$e3" -gt "$e2"
e2e_finish
