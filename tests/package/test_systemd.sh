#!/usr/bin/env bash
# The packaged unit under a real systemd. Two containers (systemd-nspawn -b of a debootstrapped
# Debian 12 with the .deb installed by apt), each with its own BPF file system, sit on one
# bridge with a client namespace and form a cluster that serves real TCP requests. Driven with
# systemctl as an operator would:
#   start        Type=notify: `systemctl start` returns once the agent is attached
#   hardening    what the unit declares is in force on the running agent
#   reload       a live weight change applies; a change that needs a restart changes nothing;
#                a new port rule is staged on each host and the cluster switches to it once
#                both hold it
#   kill -9      systemd restarts the agent, which adopts its dataplane: no connection lost
#   upgrade      apt-get install of a newer .deb under traffic: no connection lost, the
#                other host never sees this one leave
#   watchdog     a restart that never comes back: the dataplane stops on its own and the
#                other host takes every request
#   stop         the other host converges at once, not after the tolerance
#   remove       apt-get remove of a host whose agent left its dataplane pinned takes it down
# Usage: test_systemd.sh [DEB] (builds the package when DEB is not given). NLB_TESTBED_ROOT=DIR
# reuses a debootstrapped root (with systemd, dbus, iproute2, python3) instead of making one.
# Leaves the machine as it found it: containers, namespaces, mounts and files go on exit.
source "$(dirname "$0")/../e2e/common.sh"
cd "$NLB_ROOT"

deb=${1:-$(scripts/package.sh | tail -n 1)}
version=$(dpkg-deb -f "$deb" Version)
topo_init "nlbsd-$$"
topo_add_client 100
NSPAWN_PIDS=()
testbed_cleanup() {
  local pid
  # SIGTERM asks a container's systemd to power off; what is left is killed by topo_cleanup.
  for pid in "${NSPAWN_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    pid=""
    for p in "${NSPAWN_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && pid=$p; done
    [ -z "$pid" ] && break
    sleep 0.2
  done
  umount "$TOPO_DIR"/bpf-c* 2>/dev/null || true
  umount "$TOPO_DIR/base/proc" 2>/dev/null || true
  topo_cleanup
}
trap testbed_cleanup EXIT

# --- the image: Debian 12 with systemd, the package installed by apt ------------------------
base=$TOPO_DIR/base
if [ -n "${NLB_TESTBED_ROOT:-}" ]; then
  cp -a "$NLB_TESTBED_ROOT" "$base"
else
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,python3 \
    bookworm "$base" "${mirror:-http://deb.debian.org/debian}" >"$TOPO_DIR/debootstrap.log" 2>&1 ||
    { tail -n 5 "$TOPO_DIR/debootstrap.log" >&2; echo "FAIL: debootstrap" >&2; exit 1; }
fi
mount -t proc proc "$base/proc"
cp "$deb" "$base/root/"
chroot "$base" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "/root/$(basename "$deb")" >"$TOPO_DIR/apt.log" 2>&1 ||
  { tail -n 5 "$TOPO_DIR/apt.log" >&2; echo "FAIL: apt-get install of the package" >&2; exit 1; }
umount "$base/proc"
mkdir -p "$base/usr/local/lib/nlb"
cp tests/tools/nlb_testserver.py "$base/usr/local/lib/nlb/"

# A newer package for the upgrade: this build under a higher version. What changes between
# builds inside the dataplane is e2e_upgrade_pinned's; here it is the package's upgrade path
# (dpkg, the maintainer scripts, systemd's restart, the agent's adoption).
newer=$TOPO_DIR/nlb_newer.deb
dpkg-deb -R "$deb" "$TOPO_DIR/newer"
sed -i "s/^Version: .*/Version: ${version}+testbed1/" "$TOPO_DIR/newer/DEBIAN/control"
dpkg-deb -b "$TOPO_DIR/newer" "$newer" >/dev/null

