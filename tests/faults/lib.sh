# shellcheck shell=bash
# Shared by the fault tests (issue 10, "Safety under faults"). A test sources this file, builds
# a cluster with faults_setup, starts the request stream, injects ONE fault the way a real
# segment does it (the bridge namespace is the switch: nftables bridge family), marks the
# events with fault_do / fault_agents_started / fault_event, and ends with faults_report,
# which prints one JSON line
#   {"fault": NAME, "requests": N, "answered_twice": X, "lost": Y, "recover_s": S, ...}
# (appended to $FAULTS_JSON when set) and fails the test unless: no request id was answered
# by two hosts over the run; no request was lost before the first event; and after every
# event, every request sent later than (tolerance + 2) x period + FAULT_SLACK_S was answered
# (losses before that are reported; a strict event allows none at all).
#
# Everything (namespaces, links, nft tables, pinned objects, processes) is removed on exit by
# topology.sh's topo_cleanup plus fault_cleanup below, whatever the outcome.
#
# The slack: FAULT_SLACK_S = 0.3 s on top of the design's bound (1.4 s at 200 ms). Time
# stamps are taken right after the action returned (the fault is in force by then) and every
# request's send time right after its send() (a veth delivers within a millisecond), so what
# the slack absorbs is how late this machine runs the agents' timers: two cores shared by 4
# agents, 4 servers, the 1,000 requests/s client, and whatever else runs. The client measures
# the same jitter on itself (max_send_lag_s, how late its sends run behind their schedule:
# 0.02-0.1 s in steady runs, up to 0.25 s while 3 agents load their BPF programs at once);
# a run whose lag exceeds the slack fails as a harness failure. 0.3 s is 1.5 periods at 200 ms,
# not a second tolerance. Where the fault is the start of agents, the event is a span from
# their launch until the last of them logged "attached" (its first heartbeat follows at once;
# loading the BPF programs took up to 3 s on a busy machine), and the bound counts from there.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/common.sh"
FAULTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Debian's python3 when there is one: a version manager's shim in front of it (pyenv) costs
# a second per start on a busy machine, which would distort every timed step.
[ ! -x /usr/bin/python3 ] || PATH=/usr/bin:$PATH

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; } # calc EXPR: floating-point arithmetic
HEARTBEAT_MS=${HEARTBEAT_MS:-200}
TOLERANCE=${TOLERANCE:-5}
FAULT_SLACK_S=${FAULT_SLACK_S:-0.3}
FAULT_RATE=${FAULT_RATE:-1000}  # requests per second, all sources together
FAULT_SOURCES=${FAULT_SOURCES:-200} # client addresses: 10.10.1.1 and the ones after it
FAULT_PORT=7000
FAULT_RULES='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "single"}]'
FAULT_BOUND_S=$(calc "($TOLERANCE + 2) * $HEARTBEAT_MS / 1000")
FAULT_EVENTS=()
FAULT_NFT=0
TOOLS=$NLB_ROOT/tests/tools
NLB_FLOOD=${NLB_FLOOD:-$BUILD/tests/tools/nlb-flood}

now() { date +%s.%N; }

# faults_init NAME: the topology (namespaces nlbf-NAME-PID-*), cleanup registered.
faults_init() {
  FAULT_NAME=$1
  FAULT_T0=$SECONDS
  FAULT_REPORTED=0
  FAULT_ERR=""
  topo_init "nlbf$$"
  set -E
  trap 'FAULT_ERR="line $LINENO: $BASH_COMMAND"' ERR
  trap 'fault_cleanup; topo_cleanup' EXIT
  : >"$TOPO_DIR/checks"
  : >"$TOPO_DIR/extra"
  echo "fault $FAULT_NAME: heartbeat ${HEARTBEAT_MS} ms, tolerance $TOLERANCE, bound ${FAULT_BOUND_S}s + slack ${FAULT_SLACK_S}s"
}

