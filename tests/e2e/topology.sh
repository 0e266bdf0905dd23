# shellcheck shell=bash
# A cluster segment on one machine (DESIGN.md §7): a bridge in its own namespace, one
# namespace per host with one veth (nlb's XDP goes on the host side, a pass-through XDP on
# the bridge side so that XDP_TX answers reach the bridge), a client namespace with many
# source addresses and a bystander namespace. Source this file, then:
#   topo_init NAME            namespaces NAME-*, state in $TOPO_DIR, cleanup on exit
#   topo_add_host I [V6]      namespace NAME-hI, eth0 10.10.0.(10+I)/16 (+ fd00::(10+I)/64)
#   topo_add_filtering_host I the same, IPv4 only, with an eth0 that filters multicast (below)
#   topo_add_client COUNT     namespace NAME-client, sources 10.10.1.1 .. (+ fd00::1:1 ..)
#   topo_add_bystander        namespace NAME-bystander, 10.10.0.250/16
#   topo_host_config I JSON   writes $TOPO_DIR/hI.json
#   topo_start_agent I [ARGS] starts nlb-agent in NAME-hI (socket, pin dir, state dir in
#                             $TOPO_DIR)
#   nlbadm_h I ARGS           nlbadm against host I's agent
# Everything is removed by topo_cleanup (registered on EXIT), even when a test fails; with
# TOPO_KEEP=DIR the run's files (agents' logs and configs, servers' request logs) are copied
# there first, to read after a failed or puzzling run.

# Debian's python3 when there is one: a version manager's shim (pyenv) costs a second per call
# on a loaded machine, and the tests call it in their polling loops.
python3() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else command python3 "$@"; fi; }

NLB_ROOT=${NLB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-$NLB_ROOT/build}
NLB_AGENT=${NLB_AGENT:-$BUILD/agent/daemon/nlb-agent}
NLBADM=${NLBADM:-$BUILD/cli/nlbadm}
CLUSTER_IP=10.10.0.100

topo_init() {
  TOPO=$1
  TOPO_DIR=$(mktemp -d "/tmp/$TOPO.XXXXXX")
  TOPO_HOSTS=()
  TOPO_PIDS=()
  trap topo_cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir "$TOPO_DIR/bpffs"
  mount -t bpf bpf "$TOPO_DIR/bpffs"
  ip netns add "$TOPO-br"
  ip -n "$TOPO-br" link add br0 type bridge
  ip -n "$TOPO-br" link set br0 up
}

topo_cleanup() {
  local pid ns
  for pid in "${TOPO_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${TOPO_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  # The cgroups the killed agents' exec commands ran in (agent/health/probe_cgroup.cpp): under
  # the agents' cgroup, which is this shell's, where the cgroup2 tree is mounted.
  local cg own
  own=$(sed -n 's/^0:://p' /proc/$$/cgroup)
  own=${own%/}
  for pid in "${TOPO_PIDS[@]}"; do
    for cg in /sys/fs/cgroup"$own"/nlb-probe-"$pid"-* /sys/fs/cgroup/unified"$own"/nlb-probe-"$pid"-*; do
      [ -d "$cg" ] || continue
      echo 1 >"$cg/cgroup.kill" 2>/dev/null || true
      rmdir "$cg" 2>/dev/null || { sleep 0.2; rmdir "$cg" 2>/dev/null || true; }
    done
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$TOPO-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -n "${TOPO_DIR:-}" ] && [ -d "$TOPO_DIR" ]; then
    if [ -n "${TOPO_KEEP:-}" ]; then
      mkdir -p "$TOPO_KEEP" && find "$TOPO_DIR" -maxdepth 1 -type f -exec cp -t "$TOPO_KEEP" {} + || true
    fi
    umount "$TOPO_DIR/bpffs" 2>/dev/null || true
    rm -rf "$TOPO_DIR"
  fi
}

# veth NAME-NS/eth0 <-> NAME-br/PORT, bridge side on br0 with a pass-through XDP program.
topo_link() {
  local ns=$1 port=$2
  ip link add eth0 netns "$ns" type veth peer name "$port" netns "$TOPO-br"
  ip -n "$TOPO-br" link set "$port" master br0
  # A switch port sends nothing of its own: without this the port's IPv6 stack sends its
  # router solicitations and MLD reports straight to the host, past the bridge and any fault
  # a test sets on it (a port that stopped delivering would seem to deliver those).
  ip netns exec "$TOPO-br" sysctl -qw "net.ipv6.conf.$port.disable_ipv6=1"
  ip -n "$TOPO-br" link set "$port" xdpdrv obj "$BUILD/bpf/bare.bpf.o" sec xdp
  ip -n "$TOPO-br" link set "$port" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
}

topo_add_host() {
  local i=$1 v6=${2:-}
  local ns=$TOPO-h$i
  ip netns add "$ns"
  topo_link "$ns" "h$i"
  ip -n "$ns" addr add "10.10.0.$((10 + i))/16" dev eth0
  [ -z "$v6" ] || ip -n "$ns" addr add "fd00::$((10 + i))/64" dev eth0 nodad
  TOPO_HOSTS+=("$i")
}