HEARTBEAT_MS=500 TOLERANCE=6 # tolerance 3 s; the dataplane's watchdog stops it after 2.5 s
machine_config() { # I WEIGHT [RULE]: RULE, a second port rule's JSON
  cat <<EOF
{
  "cluster": {"ip": "$CLUSTER_IP", "mode": "unicast", "heartbeat_ms": $HEARTBEAT_MS,
              "heartbeat_tolerance": $TOLERANCE, "cleanup_delay_s": 300},
  "host": {"priority": $1, "dedicated_ip": "10.10.0.$((10 + $1))", "interface": "host0",
           "initial_state": "started"},
  "port_rules": [{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple",
                  "affinity": "none", "load_weight": $2}${3:+, $3}],
  "health": {"probes": [{"name": "ok", "type": "exec", "command": ["/bin/true"], "user": "nobody",
                         "interval_ms": 500, "timeout_ms": 500, "rise": 1, "fall": 1,
                         "ports": [7000]},
                        {"name": "daemonizes", "type": "exec", "user": "nobody",
                         "command": ["/bin/sh", "-c", "setsid sleep 300.5 & exit 0"],
                         "interval_ms": 500, "timeout_ms": 500, "rise": 1, "fall": 1}]}
}
EOF
}
RULE_7001='{"vip": "all", "ports": [7001, 7001], "protocol": "tcp", "mode": "multiple", "affinity": "none"}'

