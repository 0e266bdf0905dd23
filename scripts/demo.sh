#!/usr/bin/env bash
# The README's first command: a real 3-host nlb cluster in network namespaces on this
# machine. Installs what is missing, builds, starts one nlb-agent and one HTTP server per
# host, shows `nlbadm query`, sends 300 HTTP requests from 100 client addresses and prints
# how many each host served, kills one host, prints the measured failover time and the new
# distribution, then tears everything down. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (network namespaces and XDP need it)" >&2; exit 1; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "dependencies and build"
scripts/install-deps.sh
# a tree scripts/test.sh configured (the package's flags) is kept as it is
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build nlb-agent nlbadm nlb_bpf_objects | tail -n 1

source tests/e2e/topology.sh
HEARTBEAT_MS=200
topo_init "nlbdemo"
step "3 hosts, a client with 100 addresses, on one bridge (namespaces $TOPO-*)"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 100
for i in 1 2 3; do
  topo_host_config "$i" "{
  \"cluster\": {\"ip\": \"$CLUSTER_IP\", \"heartbeat_ms\": $HEARTBEAT_MS, \"heartbeat_tolerance\": 5,
                \"peers\": [\"10.10.0.11\", \"10.10.0.12\", \"10.10.0.13\"]},
  \"host\": {\"priority\": $i, \"dedicated_ip\": \"10.10.0.$((10 + i))\", \"interface\": \"eth0\"},
  \"port_rules\": [{\"vip\": \"all\", \"ports\": [80, 80], \"protocol\": \"tcp\", \"mode\": \"multiple\",
                    \"affinity\": \"none\"},
                   {\"vip\": \"all\", \"ports\": [7000, 7000], \"protocol\": \"udp\", \"mode\": \"multiple\",
                    \"affinity\": \"single\"}]
}"
  topo_start_server "$i" 80 7000 --vip "$CLUSTER_IP"
  topo_start_agent "$i"
done
wait_converged 3 20 1 2 3

step "nlbadm query (host 1)"
nlbadm_h 1 query

count_http() { # N requests from the 100 client addresses; prints per-host counts
  local n=$1 k
  for ((k = 0; k < n; k++)); do
    ip netns exec "$TOPO-client" curl -s --max-time 2 \
      --interface "10.10.1.$((1 + k % 100))" "http://$CLUSTER_IP/" || echo "failed"
  done | sort | uniq -c | sed 's/^/    /'
}

step "300 HTTP requests to http://$CLUSTER_IP/ (curl, 100 client addresses)"
count_http 300

step "kill -9 host 3's agent and take its link down; measuring until every client is served"
mark="$TOPO_DIR/mark"
client probe --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --duration 8 \
  --interval 0.01 --timeout 0.03 --mark-file "$mark" >"$TOPO_DIR/probe.json" &
probe=$!
sleep 1
date +%s.%N >"$mark.new" && mv "$mark.new" "$mark"
{ kill -9 "$AGENT_PID_3" && wait "$AGENT_PID_3"; } 2>/dev/null || true
ip -n "$TOPO-h3" link set eth0 down
wait "$probe"
python3 - "$TOPO_DIR/probe.json" "$HEARTBEAT_MS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
period = int(sys.argv[2]) / 1000
print(f"    {r['affected_sources']} of {r['sources']} client addresses lost their host;")
print(f"    all served again after {r['recovery_s']:.2f} s "
      f"(= {r['recovery_s'] / period:.1f} heartbeat periods; bound: tolerance + 2 = 7)")
PY
wait_converged 2 20 1 2

step "300 HTTP requests again"
count_http 300

step "nlbadm query (host 1)"
nlbadm_h 1 query
step "tearing down"