# A veth delivers every multicast frame, whatever the host joined. A NIC does not, and neither
# does a macvlan: it hands a multicast frame to its host only when the address is in the
# device's multicast list. So this host's eth0 is a macvlan on the peer of its bridge port, and
# a test sees what the host's memberships let in. IPv6 is off on it: fewer addresses in its
# (hashed, 256-bit) filter, so another address sharing the cluster MAC's bit is unlikely.
topo_add_filtering_host() {
  local i=$1
  local ns=$TOPO-h$i
  ip netns add "$ns"
  ip -n "$TOPO-br" link add "h$i" type veth peer name "l$i"
  ip -n "$TOPO-br" link set "h$i" master br0
  ip -n "$TOPO-br" link set "h$i" up
  ip -n "$TOPO-br" link set "l$i" up
  ip -n "$TOPO-br" link add "m$i" link "l$i" type macvlan mode private
  ip -n "$TOPO-br" link set "m$i" netns "$ns"
  ip -n "$ns" link set "m$i" name eth0
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" addr add "10.10.0.$((10 + i))/16" dev eth0
  TOPO_HOSTS+=("$i")
}

topo_add_client() {
  local count=$1 k
  local ns=$TOPO-client
  ip netns add "$ns"
  topo_link "$ns" client
  for ((k = 1; k <= count; k++)); do
    ip -n "$ns" addr add "10.10.$((1 + (k - 1) / 250)).$((1 + (k - 1) % 250))/16" dev eth0
  done
  for ((k = 1; k <= 16; k++)); do
    ip -n "$ns" addr add "fd00::1:$k/64" dev eth0 nodad
  done
}

topo_add_bystander() {
  ip netns add "$TOPO-bystander"
  topo_link "$TOPO-bystander" bystander
  ip -n "$TOPO-bystander" addr add 10.10.0.250/16 dev eth0
}

topo_host_config() {
  printf '%s\n' "$2" >"$TOPO_DIR/h$1.json"
}

topo_start_agent() {
  local i=$1 state=()
  shift
  # A state directory of its own: the machine's /var/lib/nlb/pushed.json (a push to an agent
  # run here) would override the test's rules, VIPs and timing. An agent from before
  # --state-dir (build_old.sh's) reads no pushed.json at all. Asked once per binary: a
  # restart races the other hosts' tolerance, and a busy machine took 80 ms to answer --help.
  if [ "${TOPO_STATE_AGENT:-}" != "$NLB_AGENT" ]; then
    TOPO_STATE_AGENT=$NLB_AGENT
    TOPO_STATE_DIR=0
    [[ $("$NLB_AGENT" --help) != *--state-dir* ]] || TOPO_STATE_DIR=1
  fi
  ((!TOPO_STATE_DIR)) || state=(--state-dir "$TOPO_DIR/state$i")
  ip netns exec "$TOPO-h$i" "$NLB_AGENT" --config "$TOPO_DIR/h$i.json" \
    --socket "$TOPO_DIR/h$i.sock" --pin-dir "$TOPO_DIR/bpffs/h$i" --xdp-mode generic \
    "${state[@]}" "$@" >>"$TOPO_DIR/h$i.log" 2>&1 &
  TOPO_PIDS+=($!)
  eval "AGENT_PID_$i=$!"
}

topo_start_server() {
  local i=$1
  shift
  ip netns exec "$TOPO-h$i" python3 "$NLB_ROOT/tests/tools/nlb_testserver.py" --priority "$i" \
    "$@" >>"$TOPO_DIR/server$i.log" 2>&1 &
  TOPO_PIDS+=($!)
}

nlbadm_h() {
  local i=$1
  shift
  "$NLBADM" --socket "$TOPO_DIR/h$i.sock" "$@"
}

client() {
  ip netns exec "$TOPO-client" python3 "$NLB_ROOT/tests/tools/nlb_testclient.py" "$@"
}

# Waits until `nlbadm query --json` of every listed host says converged with N members and
# settled (every member holds its share: a converged state alone leaves buckets being taken).
wait_converged() {
  local members=$1 timeout=${2:-15}
  shift 2
  local deadline=$((SECONDS + timeout)) i ok
  while ((SECONDS < deadline)); do
    ok=1
    for i in "$@"; do
      nlbadm_h "$i" --json query 2>/dev/null | python3 -c '
import json, sys
q = json.load(sys.stdin)
sys.exit(0 if q["host"]["state"] == "converged" and len(q["cluster"]["members"]) == int(sys.argv[1])
         and q["cluster"].get("converged", True) else 1)' "$members" 2>/dev/null || ok=0
    done
    ((ok)) && return 0
    sleep 0.2
  done
  echo "not converged with $members members within ${timeout}s" >&2
  return 1
}