declare -A LEADER
machine_start() {
  local i=$1 root=$TOPO_DIR/c$1
  cp -a "$base" "$root"
  machine_config "$i" 50 >"$root/etc/nlb/nlb.json"
  cat >"$root/etc/systemd/system/testbed-net.service" <<EOF
[Unit]
Description=test bed address on host0
Before=nlb-agent.service testbed-server.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link set host0 up
ExecStart=/sbin/ip addr add 10.10.0.$((10 + i))/16 dev host0
[Install]
WantedBy=multi-user.target
EOF
  cat >"$root/etc/systemd/system/testbed-server.service" <<EOF
[Unit]
Description=test bed TCP server on ports 7000 and 7001
After=testbed-net.service
[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/nlb/nlb_testserver.py --priority $i --vip $CLUSTER_IP 7000 7001
[Install]
WantedBy=multi-user.target
EOF
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  for u in testbed-net testbed-server; do
    ln -s "/etc/systemd/system/$u.service" "$root/etc/systemd/system/multi-user.target.wants/"
  done
  mkdir "$TOPO_DIR/bpf-c$i"
  mount -t bpf bpf "$TOPO_DIR/bpf-c$i"
  # As DESIGN.md section 7 and the issue found it: the BPF system calls let through seccomp,
  # every capability, the container's own bpffs bound where the unit expects it.
  # nsenter, not ip netns exec: that remounts /sys, and nspawn then finds no cgroup hierarchy.
  nsenter --net="/run/netns/$TOPO-br" systemd-nspawn -D "$root" -b --register=no --keep-unit \
    --machine="nlbsd$i" --network-bridge=br0 --capability=all \
    --system-call-filter='bpf perf_event_open' --bind="$TOPO_DIR/bpf-c$i:/sys/fs/bpf" \
    --console=passive >"$TOPO_DIR/c$i.console" 2>&1 &
  NSPAWN_PIDS+=($!)
  TOPO_PIDS+=($!)
  local nspawn=$! leader="" state=""
  for _ in $(seq 300); do
    leader=$(pgrep -P "$nspawn" | head -n 1 || true)
    if [ -n "$leader" ]; then
      state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
      [[ $state == running || $state == degraded ]] && break
    fi
    sleep 0.2
  done
  [[ $state == running || $state == degraded ]] ||
    { cat "$TOPO_DIR/c$i.console" >&2; echo "FAIL: container $i did not boot ($state)" >&2; exit 1; }
  LEADER[$i]=$leader
  # The bridge side of the container's veth, as topo_link does for a namespace host.
  ip -n "$TOPO-br" link set "vb-nlbsd$i" xdpdrv obj "$BUILD/bpf/bare.bpf.o" sec xdp
}
in_c() { local i=$1; shift; nsenter -t "${LEADER[$i]}" -a "$@"; }
query() { in_c "$1" nlbadm --json query; }
main_pid() { in_c "$1" systemctl show -p MainPID --value nlb-agent; }
# By identifier, not unit: journald attributes a line to a unit by the sender's cgroup, which
# it cannot look up once an exiting agent is gone, and the last lines of a stop are those.
journal() { in_c "$1" journalctl -t nlb-agent --no-pager -o cat; }
# grep reads to the end rather than quit at the first match (-q): under pipefail journalctl,
# cut off mid-journal, would die of SIGPIPE and turn a match into a failure (and a 'not' check
# into a pass), the longer the journal the likelier (seen in CI after the upgrade).
journal_has() { journal "$1" | tail -n +$(($2 + 1)) | grep -E "$3" >/dev/null; } # I FROM_LINE REGEX
not() { if "$@"; then return 1; fi; }
# Waits until each listed container's agent says converged and settled with MEMBERS.
wait_members() { # MEMBERS TIMEOUT I...
  local want=$1 deadline=$((SECONDS + $2)) i ok
  shift 2
  while ((SECONDS < deadline)); do
    ok=1
    for i in "$@"; do
      [ "$(query "$i" 2>/dev/null | json '",".join(map(str, d["cluster"]["members"])) if d["cluster"]["converged"] else ""' 2>/dev/null)" = "$want" ] || ok=0
    done
    ((ok)) && return 0
    sleep 0.2
  done
  return 1
}
hold_start() { # NAME: 60 connections exchanging a line every 0.1 s until stop-NAME exists
  rm -f "$TOPO_DIR/stop-$1"
  client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 60 --duration 90 \
    --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop-$1" >"$TOPO_DIR/$1.json" &
  HOLD_PID=$!
  sleep 1
}
hold_stop() { # NAME: every connection completed, none failed, host 1 served some
  touch "$TOPO_DIR/stop-$1"
  wait "$HOLD_PID" || true
  check "$1: 60 connections completed" test "$(json 'd["connections"]' <"$TOPO_DIR/$1.json")" = 60
  check "$1: no connection failed" test "$(json 'len(d["failures"])' <"$TOPO_DIR/$1.json")" = 0
  check "$1: host 1 served some" test "$(json 'd["hosts"].get("1", 0) > 0' <"$TOPO_DIR/$1.json")" = True
  ((E2E_FAILED == 0)) || cat "$TOPO_DIR/$1.json" >&2
}

machine_start 1
machine_start 2

# --- start: ready means attached ---------------------------------------------------------
# READY=1 came after the interface was attached. systemd stamps a Type=notify unit active as
# READY=1 arrives (ActiveEnterTimestampMonotonic); the XDP link's pin, made the moment the link
# is, is older (its ctime, from the kernel's coarse CLOCK_REALTIME, is never later than the pin).
# A query after `systemctl start` cannot tell: the agent answers none until it has attached.
ready_after_attach() { # I
  in_c "$1" python3 - <<'PY'
import os, subprocess, sys, time
active = int(subprocess.check_output(
    ["systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", "nlb-agent"]))
ready = active / 1e6 + time.time() - time.monotonic()  # on CLOCK_REALTIME
pinned = os.stat("/sys/fs/bpf/nlb/link").st_ctime_ns / 1e9
print(f"the link pinned at {pinned:.6f}, READY=1 {ready - pinned:.3f} s later")
sys.exit(0 if active and pinned < ready else 1)
PY
}
# Container 1 starts without a BPF file system at /sys/fs/bpf: nlb-bpffs.service mounts one, in
# the container's namespace rather than the service's, so that it outlives the service.
in_c 1 umount /sys/fs/bpf
check "container 1: no BPF file system at /sys/fs/bpf" not in_c 1 mountpoint -q /sys/fs/bpf
for i in 1 2; do
  check "container $i: the unit is installed, not enabled" \
    test "$(in_c "$i" systemctl is-enabled nlb-agent 2>/dev/null || true)" = disabled
  check "container $i: systemctl start nlb-agent" in_c "$i" systemctl start nlb-agent
  check "container $i: attached when start returns (Type=notify)" \
    test "$(query "$i" | json 'd["host"]["attached"]')" = True
  check "container $i: READY=1 only after the interface was attached" ready_after_attach "$i"
done
check "container 1: nlb-bpffs.service mounted a BPF file system, outside the service" \
  test "$(in_c 1 stat -f -c %T /sys/fs/bpf)" = bpf_fs
if ((E2E_FAILED)); then
  for i in 1 2; do in_c "$i" systemctl status nlb-agent --no-pager -l >&2 || true; done
  exit 1
fi
check "both converge" wait_members 1,2 30 1 2
client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 2 >"$TOPO_DIR/burst.json"
check "200 requests answered, once each, by both hosts" \
  test "$(json 'len(d["failures"]) == 0 and d["duplicates"] == 0 and sum(d["answers"].values()) == 200 and len(d["answers"]) == 2' <"$TOPO_DIR/burst.json")" = True

# --- hardening: what the unit declares, on the running agent ------------------------------
pid=$(main_pid 1)
status=$(in_c 1 cat "/proc/$pid/status")
field() { sed -n "s/^$1:[[:space:]]*//p" <<<"$status"; }
# CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7, CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_PERFMON 38,
# CAP_BPF 39.
check "bounding set: CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_RAW CAP_SETUID CAP_SETGID CAP_KILL ($(field CapBnd))" \
  test "$(field CapBnd)" = 000000c0000030e0
probe_ok() { query 1 | json "[(p['verdict'], p['last_result']) for p in d['health']['probes']][0]"; }
check "the unit runs an exec probe as nobody: it passes ($(probe_ok))" \
  test "$(probe_ok)" = "('up', 'passed')"
# Each run of a command has a cgroup of its own (Delegate=yes and its cgroup writable): what
# it started outside its process group goes with it. Without, one more sleep every 0.5 s.
check "exec commands run in cgroups of their own" journal_has 1 0 'exec_isolation.*cgroup2'
daemonizes() { query 1 | json "[(p['name'], p['last_result']) for p in d['health']['probes']][1]"; }
check "the probe that starts a setsid sleep runs and passes ($(daemonizes))" \
  test "$(daemonizes)" = "('daemonizes', 'passed')"
# Counted from here (the image has no procps): the container's PID namespace is a child of ours.
most_sleeping=0 counted=1
for _ in $(seq 10); do
  rc=0
  n=$(pgrep -c --ns "${LEADER[1]}" --nslist pid -f '^sleep 300.5$') || rc=$? # 1: none
  ((rc <= 1)) || counted=0
  ((n > most_sleeping)) && most_sleeping=$n
  sleep 0.3
done
check "what a command started with setsid ends with it (at most 1 at a time, saw $most_sleeping)" \
  test "$counted $((most_sleeping <= 1))" = "1 1"
check "no ambient capabilities" test "$(field CapAmb)" = 0000000000000000
check "NoNewPrivileges" test "$(field NoNewPrivs)" = 1
check "a seccomp filter (SystemCallArchitectures, RestrictAddressFamilies, ...)" test "$(field Seccomp)" = 2
in_agent() { nsenter -t "${LEADER[1]}" -a nsenter -t "$pid" -m "$@"; }
check "ProtectSystem=strict: /usr is read-only to the agent" not in_agent touch /usr/nlb-probe
check "ProtectSystem=strict: /etc is read-only to the agent" not in_agent touch /etc/nlb-probe
in_c 1 touch /tmp/testbed-marker
check "PrivateTmp: the agent has a /tmp of its own" not in_agent test -e /tmp/testbed-marker
check "ProtectHome: /root is empty to the agent" \
  test -z "$(in_agent ls -A /root 2>/dev/null || true)"
check "the agent may write its pin directory" in_agent test -w /sys/fs/bpf/nlb
check "ProtectControlGroups: the cgroups outside its own are read-only to the agent" \
  not in_agent mkdir /sys/fs/cgroup/nlb-probe-outside
# Where this machine's kernel lets root load the scan's map iterators, the hardened unit must
# too; where it refuses them to everyone (a kernel policy: EPERM before the verifier runs),
# the agent copies the tables and its log says why.
probe_pins=/sys/fs/bpf/nlbsd_probe_$$ # bpffs takes no '.' in a name
if bpftool prog loadall "$BUILD/bpf/conn_scan.bpf.o" "$probe_pins" 2>/dev/null; then
  rm -rf "$probe_pins"
  check "its settled connection scans run in the kernel (map iterators: CAP_PERFMON, BTF)" \
    test "$(in_c 1 nlbadm --json stats | json 'd["connection_tables"]["scan"]')" = kernel
else
  rm -rf "$probe_pins"
  echo "this kernel refuses map iterators to root: the agent must copy and say why"
  check "its connection scans copy, as the kernel refuses map iterators" \
    test "$(in_c 1 nlbadm --json stats | json 'd["connection_tables"]["scan"]')" = copy
  check "its log names the kernel's refusal" \
    journal_has 1 0 'refuses map iterator programs'
fi
security=$(in_c 1 systemd-analyze security nlb-agent --no-pager 2>&1 | tail -n 1)
echo "systemd-analyze security: $security"
score=$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<<"$security")
check "systemd-analyze security: exposure $score under 5 (docs/agent.md records it)" \
  python3 -c "import sys; sys.exit(0 if 0 < float('${score:-99}') < 5 else 1)"

