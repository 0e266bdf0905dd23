#!/usr/bin/env bash
# HTTP requests per second through nlb on one host: wrk in a client namespace against nginx in
# a 1-host cluster (tests/e2e/topology.sh: veths on a bridge), so the host owns every bucket and
# what is measured is the cost of the XDP program and the agent on traffic the host keeps.
# Three variants, all with the same nginx:
#   direct   at the dedicated IP, no agent, no XDP on the host's eth0
#   vip      at the cluster IP with the agent attached (XDP in the mode `auto` picks)
#   dip      at the dedicated IP with the agent attached
# Runs go direct, nlb, direct, nlb, ..., direct: in each round the agent starts, vip and dip run
# (in alternating order) and the agent stops (SIGTERM: XDP detached, VIP removed). Rates swing
# ±20 % between runs on a shared machine, so a round's ratio is set against the mean of the
# two direct runs around it, seconds away; the ratios are medians of the rounds' ratios, the
# rates medians of the runs. Installs nginx-light and wrk when missing (never started as a
# service: nginx runs with its own config in the host's namespace). Progress on stderr; last
# line: one JSON object.
#   usage: scripts/bench/http.sh [DURATION_S] [ROUNDS]   (as root; BUILD=build by default)
#   env:   CONNECTIONS=32 (wrk connections, 1 thread), PIN=1 (wrk on CPU 0, nginx on CPU 1),
#          NICE=-10 (for every process of the benchmark)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-5}
rounds=${2:-5}
connections=${CONNECTIONS:-32}
pin=${PIN:-1}
nice=${NICE:--10}
export BUILD=${BUILD:-$PWD/build}
[ "$(id -u)" -eq 0 ] || { echo "http: run as root" >&2; exit 1; }
[[ $duration =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || {
  echo "usage: scripts/bench/http.sh [DURATION_S] [ROUNDS]" >&2; exit 2; }
# Ahead of other work on the machine (builds, tests), which otherwise decides the rates; every
# process started below (agent, nginx, wrk) inherits it, so nlb's cost is still counted whole.
renice -n "$nice" -p $$ >/dev/null

if [ ! -x "$BUILD/agent/daemon/nlb-agent" ] || [ ! -x "$BUILD/cli/nlbadm" ] ||
  [ ! -f "$BUILD/bpf/bare.bpf.o" ]; then
  scripts/install-deps.sh
  cmake -S . -B "$BUILD" -G Ninja >/dev/null
  ninja -C "$BUILD" nlb-agent nlbadm nlb_bpf_objects >/dev/null
fi

# Not in install-deps.sh: no test needs them. A package's postinst would start nginx on the
# machine's port 80; a policy-rc.d that refuses every start prevents that (Debian's convention,
# honoured by invoke-rc.d and deb-systemd-invoke), and only for the length of the install.
install_tools() {
  local missing=() policy=/usr/sbin/policy-rc.d ours=0
  [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v wrk >/dev/null || missing+=(wrk)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "http: installing ${missing[*]}" >&2
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get -o DPkg::Lock::Timeout=600 update -qq
  timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  if ((ours)); then rm -f "$policy"; trap - EXIT; fi
  # Nor should the package's service come up at the next boot: this script starts its own.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now nginx >/dev/null 2>&1 || true
    else
      update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
  fi
}
install_tools

# shellcheck source=tests/e2e/topology.sh
source tests/e2e/topology.sh
topo_init "nlbhttp-$$"
topo_add_host 1
topo_add_client 1
host=$TOPO-h1
dip=10.10.0.11

# The cluster as a user would write it (default heartbeat and tolerance: the agent's own load is
# part of the cost), with one rule for the port under test.
topo_host_config 1 "{
  \"cluster\": {\"ip\": \"$CLUSTER_IP\", \"mode\": \"unicast\"},
  \"host\": {\"priority\": 1, \"dedicated_ip\": \"$dip\", \"interface\": \"eth0\"},
  \"port_rules\": [{\"vip\": \"all\", \"ports\": [80, 80], \"protocol\": \"tcp\",
                    \"mode\": \"multiple\", \"affinity\": \"single\"}]
}"

# nginx entirely in $TOPO_DIR (config, pid, logs, temp files), so that Debian's own config,
# logs and service stay untouched; its workers run as nobody and must reach the document root.
chmod 711 "$TOPO_DIR"
mkdir -p "$TOPO_DIR/nginx/www" "$TOPO_DIR/nginx/tmp"
chmod 755 "$TOPO_DIR/nginx" "$TOPO_DIR/nginx/www"
# A page about the size of nginx's default one: one segment per answer.
python3 -c 'print("<!DOCTYPE html><html><body>" + "nlb " * 140 + "</body></html>")' \
  >"$TOPO_DIR/nginx/www/index.html"
chmod 644 "$TOPO_DIR/nginx/www/index.html"
cat >"$TOPO_DIR/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $TOPO_DIR/nginx/nginx.pid;
error_log $TOPO_DIR/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TOPO_DIR/nginx/tmp;
  sendfile on;
  server {
    listen 80 default_server;
    root $TOPO_DIR/nginx/www;
  }
}
CONF
# wrk and nginx on separate cores, as a client and a server on separate machines would be: each
# takes half a core or more, and sharing one would measure their contention, not the path.
wrk_cpu=() nginx_cpu=()
if ((pin)) && [ "$(nproc)" -ge 2 ]; then wrk_cpu=(taskset -c 0) nginx_cpu=(taskset -c 1); fi
ip netns exec "$host" "${nginx_cpu[@]}" nginx -p "$TOPO_DIR/nginx" -c "$TOPO_DIR/nginx/nginx.conf" \
  -e "$TOPO_DIR/nginx/error.log" -g 'daemon off;' >>"$TOPO_DIR/nginx/stderr.log" 2>&1 &
TOPO_PIDS+=($!)

die() {
  echo "http: $*" >&2
  tail -n 20 "$TOPO_DIR"/h1.log "$TOPO_DIR"/nginx/*.log >&2 2>/dev/null || true
  exit 1
}

# One page fetched from the client: nginx listens and the address answers (ARP resolved).
reachable() {
  local url=$1 deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    ip netns exec "$TOPO-client" curl -sf --max-time 2 -o /dev/null "$url" && return 0
    sleep 0.2
  done
  die "no answer from $url within 10 s"
}

run_wrk() { # variant ip -> requests/s
  local name=$1 url="http://$2/" out rps
  reachable "$url"
  out=$(timeout $((duration + 30)) ip netns exec "$TOPO-client" "${wrk_cpu[@]}" \
    wrk -t1 -c"$connections" -d"${duration}s" --timeout 2s "$url") || die "wrk $name failed: $out"
  # A failed request would make a rate mean nothing: nlb must lose none of them.
  if grep -q "Socket errors\|Non-2xx" <<<"$out"; then die "wrk $name saw errors: $out"; fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  [ -n "$rps" ] || die "wrk $name: no rate in: $out"
  echo "  $name $rps req/s" >&2
  echo "$rps"
}

accepted() { # packets the XDP program accepted for a VIP, every rule
  nlbadm_h 1 --json stats | python3 -c 'import json,sys; print(sum(r["accepted"] for r in json.load(sys.stdin)["rules"]))'
}

agent_pid=
start_agent() {
  local deadline=$((SECONDS + 30)) q
  rm -f "$TOPO_DIR/h1.log"
  topo_start_agent 1 --xdp-mode auto # the later option wins over topology's generic
  agent_pid=$AGENT_PID_1
  until q=$(nlbadm_h 1 --json query 2>/dev/null) &&
    [ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["host"]["state"])' <<<"$q")" = converged ]; do
    kill -0 "$agent_pid" 2>/dev/null || die "agent exited before converging"
    ((SECONDS < deadline)) || die "agent not converged within 30 s"
    sleep 0.2
  done
  read -r xdp_mode xdp_reason < <(python3 -c '
import json, sys
h = json.load(sys.stdin)["host"]
print(h["xdp_mode"], h["xdp_mode_reason"])' <<<"$q")
}

# SIGTERM detaches: no XDP and no VIP may remain, or the next direct round would measure nlb.
stop_agent() {
  local deadline=$((SECONDS + 15)) rc=0
  kill -TERM "$agent_pid"
  while kill -0 "$agent_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -0 "$agent_pid" 2>/dev/null && die "agent still running 15 s after SIGTERM"
  wait "$agent_pid" || rc=$?
  # Reaped: its pid may be anyone's by the time topo_cleanup kills what it started.
  local pids=() p
  for p in "${TOPO_PIDS[@]}"; do [ "$p" = "$agent_pid" ] || pids+=("$p"); done
  TOPO_PIDS=("${pids[@]}")
  ((rc == 0)) || die "agent exited with $rc after SIGTERM"
  [[ $(ip -n "$host" link show eth0) != *xdp* ]] || die "XDP still on eth0 after the agent stopped"
  [[ $(ip -n "$host" -4 addr show eth0) != *"inet $CLUSTER_IP/"* ]] ||
    die "VIP still on eth0 after the agent stopped"
}

with_nlb() { # round: vip and dip (in the order given) with the agent attached
  local v before after
  start_agent
  for v in "$@"; do
    if [ "$v" = vip ]; then
      before=$(accepted)
      vip+=("$(run_wrk "nlb_vip" "$CLUSTER_IP")")
      after=$(accepted)
      # At least a packet per request through the XDP program's accept path, not around it.
      python3 -c 'import sys; sys.exit(int(sys.argv[1]) < 0.9 * float(sys.argv[2]) * int(sys.argv[3]))' \
        "$((after - before))" "${vip[-1]}" "$duration" ||
        die "only $((after - before)) packets accepted for the VIP at ${vip[-1]} requests/s"
    else
      dipr+=("$(run_wrk "nlb_dip" "$dip")")
    fi
  done
  stop_agent
}

# direct, nlb, direct, nlb, ..., direct: each round's nlb rates are set against the mean of the
# direct runs on either side, which cancels a load that rises or falls steadily; vip and dip
# swap places every round for the same reason.
direct=() vip=() dipr=() xdp_mode="" xdp_reason=""
start=$SECONDS
direct+=("$(run_wrk direct "$dip")")
for ((i = 0; i < rounds; i++)); do
  echo "round $((i + 1))/$rounds" >&2
  if ((i % 2 == 0)); then with_nlb vip dip; else with_nlb dip vip; fi
  direct+=("$(run_wrk direct "$dip")")
done
echo "xdp mode $xdp_mode ($xdp_reason); $((SECONDS - start)) s" >&2

python3 - "$xdp_mode" "$rounds" "$duration" "${direct[*]}" "${vip[*]}" "${dipr[*]}" <<'PY'
import json, statistics, sys
mode, rounds, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
direct, vip, dip = ([float(x) for x in a.split()] for a in sys.argv[4:7])
around = [(a + b) / 2 for a, b in zip(direct, direct[1:])]
ratio = lambda xs: round(statistics.median(x / d for x, d in zip(xs, around)), 3)
print(json.dumps({
    "direct_rps": round(statistics.median(direct)),
    "nlb_vip_rps": round(statistics.median(vip)),
    "nlb_dip_rps": round(statistics.median(dip)),
    "vip_ratio": ratio(vip),
    "dip_ratio": ratio(dip),
    "xdp_mode": mode,
    "rounds": rounds,
    "duration_s": duration,
}))
PY