fault_cleanup() {
  local rc=$?
  if ((!FAULT_REPORTED)); then # aborted before its report: still one (failing) JSON line
    local line
    line=$(python3 -c 'import json, sys; print(json.dumps({"fault": sys.argv[1], "requests": 0,
      "answered_twice": None, "lost": None, "recover_s": None, "pass": False,
      "failures": ["harness aborted (exit %s): %s" % (sys.argv[2], sys.argv[3])]}))' \
      "$FAULT_NAME" "$rc" "${FAULT_ERR:-no report}")
    echo "$line"
    [ -z "${FAULTS_JSON:-}" ] || echo "$line" >>"$FAULTS_JSON"
    echo "FAIL: $FAULT_NAME (harness aborted: ${FAULT_ERR:-exit $rc})" >&2
  fi
  # Whatever the outcome: the request stream, the bridge's fault table (the namespaces go
  # with topo_cleanup anyway, this keeps a kept-alive bridge clean too), paused agents.
  [ -z "${STREAM_PID:-}" ] || kill "$STREAM_PID" 2>/dev/null || true
  local pid
  for pid in "${TOPO_PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  if ((FAULT_NFT)); then
    ip netns exec "$TOPO-br" nft delete table bridge nlbfault 2>/dev/null || true
  fi
  [ -z "${NEIGH_SAVED:-}" ] || sysctl -qw $NEIGH_SAVED || true
}

# neigh_room ENTRIES: the kernel's neighbour tables are one for every namespace, 1,024 entries
# by default; beyond that a host cannot resolve a new client (`ip -s ntable`'s table_fulls)
# and its answers are lost — the test bed's limit, not nlb's: N hosts answering 200 client
# addresses need N x 200. Raised for this run, restored on exit.
neigh_room() {
  local n=$1 fam k
  NEIGH_SAVED=""
  for fam in ipv4 ipv6; do
    for k in 1 2 3; do
      NEIGH_SAVED+=" net.$fam.neigh.default.gc_thresh$k=$(sysctl -n "net.$fam.neigh.default.gc_thresh$k")"
    done
    sysctl -qw "net.$fam.neigh.default.gc_thresh1=$n" "net.$fam.neigh.default.gc_thresh2=$((2 * n))" \
      "net.$fam.neigh.default.gc_thresh3=$((4 * n))"
  done
}
# neigh_fulls: the times the IPv4 and IPv6 neighbour tables were full, since boot.
neigh_fulls() { ip -s ntable show | awk '/table_fulls/ {s += $2} END {print s + 0}'; }

# fcheck WHAT COMMAND...: a check that goes into the JSON line (and fails the test).
fcheck() {
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
    printf 'ok\t%s\n' "$what" >>"$TOPO_DIR/checks"
  else
    echo "FAIL: $what" >&2
    printf 'FAIL\t%s\n' "$what" >>"$TOPO_DIR/checks"
  fi
}

# fextra KEY JSON: a field of the JSON line.
fextra() { printf '%s\t%s\n' "$1" "$2" >>"$TOPO_DIR/extra"; }

# fault_config I [KEY_FILE] [HEARTBEAT_MS] [RULES] [PRIORITY]: host I's config (priority I
# unless PRIORITY is given, 10.10.0.(10+I)).
fault_config() {
  local i=$1 key=${2:-} hb=${3:-$HEARTBEAT_MS} rules=${4:-$FAULT_RULES} prio=${5:-$1}
  local k=""
  [ -z "$key" ] || k=", \"key_file\": \"$key\""
  # FAULT_PEERS="1 2 3": cluster.peers lists those hosts' dedicated IPs.
  if [ -n "${FAULT_PEERS:-}" ]; then
    local p list=""
    for p in $FAULT_PEERS; do list+="${list:+, }\"10.10.0.$((10 + p))\""; done
    k+=", \"peers\": [$list]"
  fi
  # FAULT_DEDICATED_V6=1: the dedicated IP is fd00::(10+I) (the test adds it to the host).
  local dip="10.10.0.$((10 + i))" hx=""
  [ -z "${FAULT_DEDICATED_V6:-}" ] || dip="fd00::$((10 + i))"
  # FAULT_OPENING=N: host.opening_connections (tables a test fills cost the agents' scans).
  [ -z "${FAULT_OPENING:-}" ] || hx=", \"opening_connections\": $FAULT_OPENING"
  topo_host_config "$i" "{
  \"cluster\": {\"ip\": \"$CLUSTER_IP\", \"mode\": \"unicast\", \"heartbeat_ms\": $hb,
                \"heartbeat_tolerance\": $TOLERANCE, \"cleanup_delay_s\": 30$k},
  \"host\": {\"priority\": $prio, \"dedicated_ip\": \"$dip\", \"interface\": \"eth0\"$hx},
  \"port_rules\": $rules
}"
}