# --- reload: a live weight; a key that needs a restart changes nothing --------------------
machine_config 1 20 >"$TOPO_DIR/c1/etc/nlb/nlb.json"
check "systemctl reload (weight 50 -> 20)" in_c 1 systemctl reload nlb-agent
check "the new weight is the running one" test "$(query 1 | json 'd["rules"][0]["load_weight"]')" = 20
check "reconverged" wait_members 1,2 20 1 2
owned() { query "$1" | json 'd["rules"][0]["buckets_owned"]'; }
check "host 1 owns fewer buckets than host 2 ($(owned 1) vs $(owned 2))" test "$(owned 1)" -lt "$(owned 2)"
sed -i 's/"mode": "unicast"/"mode": "multicast"/' "$TOPO_DIR/c1/etc/nlb/nlb.json"
pid_before=$(main_pid 1)
in_c 1 systemctl reload nlb-agent || true
check "a reload of cluster.mode is refused and says so" journal_has 1 0 'reload: cluster.mode changed'
check "... in the unit's status" grep -q 'reload refused' <<<"$(in_c 1 systemctl show -p StatusText --value nlb-agent)"
check "... and changed nothing (same process, still unicast)" \
  test "$(main_pid 1) $(query 1 | json 'd["cluster"]["mode"]')" = "$pid_before unicast"
