#!/usr/bin/env bash
# Dataplane cost per packet under BPF_PROG_TEST_RUN (kernel-timed, repeat ≥ 1,000,000, median
# of interleaved rounds) for drop-foreign, accept-owned, accept-tracked and ARP, next to a bare
# XDP program in the same run, for a heartbeat dropped over its source's budget (what each
# frame of a one-source flood costs), and for a later fragment of a datagram whose first
# fragment was accepted (fragment_ns, goal ≤ 3 × bare), a SYN whose tuple the opening table
# holds (syn_record_ns, a retransmission: ≤ 5 ×), SYNs of 20,000 new tuples each run once
# (syn_new_ns, every one an insertion, against bare_single_ns: the bare program timed the
# same way, one run per frame) and IPv6 drop-foreign / accept-owned (≤ 1.6 ×). Last line:
# one JSON object.
#   usage: scripts/bench/dataplane.sh [REPEAT] [ROUNDS]   (as root; BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
[ "$(id -u)" -eq 0 ] || { echo "dataplane bench: run as root" >&2; exit 1; }
[ -x "$build/tests/bpf/nlb-bench-dataplane" ] || {
  scripts/install-deps.sh
  cmake -S . -B "$build" -G Ninja >/dev/null
  ninja -C "$build" nlb-bench-dataplane >/dev/null
}
exec "$build/tests/bpf/nlb-bench-dataplane" "${1:-1000000}" "${2:-9}"