# fault_sources: the client's FAULT_SOURCES addresses, one a line: 10.10.1.1 and the ones after
# it, as the stream counts them (--sources 10.10.1.1+N).
fault_sources() {
  local k a
  for ((k = 0; k < FAULT_SOURCES; k++)); do
    a=$((257 + k)) # 10.10.1.1 is 10.10.0.0 + 257
    echo "10.10.$((a / 256)).$((a % 256))"
  done
}

# faults_setup HOSTS...: host namespaces, the client (FAULT_SOURCES), the bystander, and a
# logging test server per host (the servers start before the agents: IP_FREEBIND).
faults_setup() {
  local i
  for i in "$@"; do topo_add_host "$i"; done
  # topology.sh's client namespace, its addresses (fault_sources) added in one `ip -batch`
  # (200 separate ip commands take seconds on a busy machine).
  ip netns add "$TOPO-client"
  topo_link "$TOPO-client" client
  local a
  for a in $(fault_sources); do echo "addr add $a/16 dev eth0"; done | ip -n "$TOPO-client" -batch -
  topo_add_bystander
  for i in "$@"; do
    topo_start_server "$i" "$FAULT_PORT" --vip "$CLUSTER_IP" --log "$TOPO_DIR/served$i.log"
  done
}

# require_converged HOSTS...: the cluster converged as exactly those hosts within 20 s, on each
# of them, or the test stops at once (there is no fault to inject into a cluster that never
# formed).
require_converged() {
  local members
  members=$(IFS=,; echo "$*")
  wait_converged_as "$members" 20 "$@" || { echo "FAIL: no $#-host cluster to start from" >&2; exit 1; }
}

# start_cluster HOSTS...: each host's agent started on its fault_config, then require_converged.
start_cluster() {
  local i
  for i in "$@"; do fault_config "$i"; start_agent "$i"; done
  require_converged "$@"
}