machine_config 1 50 >"$TOPO_DIR/c1/etc/nlb/nlb.json"
in_c 1 systemctl reload nlb-agent
wait_members 1,2 20 1 2 || true

# --- reload: a new port rule, staged on each host, switched to by both ----------------------
answers_7001() {
  client burst --vip "$CLUSTER_IP" --port 7001 --sources 10.10.1.1+100 --per-source 1 --timeout 2 |
    json 'sorted(d["answers"]), len(d["failures"]), d["duplicates"]'
}
check "before: port 7001 (no rule) is the default host's, host 1" test "$(answers_7001)" = "(['1'], 0, 0)"
active=$(query 1 | json 'd["cluster"]["configuration"]["active"]')
machine_config 1 50 "$RULE_7001" >"$TOPO_DIR/c1/etc/nlb/nlb.json"
check "systemctl reload with a new rule (host 1)" in_c 1 systemctl reload nlb-agent
check "host 1 stages it and waits for host 2" \
  test "$(query 1 | json 'd["cluster"]["configuration"]["staged"] is not None, d["cluster"]["configuration"]["waiting_for"], d["cluster"]["configuration"]["active"]')" = "(True, [2], '$active')"
check "the journal says what was staged" journal_has 1 0 'staged .*port_rules'
check "meanwhile nothing changed: port 7001 is still host 1's" test "$(answers_7001)" = "(['1'], 0, 0)"
machine_config 2 50 "$RULE_7001" >"$TOPO_DIR/c2/etc/nlb/nlb.json"
check "systemctl reload with the new rule (host 2)" in_c 2 systemctl reload nlb-agent
switched() {
  local a b
  a=$(query 1 | json 'd["cluster"]["configuration"]["active"], d["cluster"]["configuration"]["staged"]')
  b=$(query 2 | json 'd["cluster"]["configuration"]["active"], d["cluster"]["configuration"]["staged"]')
  [ "$a" = "$b" ] && [ "${a#*None}" != "$a" ] && [ "${a#*$active}" = "$a" ]
}
for _ in $(seq 50); do switched && break; sleep 0.2; done
check "both switched to the new set" switched
check "and converged on it" wait_members 1,2 20 1 2
check "port 7001 is now balanced over both hosts, each request once" test "$(answers_7001)" = "(['1', '2'], 0, 0)"

# --- kill -9: systemd restarts the agent, which adopts the dataplane ----------------------
hold_start kill9
pid_before=$(main_pid 1)
killed=$(journal 1 | wc -l)
in_c 1 systemctl kill --kill-whom=main -s SIGKILL nlb-agent
for _ in $(seq 100); do
  p=$(main_pid 1)
  [ "$p" != 0 ] && [ "$p" != "$pid_before" ] && break
  sleep 0.1
