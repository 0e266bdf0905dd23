#!/usr/bin/env bash
# Whole-path CPU per packet of 1-of-4 cluster filtering on a real veth pair, for traffic this
# host does not own (every packet dropped: what dominates on an N-host cluster). Receivers,
# each run ROUNDS times (interleaved) with the median kept:
#   floor    a bare XDP_DROP program
#   xdp      nlb's XDP program
#   tracked  nlb's XDP program where every packet is a TCP segment in a bucket this host may
#            track connections in, both IPv4 connection tables full (262,144 entries each) of
#            other connections, the connection filter rebuilt from them (as the agent keeps it):
#            what the filter saves of two lookups that miss in tables far larger than the caches
#   unfiltered  the same with the filter invalid: every packet pays both lookups
#   nft      jhash ip saddr mod 4 in a netdev ingress chain (behind an XDP_PASS program)
#   xt       iptables -m cluster (4 nodes) in mangle PREROUTING (behind an XDP_PASS program)
# All four hash on the source address and drop; the sender is nlb-bench-veth's live-frame
# generator (UDP, or TCP for tracked; 4096 sources, varying ports), or where the kernel refuses
# live frames the same frames from a packet socket (`generator` in the output says which). A
# packet socket's send costs several times a live frame's and is counted in every variant, the
# floor too, so its ratios come out nearer 1: compare them by the `*_extra_ns` keys, each
# variant less the floor, which the sender does not enter. The receiver's XDP runs in
# native mode, named in the output: the program's own cost. A host on a veth runs generic
# XDP under `--xdp-mode auto` (native XDP there misdelivers what it accepts, docs/agent.md),
# which adds an skb per frame before the program: scripts/bench/http.sh measures that mode
# end to end. Last line: one JSON object.
#   usage: scripts/bench/veth-path.sh [PACKETS] [ROUNDS]   (as root; BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
packets=${1:-3000000}
rounds=${2:-5}
build=${BUILD:-build}
[ "$(id -u)" -eq 0 ] || { echo "veth-path: run as root" >&2; exit 1; }
[ -x "$build/tests/tools/nlb-bench-veth" ] || {
  scripts/install-deps.sh
  cmake -S . -B "$build" -G Ninja >/dev/null
  ninja -C "$build" nlb-bench-veth >/dev/null
}
tool="$build/tests/tools/nlb-bench-veth"

tx=nlbvp-tx-$$
rx=nlbvp-rx-$$
gen_file=$(mktemp)
cleanup() {
  rm -f "$gen_file"
  ip netns del "$tx" 2>/dev/null || true
  ip netns del "$rx" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$tx"
ip netns add "$rx"
# Made inside the namespaces, which the cleanup deletes with them; in the root namespace, the
# fixed names of a run killed between creation and move stayed there and failed every later
# run, as they failed a run beside another.
ip link add nlbvp-tx netns "$tx" type veth peer name nlbvp-rx netns "$rx"
ip -n "$tx" addr add 10.99.0.1/24 dev nlbvp-tx
ip -n "$rx" addr add 10.99.0.2/24 dev nlbvp-rx
ip -n "$tx" link set nlbvp-tx up
ip -n "$rx" link set nlbvp-rx up

nft_on() {
  ip netns exec "$rx" nft -f - <<NFT
table netdev nlb_bench {
  chain ingress {
    type filter hook ingress device "nlbvp-rx" priority 0; policy accept;
    ip daddr 10.99.0.100 jhash ip saddr mod 4 seed 0x5eed != 0 drop
    ip daddr 10.99.0.100 drop
  }
}
NFT
}
nft_off() { ip netns exec "$rx" nft delete table netdev nlb_bench; }
xt_on() {
  ip netns exec "$rx" iptables -t mangle -A PREROUTING -i nlbvp-rx -d 10.99.0.100 \
    -m cluster --cluster-total-nodes 4 --cluster-local-node 1 --cluster-hash-seed 0x5eed -j DROP
  ip netns exec "$rx" iptables -t mangle -A PREROUTING -i nlbvp-rx -d 10.99.0.100 -j DROP
}
xt_off() { ip netns exec "$rx" iptables -t mangle -F PREROUTING; }

run() { # variant receiver-mode -> ns per packet (the generator it used left in $gen_file)
  local out
  out=$("$tool" "$tx" nlbvp-tx "$rx" nlbvp-rx "$2" "$packets")
  echo "$1 $out" >&2
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["received"] >= 0.9*r["sent"], "receiver saw too few frames"; open(sys.argv[2], "w").write(r["generator"]); print(r["ns_per_packet"])' "$out" "$gen_file"
}

declare -A results
for ((i = 0; i < rounds; i++)); do
  results[floor]+="$(run floor floor) "
  results[xdp]+="$(run xdp nlb) "
  results[tracked]+="$(run tracked nlb-tracked) "
  results[unfiltered]+="$(run unfiltered nlb-tracked-unfiltered) "
  nft_on; results[nft]+="$(run nft pass) "; nft_off
  xt_on; results[xt]+="$(run xt pass) "; xt_off
done

median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
python3 - "$(cat "$gen_file")" "$(median "${results[floor]}")" "$(median "${results[xdp]}")" \
  "$(median "${results[tracked]}")" "$(median "${results[unfiltered]}")" \
  "$(median "${results[nft]}")" "$(median "${results[xt]}")" <<'PY'
import json, sys
generator, floor, *rest = sys.argv[1], *map(float, sys.argv[2:])
names = ["xdp_ns", "xdp_tracked_full_ns", "xdp_tracked_full_unfiltered_ns", "nft_jhash_ns",
         "xt_cluster_ns"]
out = {"xdp_mode": "native", "generator": generator, "floor_ns": floor}
for name, ns in zip(names, rest):
    out[name] = ns
for name, ns in zip(names, rest):
    out[name[:-3] + "_ratio"] = round(ns / floor, 3)
    out[name[:-3] + "_extra_ns"] = round(ns - floor, 2)
print(json.dumps(out))
PY