# neigh_known HOSTS...: the hosts know the MAC of every client address beforehand, as hosts
# behind a router know the router's. Without it the stream's first second has each request's
# owner ask for a new address: on 64 hosts 1,000 ARP broadcasts, each flooded to every bridge
# port, through generic XDP and every host's stack, and the bed's backlogs dropped requests sent
# meanwhile (scripts/bench/cluster.sh 64: "lost before the first event" in 6 of 9 runs, every
# time within 0.7 s of the stream's start). Stale entries: used at once, confirmed by unicast.
# For runs that raised the neighbour table (neigh_room): it holds HOSTS x FAULT_SOURCES more.
neigh_known() {
  local mac i a sources
  mac=$(ip -n "$TOPO-client" -j link show eth0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
  sources=$(fault_sources)
  for i in "$@"; do
    for a in $sources; do echo "neigh replace $a lladdr $mac dev eth0 nud stale"; done |
      ip -n "$TOPO-h$i" -batch -
  done
}

fault_key() { # fault_key NAME: a fresh cluster key file, its path on stdout
  "$NLBADM" keygen >"$TOPO_DIR/$1.key"
  chmod 600 "$TOPO_DIR/$1.key"
  echo "$TOPO_DIR/$1.key"
}

start_agent() { topo_start_agent "$1" --log-format json; }

# Queries and bounded polls, one python process each (tests/faults/nlbq.py).
nlbq() { NLBADM=$NLBADM TOPO_DIR=$TOPO_DIR python3 "$FAULTS_DIR/nlbq.py" "$@"; }
query_field() { nlbq q "$1" "$2" "${3:-query}"; } # I EXPR [COMMAND]: "none" if no answer
state_of() { nlbq q "$1" 'd["host"]["state"]'; }
members_of() { nlbq q "$1" 'sorted(d["cluster"]["members"])'; }
wait_answering() { # I [TIMEOUT]: until host I's agent answers on its control socket
  nlbq wait-answering "$1" "${2:-10}" || { echo "host $1's agent does not answer" >&2; return 1; }
}
wait_state() { nlbq wait-state "$@"; }                   # I STATE TIMEOUT
wait_converged_as() { nlbq wait-converged "$@"; }        # MEMBERS(1,2,3) TIMEOUT HOSTS...
converged_as() { nlbq wait-converged "$1" 0 "${@:2}"; } # MEMBERS HOSTS...: now
wait_stable() { nlbq wait-stable "$@"; }                 # MEMBERS QUIET_S TIMEOUT HOSTS...
convergences() { nlbq convergences "$@"; }               # HOSTS...: their counters

# log_fields I NAME SINCE KEY...: the KEYs of host I's first logged event NAME at or after
# SINCE, space-separated (fractions to the microsecond; "" for a missing key; nothing if none).
log_fields() {
  python3 - "$TOPO_DIR/h$1.log" "$2" "$3" "${@:4}" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == sys.argv[2] and e.get("ts", 0) >= float(sys.argv[3]):
        v = [e.get(k, "") for k in sys.argv[4:]]
        print(" ".join(f"{x:.6f}" if isinstance(x, float) else str(x) for x in v))
        break
PY
}
# log_ts I NAME SINCE: the time of host I's first logged event NAME at or after SINCE ("" if none).
log_ts() { log_fields "$1" "$2" "$3" ts; }
# stall_cause I SINCE: "OVER RAN WAITED" (ms) of host I's first stall logged at or after SINCE:
# of the last OVER ms, how long its loop ran and how long it waited for a CPU ("" if none); the
# same in words on stderr.
stall_cause() {
  local f over ran waited
  f=$(log_fields "$1" stalled "$2" over_ms ran_ms waited_ms)
  read -r over ran waited <<<"$f"
  echo "host $1's stall: of the last ${over:-?} ms it ran ${ran:-?} ms and waited ${waited:-?} ms for a CPU" >&2
  echo "$f"
}
# fcheck_kept_serving I SINCE WHY: host I's dataplane never stopped at or after SINCE: no stall
# (WHY says why none is expected), no watchdog expiry, no frame dropped by the watchdog.
fcheck_kept_serving() {
  local i=$1 since=$2 why=$3
  fcheck "host $i: no stall ($why)" test "$(count_events "$i" stalled "$since")" = 0
  fcheck "host $i: its watchdog never expired" \
    test "$(count_events "$i" watchdog_expired "$since")" = 0
  fcheck "host $i: no frame dropped by the watchdog" \
    test "$(query_field "$i" 'sum(r["dropped_watchdog"] for r in d["rules"])' stats)" = 0
}
# count_events I NAME [SINCE]: host I's logged events NAME (json log) at or after time SINCE.
# count_log I REGEX [SINCE]: host I's log lines matching REGEX, at or after SINCE.
count_events() { count_log "$1" "\"event\":\"$2\"" "${3:-0}"; }
count_log() {
  python3 - "$TOPO_DIR/h$1.log" "$2" "${3:-0}" <<'PY'
import json, re, sys
n = 0
for line in open(sys.argv[1]):
    try:
        ts = json.loads(line).get("ts", 0)
    except ValueError:
        continue
    if ts >= float(sys.argv[3]) and re.search(sys.argv[2], line):
        n += 1
print(n)
PY
}

# stream_start: FAULT_SOURCES sources, FAULT_RATE requests/s, until stream_stop (bounded: 120 s);
# returns once the first request went out (bounded: 10 s).
# The client runs at nice -15: its samples stay dense while agents load BPF programs (the
# verifier runs in the loading agent's context), which is what its lag check is about. At
# nice -5 three agents starting at once still made it lag 0.33 s once, on a 2-core machine.
stream_start() {
  ip netns exec "$TOPO-client" nice -n -15 python3 "$TOOLS/nlb_testclient.py" stream --vip "$CLUSTER_IP" \
    --port "$FAULT_PORT" --sources "10.10.1.1+$FAULT_SOURCES" --rate "$FAULT_RATE" \
    --duration 120 --drain 2.0 --stop-file "$TOPO_DIR/stream.stop" \
    --ready-file "$TOPO_DIR/stream.ready" \
    --log "$TOPO_DIR/stream.json" >"$TOPO_DIR/stream.out" 2>"$TOPO_DIR/stream.err" &
  STREAM_PID=$!
  softnet_dropped >"$TOPO_DIR/softnet0"
  local k
  for ((k = 0; k < 200; k++)); do
    [ ! -e "$TOPO_DIR/stream.ready" ] || return 0
    kill -0 "$STREAM_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "FAIL: the request stream did not start: $(cat "$TOPO_DIR/stream.err")" >&2
  exit 1
}

# stream_stop: once 1.5 s of requests were sent after the last event's window (bound + slack
# after its end), so that its recovery is checked on enough requests.
stream_stop() {
  [ -z "${FAULT_LAST_END:-}" ] || sleep_until "$(calc "$FAULT_LAST_END + $FAULT_BOUND_S + $FAULT_SLACK_S + 1.5")"
  touch "$TOPO_DIR/stream.stop"
  wait "$STREAM_PID" || echo "request stream failed: $(cat "$TOPO_DIR/stream.err")" >&2
  STREAM_PID=
  cat "$TOPO_DIR/stream.out"
}

# fault_event NAME [strict]: marks an event now (after the action that caused it returned).
# fault_span NAME START [strict|- [END]]: an event from START until END (default now): losses
# during it are reported, its bound counts from END.
fault_event() {
  local t
  t=$(now)
  if [ "${2:-}" = strict ]; then FAULT_EVENTS+=(--strict-event "$1=$t"); else FAULT_EVENTS+=(--event "$1=$t"); fi
  FAULT_LAST_END=$t
  echo "event $1 at $t"
}
fault_span() {
  local t=${4:-$(now)}
  if [ "${3:-}" = strict ]; then FAULT_EVENTS+=(--strict-event "$1=$2,$t"); else FAULT_EVENTS+=(--event "$1=$2,$t"); fi
  FAULT_LAST_END=$t
  echo "event $1 from $2 to $t ($(calc "$t - $2") s)"
}
# fault_agents_started NAME START [strict] -- HOSTS...: the event of agents launched at START,
# ending when the last of them attached (its "attached" log event: its first heartbeat follows
# at once), once all answer on their control sockets (bounded: 10 s each).
fault_agents_started() {
  local name=$1 start=$2 strict="" i end t
  end=$start
  shift 2
  [ "$1" != strict ] || { strict=strict; shift; }
  [ "$1" != -- ] || shift
  for i in "$@"; do wait_answering "$i"; done
  for i in "$@"; do
    t=$(log_ts "$i" attached "$start")
    [ -n "$t" ] || t=$(now) # no such log line: when it answered (later, so more lenient)
    end=$(awk -v a="$end" -v b="$t" 'BEGIN { printf "%.6f", (b > a ? b : a) }')
  done
  fault_span "$name" "$start" "${strict:--}" "$end"
}
# fault_do NAME [strict] -- COMMAND...: runs the action as the event NAME, a span from just
# before it until it returned (an nft commit bites before nft exits; on a busy machine the two
# can be 0.1 s apart, and a loss in between is the fault's, not "before the fault").
fault_do() {
  local name=$1 strict="" t
  shift
  [ "$1" != strict ] || { strict=strict; shift; }
  [ "$1" != -- ] || shift
  t=$(now)
  "$@"
  fault_span "$name" "$t" "${strict:--}"
}

# sleep_periods N: N heartbeat periods.
sleep_periods() { sleep "$(calc "$1 * $HEARTBEAT_MS / 1000")"; }
# sleep_until T: until CLOCK_REALTIME T (now if past).
sleep_until() { sleep "$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.6f", (d > 0 ? d : 0) }')"; }
# deltas BEFORE AFTER: AFTER - BEFORE per host ("a,b,c"; space-separated lists from
# `convergences`), -1 where an agent did not answer; deltas_within DELTAS MAX: all in 0..MAX.
deltas() { awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x); split(b, y); for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "," : ""), (x[i] < 0 || y[i] < 0 ? -1 : y[i] - x[i]) }'; }
deltas_within() { awk -v d="$1" -v m="$2" 'BEGIN { n = split(d, x, ","); for (i = 1; i <= n; i++) if (x[i] < 0 || x[i] > m) exit 1 }'; }