done
check "kill -9: systemd restarted the agent" test "$(main_pid 1)" != "$pid_before"
check "kill -9: reconverged" wait_members 1,2 20 1 2
sleep 2
hold_stop kill9
# Its own line: every fresh attach logs `attached ... adopted=false` and `connections_adopted`.
check "kill -9: the new agent adopted the pinned dataplane" \
  journal_has 1 "$killed" '^info attached .*adopted=true'

# --- upgrade under traffic ---------------------------------------------------------------
cp "$newer" "$TOPO_DIR/c1/root/"
mark=$(journal 2 | wc -l)
hold_start upgrade
pid_before=$(main_pid 1)
check "apt-get install of the newer package" \
  in_c 1 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "/root/$(basename "$newer")"
check "upgraded to ${version}+testbed1" \
  test "$(in_c 1 dpkg-query -W -f='${Version}' nlb)" = "${version}+testbed1"
check "upgrade: a new agent runs" test "$(main_pid 1)" != "$pid_before"
check "upgrade: the old agent restarted rather than left" journal_has 1 0 '^info restarting'
check "upgrade: reconverged" wait_members 1,2 20 1 2
sleep 2
hold_stop upgrade
check "upgrade: host 2 never saw host 1 stop or leave" not journal_has 2 "$mark" 'host 1 (is stopped|missed)'

# --- a restart that never comes back: the watchdog -----------------------------------------
in_c 1 nlbadm prepare-restart >/dev/null
in_c 1 systemctl stop nlb-agent
check "watchdog: the BPF file system and the pinned dataplane outlive the service" \
  test -n "$(in_c 1 ls -A /sys/fs/bpf/nlb)"
check "watchdog: host 2 serves alone once host 1 is missed" wait_members 2 20 2
sleep 1
client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 2 >"$TOPO_DIR/alone.json"
check "watchdog: 200 requests answered, once each, all by host 2" \
  test "$(json 'len(d["failures"]) == 0 and d["duplicates"] == 0 and d["answers"] == {"2": 200}' <"$TOPO_DIR/alone.json")" = True
check "container 1: systemctl start nlb-agent again" in_c 1 systemctl start nlb-agent
check "both converge again" wait_members 1,2 30 1 2

# --- stop: a leave the other host hears at once -------------------------------------------
mark=$(journal 1 | wc -l)
start=$(date +%s%N)
check "container 2: systemctl stop nlb-agent" in_c 2 systemctl stop nlb-agent
check "stop: host 1 serves alone" wait_members 1 10 1
echo "stop: host 1 alone after $((($(date +%s%N) - start) / 1000000)) ms (tolerance 3,000)"
check "stop: host 1 heard host 2 stop" journal_has 1 "$mark" 'host 2 is stopped'
check "stop: ... rather than miss it" not journal_has 1 "$mark" 'host 2 missed'
check "stop: host 2 detached (no XDP on host0)" not grep -q xdp <<<"$(in_c 2 ip link show host0)"

# --- removal of a host whose agent left its dataplane pinned ------------------------------
in_c 1 nlbadm prepare-restart >/dev/null
in_c 1 systemctl stop nlb-agent
check "remove: the dataplane is left pinned" test -n "$(in_c 1 ls -A /sys/fs/bpf/nlb)"
check "remove: ... with arp_announce 2" test "$(in_c 1 cat /proc/sys/net/ipv4/conf/host0/arp_announce)" = 2
check "apt-get remove nlb" in_c 1 env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq nlb
check "remove: no XDP on host0" not grep -q xdp <<<"$(in_c 1 ip link show host0)"
check "remove: no VIP on host0" not grep -q "$CLUSTER_IP/" <<<"$(in_c 1 ip addr show host0)"
check "remove: nothing pinned" in_c 1 test ! -e /sys/fs/bpf/nlb
check "remove: arp_announce back to 0" test "$(in_c 1 cat /proc/sys/net/ipv4/conf/host0/arp_announce)" = 0

if ((E2E_FAILED)); then
  for i in 1 2; do
    echo "--- container $i: nlb-agent's journal ---" >&2
    journal "$i" | tail -n 40 >&2 || true
  done
  exit 1
fi
echo PASS
