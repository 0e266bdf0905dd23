#!/usr/bin/env bash
# The veth-path benchmark, small: every receiver runs once on 1,000,000 frames, from live
# frames (or, where the kernel refuses them, a packet socket), then again from a packet socket
# asked for, and each JSON line carries every key with a figure the receivers really measured
# (the script itself fails a receiver that saw too few of the frames sent).
set -euo pipefail
cd "$(dirname "$0")/../.."
for asked in "" packet_socket; do
  line=$(NLB_BENCH_GENERATOR=$asked scripts/bench/veth-path.sh 1000000 1 | tail -n 1)
  echo "$line"
  python3 - "$line" "$asked" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["generator"] == (sys.argv[2] or r["generator"]), r
assert r["generator"] in ("live_frames", "packet_socket"), r
for key in ("floor_ns", "xdp_ns", "xdp_tracked_full_ns", "xdp_tracked_full_unfiltered_ns",
            "nft_jhash_ns", "xt_cluster_ns"):
    assert r[key] > 0, f"{key}: {r[key]}"
    if key != "floor_ns":
        assert r[key[:-3] + "_ratio"] > 0, key
PY
done