# A CPU limit, as a container's or a noisy neighbour would leave an agent: a cgroup of its own
# (v1's cpu controller, or v2's cpu.max), one per test (CG). cg_limit PID PERCENT puts PID there
# under a quota of PERCENT of a core; cg_quota PERCENT changes it; cg_unlimit lifts it;
# cg_cleanup, for the test's EXIT trap, removes the group.
CG=""
cg_limit() { # PID PERCENT
  local root
  if [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
    root=/sys/fs/cgroup/cpu
    CG=$root/nlbf-$FAULT_NAME-$$
    mkdir "$CG"
    echo 100000 >"$CG/cpu.cfs_period_us"
  elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    root=/sys/fs/cgroup
    grep -qw cpu "$root/cgroup.subtree_control" || echo +cpu >"$root/cgroup.subtree_control" || {
      echo "FAIL: cannot limit an agent's CPU: the cgroup v2 root will not delegate cpu" >&2
      exit 1
    }
    CG=$root/nlbf-$FAULT_NAME-$$
    mkdir "$CG"
  else
    echo "FAIL: cannot limit an agent's CPU: no cgroup cpu controller (v1 or v2) here" >&2
    exit 1
  fi
  cg_quota "$2"
  echo "$1" >"$CG/cgroup.procs"
}
cg_quota() { # PERCENT, or max
  if [ -f "$CG/cpu.cfs_quota_us" ]; then
    echo "$([ "$1" = max ] && echo -1 || echo $(($1 * 1000)))" >"$CG/cpu.cfs_quota_us"
  else
    echo "$([ "$1" = max ] && echo max || echo $(($1 * 1000))) 100000" >"$CG/cpu.max"
  fi
}
cg_unlimit() {
  [ -n "$CG" ] && [ -d "$CG" ] || return 0
  cg_quota max
}
# Unlimited first, so that the teardown runs at full speed; the processes back in the parent,
# then the group removed (a process that is exiting can hold it for a moment: bounded retries).
cg_cleanup() {
  [ -n "$CG" ] && [ -d "$CG" ] || return 0
  cg_unlimit || true
  local p k
  while read -r p; do echo "$p" >"$(dirname "$CG")/cgroup.procs" 2>/dev/null || true; done <"$CG/cgroup.procs"
  for k in 1 2 3 4 5 6 7 8 9 10; do
    rmdir "$CG" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "warning: could not remove $CG" >&2
}

# The fault table on the bridge ("the switch"): `nft_fault MATCH...` adds a rule MATCH counter
# drop to a chain on the bridge family's forward hook (per output port, so oifname works for
# flooded frames too). `nft_faults MATCH...` replaces the forward hook's rules with one such
# rule per MATCH in one transaction: a rule removed before its successor is in would let a
# frame through.
nft_table() {
  if ((!FAULT_NFT)); then
    # forwarding: what the bridge passes between ports; own: what the bridge device itself
    # sends out of them (its IPv6 link-local traffic: MLD reports, solicitations), which a port
    # that stopped delivering does not deliver either.
    ip netns exec "$TOPO-br" nft -f - <<EOF
table bridge nlbfault {
  chain forwarding { type filter hook forward priority 0; policy accept; }
  chain own { type filter hook output priority 0; policy accept; }
}
EOF
    FAULT_NFT=1
  fi
}
nft_fault() {
  nft_table
  ip netns exec "$TOPO-br" nft add rule bridge nlbfault forwarding "$@" counter drop
  ip netns exec "$TOPO-br" nft add rule bridge nlbfault own "$@" counter drop
}
nft_faults() {
  local rule script="flush chain bridge nlbfault forwarding"$'\n'
  nft_table
  for rule in "$@"; do script+="add rule bridge nlbfault forwarding $rule counter drop"$'\n'; done
  ip netns exec "$TOPO-br" nft -f - <<<"$script"
}
nft_clear() {
  ip netns exec "$TOPO-br" nft flush chain bridge nlbfault forwarding
  ip netns exec "$TOPO-br" nft flush chain bridge nlbfault own
}
# nft_dropped: packets the fault rules dropped so far (rules carry a counter).
nft_dropped() {
  ip netns exec "$TOPO-br" nft list table bridge nlbfault |
    awk '{ for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}

# Frames the kernel of this machine dropped for want of room in a CPU's backlog
# (/proc/net/softnet_stat, second column, summed over CPUs): the test bed's load, not the
# cluster's doing.
softnet_dropped() {
  python3 -c 'print(sum(int(l.split()[1], 16) for l in open("/proc/net/softnet_stat")))'
}

# testbed_drops: JSON of what the test bed itself dropped since stream_start: the backlog
# drops, and per link of the hosts, the client and the bridge (not the bystander, whose
# drops are an attacker's own) the frames it could not hand to its peer (a veth's tx
# dropped: the peer's backlog was full); and their sum, the total the judge goes by.
# Receive drops are left out: they count frames a stack discards by design (a flood's 0x886F
# frames at the client), not frames it had no room for.
testbed_drops() {
  local before now ns links="" n total
  before=$(cat "$TOPO_DIR/softnet0" 2>/dev/null || echo 0)
  now=$(softnet_dropped)
  total=$((now - before))
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$TOPO-(h[0-9]+|client|br)\$"); do
    while read -r ifname n; do
      [ "${n:-0}" = 0 ] && continue
      links+="${links:+, }\"${ns#"$TOPO"-}/$ifname\": $n"
      total=$((total + n))
    done < <(ip -n "$ns" -j -s link show 2>/dev/null | python3 -c '
import json, sys
for l in json.load(sys.stdin):
    s = l.get("stats64", {})
    print(l["ifname"], s.get("tx", {}).get("dropped", 0))')
  done
  echo "{\"backlog\": $((now - before)), \"links\": {$links}, \"total\": $total}"
}

# faults_report [--must-not-lose]: the JSON line; the test's exit status.
faults_report() {
  local servers=() f lag
  for f in "$TOPO_DIR"/served*.log; do servers+=(--server-log "$f"); done
  lag=$(json 'd["max_send_lag_s"]' <"$TOPO_DIR/stream.out" 2>/dev/null || echo 99)
  fextra max_send_lag_s "$lag"
  fextra run_s "$((SECONDS - FAULT_T0))"
  fcheck "client send lag ${lag}s within the slack (harness)" \
    awk "BEGIN { exit !($lag <= $FAULT_SLACK_S) }"
  # A request the servers' or the client's sockets dropped for want of buffer would be counted
  # as lost: the harness's loss, not the cluster's. The kernel counts them per namespace
  # (UdpRcvbufErrors), where a host's count also holds its agent's sockets (the second path's
  # above all): the servers' part is their sockets' own count (they live the whole run), the
  # rest is the agents' (agent_udp_rcvbuf_errors; an agent's stats name its second path's),
  # which the protocol tolerates and which says an agent was slow to read, not that a request
  # was lost.
  local ns drops="" n s total=0 contact=0
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$TOPO-(h[0-9]+|client)\$"); do
    n=$(ip netns exec "$ns" awk '/^Udp:/ && $6 ~ /^[0-9]+$/ { print $6 }' /proc/net/snmp)
    n=${n:-0}
    if [ "${ns#"$TOPO"-}" != client ]; then
      s=$(ip netns exec "$ns" python3 -c 'import sys
total = 0
for name in ("/proc/net/udp", "/proc/net/udp6"):
    for line in open(name).readlines()[1:]:
        f = line.split()
        if int(f[1].rsplit(":", 1)[1], 16) == int(sys.argv[1]):
            total += int(f[-1])
print(total)' "$FAULT_PORT")
      contact=$((contact + (n > s ? n - s : 0)))
      n=$((s < n ? s : n))
    fi
    drops+="${drops:+, }\"${ns#"$TOPO"-}\": $n"
    total=$((total + n))
  done
  fextra udp_rcvbuf_errors "{$drops}"
  fextra agent_udp_rcvbuf_errors "$contact"
  fcheck "no UDP datagram dropped for want of socket buffer ($total) (harness)" test "$total" = 0
  fextra testbed_drops "$(testbed_drops)"
  local rc=0
  FAULT_REPORTED=1
  python3 "$TOOLS/nlb_faultreport.py" --fault "$FAULT_NAME" --client "$TOPO_DIR/stream.json" \
    "${servers[@]}" "${FAULT_EVENTS[@]}" --bound "$FAULT_BOUND_S" --slack "$FAULT_SLACK_S" \
    --check "$TOPO_DIR/checks" --extra "$TOPO_DIR/extra" \
    --agent-log-dir "$TOPO_DIR" \
    "$@" || rc=1
  if ((rc)); then
    echo "--- agent logs (last lines) ---" >&2
    tail -n 15 "$TOPO_DIR"/h*.log >&2 || true
    echo "FAIL: $FAULT_NAME" >&2
  else
    echo "PASS: $FAULT_NAME"
  fi
  return $rc
}
