#!/usr/bin/env bash
# timed.sh SECONDS SCRIPT [ARGS]: `bash SCRIPT ARGS` under GNU timeout, as ctest runs the
# shell tests. Past SECONDS the script's process group gets SIGTERM: every process in it ends,
# the script's EXIT trap runs and removes what the test made (namespaces, bpffs mounts and
# their pinned programs, cgroups, raised sysctls), and the test fails (exit 124); whatever
# still runs 20 s later gets SIGKILL. ctest's own TIMEOUT, set later as a backstop, would end
# the test with SIGKILL (CMake 3.25 has no TIMEOUT_SIGNAL_NAME), which no trap sees.
# timeout puts the script in a process group of its own, where a Ctrl-C at the terminal does
# not reach it: this shell, in ctest's group, passes INT, TERM and HUP on as SIGTERM.
set -u
limit=$1
shift
timeout -k 20 -s TERM "$limit" bash "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM HUP
# A trapped signal ends `wait` early (status above 128): wait again until timeout has exited.
while :; do
  wait "$pid"
  st=$?
  kill -0 "$pid" 2>/dev/null || break
done
((st != 124)) || echo "FAIL: $1 timed out after ${limit}s (tests/timed.sh)" >&2
exit "$st"
