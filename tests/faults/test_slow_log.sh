#!/usr/bin/env bash
# Fault "slow log": host 4's agent logs to a pipe whose reader stops reading for 4.5 s
# (journald reading its streams late, a `| logger` that hangs, a file system throttling
# writers) while the agent has lines to log: the pipe is full and the agent is told to reload
# its (unchanged) configuration 3 times, 1.5 s apart, each of which logs a line. A write to
# stderr blocks then. The build before waited in it: its loop stood still until a signal
# interrupted the write (the next SIGHUP, which dropped the line), 1.5 s each time against a
# watchdog of (tolerance - 1) periods, 0.8 s here: it stalled, released every bucket, and the
# cluster converged twice. The log's lines now wait in a queue of their own.
#   zero requests lost (strict: through the whole block) or answered twice; host 4: no stall,
#   no watchdog expiry, no frame dropped by the watchdog; no host converged again; host 4's
#   3 `reloaded` lines written once the reader reads again, none dropped.
HEARTBEAT_MS=200
source "$(dirname "$0")/lib.sh"
faults_init slow_log
BLOCK_S=4.5
RELOADS=3

faults_setup 1 2 3 4
for i in 1 2 3 4; do fault_config "$i"; done
for i in 1 2 3; do start_agent "$i"; done
# Host 4 as start_agent starts it, but its stdout and stderr go to a FIFO that a reader copies
# to its log: the reader is what the test stops.
mkfifo "$TOPO_DIR/h4.fifo"
cat "$TOPO_DIR/h4.fifo" >>"$TOPO_DIR/h4.log" &
READER=$!
TOPO_PIDS+=("$READER")
ip netns exec "$TOPO-h4" "$NLB_AGENT" --config "$TOPO_DIR/h4.json" --socket "$TOPO_DIR/h4.sock" \
  --pin-dir "$TOPO_DIR/bpffs/h4" --state-dir "$TOPO_DIR/state4" --xdp-mode generic \
  --log-format json >"$TOPO_DIR/h4.fifo" 2>&1 &
AGENT_PID_4=$!
TOPO_PIDS+=("$AGENT_PID_4")
require_converged 1 2 3 4
stream_start
sleep 1.5

# Fills the pipe to its last byte (shrunk to one page first), in whole lines.
fill_pipe() {
  python3 - "$TOPO_DIR/h4.fifo" <<'PY'
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
try:
    fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ; refused while it holds more: then fill 64 KB
except OSError:
    pass
line = b"x" * 63 + b"\n"
while True:
    try:
        os.write(fd, line)
    except OSError as e:
        if e.errno != errno.EAGAIN:
            raise
        break
os.close(fd)
PY
}
before=$(convergences 1 2 3 4)
started=$(now)
block() {
  kill -STOP "$READER"
  fill_pipe
  local k
  for ((k = 0; k < RELOADS; k++)); do
    kill -HUP "$AGENT_PID_4"
    sleep "$(calc "$BLOCK_S / $RELOADS")"
  done
  kill -CONT "$READER"
}
fault_do blocked_log strict -- block
sleep_periods 5
reloaded=$(count_events 4 reloaded "$started")
echo "host 4: $reloaded reloads logged, $(count_events 4 stalled "$started") stalls, $(count_events 4 watchdog_expired "$started") watchdog expiries"
fcheck_kept_serving 4 "$started" "its loop never waited for the log"
fcheck "host 4: its $RELOADS reloads logged once the reader read again" test "$reloaded" = "$RELOADS"
fcheck "host 4: no log line dropped" test "$(query_field 4 'd["log"]["lines_dropped"]' stats)" = 0
after=$(convergences 1 2 3 4)
echo "convergences: $before -> $after"
fcheck "no host converged again" deltas_within "$(deltas "$before" "$after")" 0
stream_stop
faults_report
