# shellcheck shell=bash
# Shared by the end-to-end tests: topology, configs, assertions. Source it from a test.
set -euo pipefail
# shellcheck source=topology.sh
source "$(dirname "${BASH_SOURCE[0]}")/topology.sh"

E2E_FAILED=0

fail() {
  echo "FAIL: $*" >&2
  E2E_FAILED=1
}

check() { # check "description" command...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else fail "$what"; fi
}

# Whether this kernel lets root load the connection scan's map iterators. Some kernels' policy
# refuses tracing programs to every process (EPERM before the verifier runs; this project's
# test machines' since 2026-12-02): the agent then copies the tables and says why, and the
# tests check that instead of the kernel's scan. Needs a bpffs at /sys/fs/bpf (scripts/test.sh).
kernel_allows_iterators() {
  local pins=/sys/fs/bpf/nlb_iter_probe_$$_$RANDOM rc=0 # bpffs takes no '.' in a name
  bpftool prog loadall "$BUILD/bpf/conn_scan.bpf.o" "$pins" 2>/dev/null || rc=1
  rm -rf "$pins"
  return "$rc"
}

# log_lines I: the lines in host I's log so far; since I LINE: those after line LINE.
log_lines() { wc -l <"$TOPO_DIR/h$1.log"; }
since() { tail -n +$(($2 + 1)) "$TOPO_DIR/h$1.log"; }
# adopted_since I LINE: an agent of host I that logged after line LINE (text log) adopted the
# pinned dataplane: its `attached` says adopted=true (one that attached afresh logs
# adopted=false, and `connections_adopted` follows every attach). grep reads to the end: with
# -q, under pipefail, tail cut off by SIGPIPE would turn a match into a failure.
adopted_since() { since "$1" "$2" | grep -E '^info attached .*adopted=true' >/dev/null; }

# json EXPR < document: evaluates a Python expression over the parsed JSON `d`.
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# The JSON config of host I: cluster IP + optional VIPs, rules, mode, extra host keys;
# $CLUSTER_EXTRA (', "key": value ...') adds cluster keys.
host_config() {
  local i=$1 rules=${2:-} mode=${3:-unicast} vips=${4:-[]} extra=${5:-}
  local r=""
  [ -z "$rules" ] || r=", \"port_rules\": $rules"
  topo_host_config "$i" "{
  \"cluster\": {\"ip\": \"$CLUSTER_IP\", \"vips\": $vips, \"mode\": \"$mode\",
                \"heartbeat_ms\": ${HEARTBEAT_MS:-100}, \"heartbeat_tolerance\": ${TOLERANCE:-5},
                \"cleanup_delay_s\": ${CLEANUP_DELAY_S:-30}${CLUSTER_EXTRA:-}},
  \"host\": {\"priority\": $i, \"dedicated_ip\": \"10.10.0.$((10 + i))\", \"interface\": \"eth0\"$extra}$r
}"
}

# start_hosts RULES HOST...: each HOST configured with RULES, its test server on port 7000 for
# the cluster IP, and its agent started.
start_hosts() {
  local rules=$1 i
  shift
  for i in "$@"; do
    host_config "$i" "$rules"
    topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
    topo_start_agent "$i"
  done
}

# host_state HOST: the state its agent reports (nothing while it does not answer).
# wait_host_state HOST STATE SECONDS: until it reports STATE; false if it never did.
host_state() { nlbadm_h "$1" --json query 2>/dev/null | json 'd["host"]["state"]' 2>/dev/null; }
wait_host_state() {
  local deadline=$((SECONDS + $3))
  until [ "$(host_state "$1")" = "$2" ] || ((SECONDS > deadline)); do sleep 0.1; done
  [ "$(host_state "$1")" = "$2" ]
}

# switched BEFORE HOST...: every HOST settled on one and the same configuration, not BEFORE,
# and stages nothing (docs/staged-config.md). wait_switched BEFORE SECONDS HOST...: until then.
switched() {
  local before=$1 i active staged converged first=""
  shift
  for i in "$@"; do
    read -r active staged converged < <(nlbadm_h "$i" --json query | json '" ".join(str(v) for v in
      (d["cluster"]["configuration"]["active"], d["cluster"]["configuration"]["staged"],
       d["cluster"]["converged"]))') || return 1
    [ "$staged $converged" = "None True" ] && [ "$active" != "$before" ] &&
      [ "${first:=$active}" = "$active" ] || return 1
  done
}
wait_switched() {
  local before=$1 deadline=$((SECONDS + $2))
  shift 2
  until switched "$before" "$@" || ((SECONDS > deadline)); do sleep 0.1; done
}

# Per-host share of a burst result: every host within ±PCT % of an equal share.
balanced() {
  local result=$1 hosts=$2 pct=$3
  python3 - "$result" "$hosts" "$pct" <<'PY'
import json, sys
r, hosts, pct = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
total = sum(r["answers"].values())
share = total / hosts
dev = {h: (n - share) / share * 100 for h, n in r["answers"].items()}
print("shares:", r["answers"], "deviation %:", {h: round(v, 1) for h, v in dev.items()})
sys.exit(0 if len(r["answers"]) == hosts and all(abs(v) <= pct for v in dev.values()) else 1)
PY
}

# connections_balanced SECONDS PORT HOSTS...: the mean of each host's established TCP
# connections on PORT (ss in its namespace, a sample every 0.1 s plus what the samples take)
# over SECONDS; prints them and succeeds when the largest is within 15 % of the smallest.
connections_balanced() {
  local end=$((SECONDS + $1)) port=$2 i
  shift 2
  while ((SECONDS < end)); do
    for i in "$@"; do
      printf '%s ' "$(ip netns exec "$TOPO-h$i" ss -Htn state established "( sport = :$port )" | wc -l)"
    done
    echo
    sleep 0.1
  done | python3 -c '
import sys
rows = [list(map(int, l.split())) for l in sys.stdin if l.strip()]
means = [sum(r[i] for r in rows) / len(rows) for i in range(len(rows[0]))]
print("active connections per host (mean):", [round(m, 1) for m in means],
      "max/min %.2f" % (max(means) / max(min(means), 0.1)))
sys.exit(0 if min(means) > 0 and max(means) <= 1.15 * min(means) else 1)'
}

e2e_finish() {
  if ((E2E_FAILED)); then
    echo "--- agent logs ---" >&2
    tail -n 40 "$TOPO_DIR"/h*.log >&2 || true
    exit 1
  fi
  echo "PASS"
}
