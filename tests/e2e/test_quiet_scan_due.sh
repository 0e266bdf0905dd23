#!/usr/bin/env bash
# A settled host's quiet scans wait 1,000 times their cost (docs/agent.md): with its opening
# tables full, minutes. Connections its stack establishes meanwhile bring the next one sooner
# once they could crowd the established table (more than an eighth of one family's since the
# last scan: `quiet_scan_due`), since only a scan deletes their records once they closed. One
# host, its established tables at 1,024 entries (an eighth: 128), its opening tables filled
# (nlb-fill-conns): 100 connections bring no scan within 6 s, and its counts age; 100 more do,
# within 10 s, and that scan counts the closed ones.
source "$(dirname "$0")/common.sh"
topo_init "nlbqd-$$"
topo_add_host 1
topo_add_client 40
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none"}]'
host_config 1 "$rules" unicast '[]' ', "established_connections": 1024'
topo_start_server 1 7000 --vip "$CLUSTER_IP"
topo_start_agent 1
wait_converged 1 20 1
tables() { nlbadm_h 1 --json stats | json "d['connection_tables']$1"; }

"$BUILD/tests/tools/nlb-fill-conns" "$TOPO_DIR/bpffs/h1" >"$TOPO_DIR/fill.json"
echo "opening tables filled: $(cat "$TOPO_DIR/fill.json")"
full=$(json 'd["opening4"] + d["opening6"]' <"$TOPO_DIR/fill.json")
for _ in $(seq 1 60); do # the scan after the fill, within 2 s of it (bounded: 30 s)
  (($(tables "['opening']") >= full)) && break
  sleep 0.5
done
check "a quiet scan saw the full tables" test "$(tables "['opening']")" -ge "$full"
scans0=$(tables "['background_scans']")

burst() { # FIRST+N: 5 connections from each of N addresses from FIRST on, closed
  client burst --vip "$CLUSTER_IP" --port 7000 --sources "$1" --per-source 5 >"$TOPO_DIR/burst.json"
  check "$((${1#*+} * 5)) connections answered" test "$(json 'sum(d["answers"].values())' <"$TOPO_DIR/burst.json")" = $((${1#*+} * 5))
}
burst 10.10.1.1+20
sleep 6
check "100 connections (under an eighth of the table) brought no scan" \
  test "$(tables "['background_scans']")" = "$scans0"
check "the counts say how old they are ($(tables "['counts_age_s']") s)" \
  python3 -c 'import sys; assert float(sys.argv[1]) > 5' "$(tables "['counts_age_s']")"

burst 10.10.1.21+20
for _ in $(seq 1 100); do # the recorded count is read once a second (bounded: 10 s)
  (($(tables "['background_scans']") > scans0)) && break
  sleep 0.1
done
check "100 more brought a scan within 10 s" test "$(tables "['background_scans']")" -gt "$scans0"
counted=$(tables "['closing'] + d['connection_tables']['established_ended'] + d['connection_tables']['established']")
check "that scan counted the 200 connections ($counted)" test "$counted" -ge 200
e2e_finish
