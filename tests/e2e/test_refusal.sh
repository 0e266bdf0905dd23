#!/usr/bin/env bash
# E2E 8: a host whose port rules differ, and a host whose priority is taken, are refused: they
# serve nothing and say why, while the cluster keeps serving.
source "$(dirname "$0")/common.sh"
topo_init "nlbe8-$$"
for i in 1 2 3 4 5; do topo_add_host "$i"; done
topo_add_client 100
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "single"}]'
other='[{"vip": "all", "ports": [7000, 7001], "protocol": "both", "mode": "multiple", "affinity": "single"}]'
for i in 1 2 3; do host_config "$i" "$rules"; done
host_config 4 "$other"
# Host 5's namespace, configured as the cluster but with priority 2 (taken by host 2). Only
# the priority: with other timing too (the defaults' cleanup_delay_s, until 2026-12-06) it was
# refused for the configuration or for the priority by which peer's frame came first.
host_config 5 "$rules"
python3 - "$TOPO_DIR/h5.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["host"]["priority"] = 2
json.dump(c, open(sys.argv[1], "w"))
PY
for i in 1 2 3 4 5; do topo_start_server "$i" 7000 --vip "$CLUSTER_IP"; done
for i in 1 2 3; do topo_start_agent "$i"; done
wait_converged 3 20 1 2 3
topo_start_agent 4
topo_start_agent 5
# Until both say refused (loading the BPF programs alone took seconds on a loaded machine).
deadline=$((SECONDS + 20))
until [ "$(host_state 4) $(host_state 5)" = "refused refused" ] || ((SECONDS > deadline)); do
  sleep 0.2
done

q4=$(nlbadm_h 4 --json query)
q5=$(nlbadm_h 5 --json query)
echo "host 4: $(json '(d["host"]["state"], d["host"].get("reason", ""))' <<<"$q4")"
echo "host 5: $(json '(d["host"]["state"], d["host"].get("reason", ""))' <<<"$q5")"
check "different rules: refused" test "$(json 'd["host"]["state"]' <<<"$q4")" = refused
check "different rules: says why" python3 -c 'import sys; sys.exit(0 if "rule" in sys.argv[1] else 1)' "$(json 'd["host"].get("reason", "")' <<<"$q4")"
check "taken priority: refused" test "$(json 'd["host"]["state"]' <<<"$q5")" = refused
check "taken priority: says why" python3 -c 'import sys; sys.exit(0 if "priority" in sys.argv[1] else 1)' "$(json 'd["host"].get("reason", "")' <<<"$q5")"
q1=$(nlbadm_h 1 --json query)
check "the cluster keeps members [1, 2, 3]" test "$(json 'sorted(d["cluster"]["members"])' <<<"$q1")" = "[1, 2, 3]"
check "the cluster stays converged" test "$(json 'd["host"]["state"]' <<<"$q1")" = converged
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 3)
check "every request answered" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "only hosts 1-3 answer" test "$(json 'sorted(d["answers"])' <<<"$r")" = "['1', '2', '3']"
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --proto udp)
check "no duplicate UDP answers" test "$(json 'd["duplicates"]' <<<"$r")" = 0
e2e_finish
